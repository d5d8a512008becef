"""The records of ``RUN/scorecard.json`` and ``RUN/flagged.jsonl``: what the report renderers draw.

`Scorecard` is versioned (``SCORECARD_VERSION``); a reader refuses another version. Every number
carries its sample size. Directions: deltas are ``compressed - baseline`` (negative = worse), win
rates are the compressed model's (below 0.5 = worse), ``grade_drop`` is ``baseline - compressed``
(positive = worse). The builder lives in `judge.scorecard.build`; nothing here computes anything.

Every section carries two axes: `Behaviour` (needs no judge: identical answers, first difference,
KL, top-1, checked flips) and `Quality` (the judge's grades and games, ``unknown`` when the judge
failed its self-test, `SelfTest`); their rules are in `judge.scorecard.behaviour`,
`judge.scorecard.quality` and `judge.scorecard.selftest`.
"""

from __future__ import annotations

from typing import Literal

from judge.schemas import Record
from judge.stats import CI, FlipCounts

SCORECARD_VERSION = 2

Scope = Literal["overall", "turn", "category"]
QualityStatus = Literal["worse", "better", "mixed", "not distinguishable", "insufficient data",
                        "unknown"]
Status = QualityStatus
BehaviourStatus = Literal["unchanged", "changed", "unknown"]
SelfTestStatus = Literal["passed", "failed", "not run"]
FlagReason = Literal["baseline_win", "strong_loss", "grade_drop", "correctness_flip", "checked_flip",
                     "diverged"]


class GradeRow(Record):
    """Mean 1-10 grades of both models over one scope, and their paired delta.

    Paired: the means and the delta are over the ``n`` (question, turn) items graded ``ok`` for
    both models, so ``compressed_mean - baseline_mean == delta.estimate``; the CI resamples whole
    questions (``delta.n_clusters``). Items with a failed judgment on either side are left out
    here and counted in `Scorecard.failures`. ``noise_delta`` is the same delta for the control
    run (a re-run of the baseline) when there is one.
    """

    scope: Scope
    label: str  # "overall", "turn 1", or the category name
    n: int
    baseline_mean: float
    compressed_mean: float
    delta: CI
    noise_delta: CI | None = None


class HeadToHead(Record):
    """Swapped pairwise games, from the compressed model's side; ``n`` counts ``ok`` judgments.

    A win counts only when both position orders agree, so an inconsistent pair is a tie.
    ``strong_losses``: consistent baseline wins where at least one order says "much better".
    """

    n: int
    compressed_wins: int
    ties: int
    baseline_wins: int
    inconsistent: int
    inconsistency_rate: float  # inconsistent / n
    strong_losses: int
    win_rate: CI  # (W + T/2) / N, resampling whole questions


class DivergenceRow(Record):
    """KL(baseline || compressed) pooled over the tokens of one scope (nats).

    Means are token-weighted over the per-(question, turn) rows of the divergence stage, so they
    equal the mean over all tokens. Quantiles and ``kl_se`` need the per-token arrays and are None
    without them. ``kl_se`` treats tokens as independent (llama.cpp's SE, too small); the
    intervals ``kl_mean_ci`` and ``same_top1_ci`` resample whole questions. ``quantiles_of``:
    whether the quantiles and ``kl_max`` are of the per-token KL or of its top-K lower bound (see
    `judge.scorecard.divergence`).
    """

    scope: Scope
    label: str
    n_items: int
    n_tokens: int
    kl_mean: float
    kl_se: float | None = None
    kl_median: float | None = None
    kl_p90: float | None = None
    kl_p99: float | None = None
    kl_max: float
    same_top1: float
    dp_rms: float
    log_ppl_ratio: float
    kl_mean_ci: CI | None = None  # question-level bootstrap of the token-weighted mean KL
    same_top1_ci: CI | None = None  # likewise for the share of tokens with the same top-1
    quantiles_of: Literal["kl", "kl lower bound"] = "kl"


class KLHistogram(Record):
    """Counts of KL values in log-spaced bins; ``unit`` says whether a value is a token or an item."""

    unit: Literal["token", "item"]
    edges: list[float]  # len(counts) + 1 bin edges in nats; the first bin also holds zeros
    counts: list[int]
    of: Literal["kl", "kl lower bound"] = "kl"  # per-token values: the KL or its lower bound


class ItemPoint(Record):
    """One (question, turn) item with both a KL and a grade on both sides: a scatter point."""

    question_id: str
    turn: int
    category: str
    kl_mean: float
    grade_drop: float  # baseline - compressed


class VsControl(Record):
    """The compressed model against the control run (the noise floor), paired over items.

    ``grade_delta`` is ``compressed - control`` grades; ``win_score_delta`` is the difference of the
    pairwise scores (1 win, 0.5 tie, 0 loss, each against the baseline) of compressed and control.
    An interval that excludes 0 says the compressed model differs from a re-run of the baseline.
    """

    grade_delta: CI
    win_score_delta: CI | None = None


class Behaviour(Record):
    """The behaviour axis: does the compressed model still say what the baseline says? No judge.

    Answers are compared per (question, turn) by their generated token ids (by text when either
    side has none, e.g. imported runs); ``first_diff_median`` is the median, over the answers that
    differ, of the 1-based position of their first differing token (character, by text).
    ``rule`` says what decided ``status``: the noise floor (a control re-run exists) or exact
    identity (it does not). KL and same top-1 are token-weighted over the baseline's answers with
    question-cluster bootstrap intervals; ``checked_flips`` are machine-checked (no judge).
    """

    status: BehaviourStatus
    rule: Literal["noise floor", "exact identity", "none"]
    reason: str
    compared_by: Literal["token ids", "text"] | None = None
    n_answers: int = 0
    n_identical: int = 0
    first_diff_median: float | None = None
    first_diff_unit: Literal["token", "character"] | None = None
    greedy: bool | None = None  # every compared answer decoded greedily (None: not recorded)
    kl_mean: CI | None = None
    same_top1: CI | None = None
    dp_rms: float | None = None
    checked_flips: FlipCounts | None = None
    flip_rate: CI | None = None  # of the checked flips
    control_n_answers: int | None = None
    control_n_identical: int | None = None
    n_questions: int | None = None  # questions in the noise-floor test
    beyond_floor: int | None = None  # questions where this model differs and the control does not
    below_floor: int | None = None  # questions where the control differs and this model does not
    sign_test_p: float | None = None  # one-sided exact sign test on those two counts


class QualitySignal(Record):
    """One of the judge's signals, as the Holm procedure last tested it.

    ``level`` is the confidence level of the interval (``low``, ``high``) it was decided with:
    1 - alpha / (m - r) at the step where it was tested last (m signals, r already rejected).
    Flips are decided by their exact McNemar ``p_value`` instead of an interval.
    """

    name: Literal["grade delta", "win rate", "flips"]
    estimate: float
    null: float  # the value that means "no difference": 0 (grades, flips) or 0.5 (win rate)
    level: float
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    n: int
    direction: Literal["worse", "better", "same"]  # "same": not distinguishable at its level


class Missingness(Record):
    """Single judgments that are not grades (failed or never made), on the items both models answered.

    ``informative`` when failures fall on one role more than the other beyond chance (exact
    McNemar on the items where only one side failed, at the scorecard's alpha): then the grades
    that are left are not a random sample of the answers.
    """

    n_items: int
    baseline_failed: int
    compressed_failed: int
    only_baseline: int
    only_compressed: int
    p_value: float
    informative: bool


class Quality(Record):
    """The quality axis: is the compressed model worse by the judge?

    ``signals_status`` is what the signals say (Holm over them, see `judge.scorecard.quality`);
    ``status`` is that, or ``unknown`` when there is no judge or the judge failed its self-test
    (``reason`` says which). A self-test that was not run (imported runs, ``--probes 0``) leaves
    the status shown, with that caveat in ``reason``.
    """

    status: QualityStatus
    signals_status: QualityStatus
    reason: str | None = None
    self_test: SelfTestStatus | Literal["imported", "no judge"]
    method: str
    signals: list[QualitySignal] = []
    recovery: CI | None = None  # compressed mean grade / baseline mean grade, paired items
    flip_rate: CI | None = None  # of the judge's correctness flips, question-cluster bootstrap
    missingness: Missingness | None = None


class Proportion(Record):
    """``k`` of ``n`` with a Wilson score interval at ``level``."""

    k: int
    n: int
    estimate: float
    low: float
    high: float
    level: float


class ProbeKindRow(Record):
    kind: str
    n: int
    detected: Proportion | None = None  # intact answer preferred in both orders of the game
    graded_lower: Proportion | None = None  # degraded answer graded below the intact one
    named: Proportion | None = None  # the judge named an expected issue kind


class SelfTest(Record):
    """The judge on planted degradations of this run's baseline answers (`judge.scorecard.selftest`).

    ``passed`` when the lower bound of every sensitivity measured (``detected``, ``graded_lower``)
    reaches ``threshold``; ``not run`` when there are no probe judgments for this judge.
    """

    judge: str | None = None
    status: SelfTestStatus
    reason: str
    threshold: float
    n_probes: int = 0
    n_ok: int = 0
    n_failed: int = 0
    detected: Proportion | None = None
    graded_lower: Proportion | None = None
    named: Proportion | None = None
    kinds: list[ProbeKindRow] = []


class CandidateVerdict(Record):
    """The words: ``headline`` names both axes in one or two sentences; ``text`` adds the numbers.
    ``status`` is the quality status (the behaviour status is in `Section.behaviour`)."""

    status: Status
    headline: str
    text: str


class Section(Record):
    """Everything about one compressed role (or the control run) against the baseline."""

    role: str
    model: str | None = None
    n_questions: int  # questions answered by both models
    grades: list[GradeRow]
    head_to_head: HeadToHead | None = None
    flips: FlipCounts | None = None  # over reference-graded (question, turn) items
    divergence: list[DivergenceRow] = []
    kl_method: str | None = None  # how KL was computed (exact, top-K bound, bound + tail estimate)
    kl_histogram: KLHistogram | None = None
    kl_grade_spearman: CI | None = None  # items: KL mean vs grade drop
    points: list[ItemPoint] = []
    issues: dict[str, dict[str, int]] = {}  # role -> degradation kind -> single-grading count
    pair_issues: dict[str, dict[str, int]] = {}  # role -> kind -> count, from pairwise games
    vs_control: VsControl | None = None
    n_flagged: int = 0
    checked_flips: FlipCounts | None = None  # machine-checked correctness (checks/<role>.jsonl)
    judge_accuracy: CI | None = None  # the judge's correct/incorrect verdicts against the checks
    behaviour: Behaviour
    quality: Quality
    verdict: CandidateVerdict


class SummaryRow(Record):
    """One line of the table across candidates (and the control run)."""

    role: str
    grade_delta: CI
    win_rate: CI | None = None
    flip_percent: float | None = None  # the checker's flips where the role has them, else the judge's
    flips_n: int | None = None
    kl_mean: float | None = None
    same_top1: float | None = None
    n_flagged: int = 0
    flips_from: Literal["checker", "judge"] | None = None


class FailureCount(Record):
    """Judgments that are not grades, by file, role and status; ``missing`` = never judged."""

    kind: Literal["single", "pairwise"]
    role: str
    status: str  # a JudgmentStatus, or "missing"
    count: int


class ModelProvenance(Record):
    role: str
    name: str
    spec: str
    path: str
    config_sha256: str | None = None
    tokenizer_sha256: str | None = None
    weight_bytes: int | None = None


class Provenance(Record):
    run: str
    judge_version: str  # of the code that built this scorecard
    run_judge_version: str | None = None  # of the code that made the run
    models: list[ModelProvenance] = []
    judges: list[str] = []  # the judge model whose judgments the scorecard uses (one, or none)
    judge_model: str | None = None  # that judge model (None: the run has no judgments)
    other_judges: list[str] = []  # judge models of this run whose judgments were left out
    n_other_judge: int = 0  # their judgment rows
    prompts: dict[str, list[str]] = {}  # judge prompt name -> sha256 of its rendered templates
    question_set: str | None = None
    question_set_sha256: str | None = None
    n_questions: int | None = None
    run_seed: int | None = None
    bootstrap_seed: int
    n_resamples: int
    confidence: float
    versions: dict[str, str] = {}


class Scorecard(Record):
    """``RUN/scorecard.json``."""

    format_version: int = SCORECARD_VERSION
    created: float
    provenance: Provenance
    baseline_model: str | None = None
    sections: list[Section]  # one per compressed role
    control: Section | None = None  # control vs baseline: the noise floor
    summary: list[SummaryRow] = []
    failures: list[FailureCount] = []
    n_superseded: int = 0  # judgment rows replaced by a later row for the same key
    self_test: SelfTest | None = None  # the judge on planted degradations (None: imported run)
    verdict: str


# --------------------------------------------------------------------------- flagged responses


class TokenSpan(Record):
    """A piece of the baseline answer's text and the KL at the token(s) that produced it."""

    text: str
    kl: float
    top1: bool = True


class GameView(Record):
    """One order of a pairwise game, as shown to a reviewer."""

    a_role: str
    b_role: str
    label: str | None  # "A>>B" ... or None when the game failed
    winner: str | None
    explanation: str | None


class FlaggedItem(Record):
    """One line of ``RUN/flagged.jsonl``: a (question, turn) where the compressed answer regressed
    or diverged most.

    ``severity`` = 3 per correct->incorrect flip + 2 for a consistent baseline win + 1 more when it
    is strong + the grade drop when positive; regressions are ordered by severity, then mean KL,
    both descending. Items flagged only as ``diverged`` (severity 0) come after every regression,
    ordered by KL mass, then by the earliest first difference (see `judge.scorecard.flagged`).
    """

    rank: int
    role: str
    question_id: str
    turn: int
    category: str
    reasons: list[FlagReason]
    severity: float
    question: str | None = None
    baseline_answer: str | None = None
    compressed_answer: str | None = None
    baseline_status: str | None = None  # the single judgment's status; None when never judged
    compressed_status: str | None = None
    baseline_score: float | None = None
    compressed_score: float | None = None
    grade_drop: float | None = None
    baseline_correct: bool | None = None
    compressed_correct: bool | None = None
    baseline_explanation: str | None = None
    compressed_explanation: str | None = None
    baseline_issues: list[str] = []
    compressed_issues: list[str] = []
    pair_status: str | None = None  # the pairwise judgment's status; None when never judged
    pair_winner: str | None = None
    pair_consistent: bool | None = None
    games: list[GameView] = []
    kl_mean: float | None = None
    kl_max: float | None = None
    same_top1: float | None = None
    kl_mass: float | None = None  # the item's summed per-token KL (mean x tokens), nats
    answers_identical: bool | None = None  # None: an answer is missing
    first_diff: int | None = None  # 1-based position of the first differing token (or character)
    first_diff_unit: Literal["token", "character"] | None = None
    tokens: list[TokenSpan] | None = None  # baseline answer coloured by KL; None without a tokenizer
    # the checker's flip (RUN/checks/), when both answers were checked by code
    checked_flip: Literal["correct_to_incorrect", "incorrect_to_correct"] | None = None
