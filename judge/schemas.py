"""Pydantic records that cross a boundary: files in a run folder, the two seams, the CLI.

Every record is frozen and forbids unknown fields, except the FastChat-compatible file rows, which
must also *read* FastChat's own files and therefore ignore fields they do not know.
Roles are ``baseline``, ``control`` and ``compressed`` (``compressed-<name>`` in sweeps); ``A``/``B``
exist only inside prompt rendering and verdict parsing.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMAT_VERSION = 1

ROLE_RE = re.compile(r"^(baseline|control|compressed(-[a-z0-9][a-z0-9_.-]{0,63})?)$")
Role = Annotated[str, Field(pattern=ROLE_RE.pattern)]

Category = str  # MT-Bench's eight are the default, but any FastChat question set may add others
MT_BENCH_CATEGORIES: tuple[str, ...] = (
    "writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities",
)
REFERENCE_CATEGORIES: tuple[str, ...] = ("math", "reasoning", "coding")


class Record(BaseModel):
    """Base of judge's own records: immutable, no unknown fields."""

    # NaN (e.g. a standard error over one token) is written as "NaN", which is valid JSON and reads back
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class FastChatRow(BaseModel):
    """Base of rows that FastChat also reads and writes: immutable, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", ser_json_inf_nan="strings")


# --------------------------------------------------------------------------- questions


# --------------------------------------------------------------------------- machine checks
# A turn's ``check`` says how an answer can be graded by code, without a judge; the kinds form a
# closed set, documented in questions/README.md and applied by `judge.check`.

JsonScalar = str | int | float | bool | None


class NumberCheck(Record):
    """The final stated value(s) must equal ``value`` (one) or the set ``values`` (all of them, and
    no other), as exact fractions, within the relative ``tolerance``."""

    kind: Literal["number"]
    value: str | None = None  # "2/7", "14.4", "-29/4", "527"
    values: list[str] | None = None
    tolerance: float = Field(default=1e-9, ge=0.0, le=0.5)

    @model_validator(mode="after")
    def _one_form(self) -> "NumberCheck":
        from fractions import Fraction

        if (self.value is None) == (self.values is None):
            raise ValueError("a number check needs exactly one of 'value' and 'values'")
        for v in [self.value] if self.value is not None else list(self.values or []):
            try:
                Fraction(str(v))
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"{v!r} is not a number or fraction such as 2/7 or 14.4") from None
        if self.values is not None and not self.values:
            raise ValueError("'values' is empty")
        return self


class ChoiceCheck(Record):
    """The last of ``options`` the final answer names must be one of ``answer``."""

    kind: Literal["choice"]
    options: list[str] = Field(min_length=2)
    answer: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _answer_in_options(self) -> "ChoiceCheck":
        missing = [a for a in self.answer if a not in self.options]
        if missing:
            raise ValueError(f"answer {missing} not among the options")
        return self


class OrderCheck(Record):
    """Every item must be named in the final answer, first mentions in this order."""

    kind: Literal["order"]
    answer: list[str] = Field(min_length=2)


class MappingCheck(Record):
    """For each key, the final answer's clause naming it holds its values and no other key's."""

    kind: Literal["mapping"]
    answer: dict[str, list[str]] = Field(min_length=1)


class PythonCheck(Record):
    """The answer's Python code must define ``defines``; then ``setup`` runs and every test
    (an expression that must be true, or a statement that must not raise) passes, in order, in a
    sandboxed process. ``raises(Exc, fn, *args)`` is available to the tests."""

    kind: Literal["python"]
    defines: list[str] = Field(min_length=1)
    setup: str = ""
    tests: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=10.0, gt=0.0, le=60.0)


class SqlCheck(Record):
    """The answer's SQL query, run on an in-memory SQLite database built by ``setup``, returns
    ``expected`` (in this order when ``ordered``)."""

    kind: Literal["sql"]
    setup: str
    expected: list[list[JsonScalar]]
    ordered: bool = True


class JsonCheck(Record):
    """The answer holds JSON: an object, or a list of ``count`` objects, each with the ``required``
    keys; every object of ``match`` must be a subset of the object (of some element, for a list)."""

    kind: Literal["json"]
    required: list[str] = Field(default_factory=list)
    count: int | None = Field(default=None, ge=0)
    match: list[dict[str, JsonScalar]] = Field(default_factory=list)
    tolerance: float = Field(default=1e-9, ge=0.0)  # absolute, for numbers in ``match``


Check = Annotated[NumberCheck | ChoiceCheck | OrderCheck | MappingCheck | PythonCheck | SqlCheck
                  | JsonCheck, Field(discriminator="kind")]
CheckKind = Literal["number", "choice", "order", "mapping", "python", "sql", "json"]
CHECK_KINDS: tuple[str, ...] = CheckKind.__args__  # type: ignore[attr-defined]


CheckStatus = Literal["pass", "fail", "error"]


class CheckResult(Record):
    """One line of ``RUN/checks/<role>.jsonl``: one answer turn graded by its question's check.

    ``pass``/``fail``: the check ran and the answer is correct/incorrect; ``error``: it could not
    decide (the answer's code hit a limit, timed out or left no result). ``extracted`` is what was
    read from the answer (the value, choice, order, JSON) or, for code, the failing test.
    """

    question_id: int | str
    turn: int = Field(ge=1)
    role: str
    category: str
    kind: CheckKind
    status: CheckStatus
    answer_id: str | None = None  # the answer row checked; a regenerated answer is checked again
    extracted: str | None = None
    reason: str = ""
    duration_s: float = 0.0
    tstamp: float

    @property
    def correct(self) -> bool | None:
        return None if self.status == "error" else self.status == "pass"


class Question(FastChatRow):
    """One multi-turn question, FastChat ``question.jsonl`` format plus optional references."""

    question_id: int | str
    category: str = Field(min_length=1)
    turns: list[str] = Field(min_length=1)
    reference: list[str] | None = None  # one reference answer per turn (math, reasoning, coding)
    rationale: list[str] | None = None  # a short derivation of each reference (our own sets)
    check: list[Check | None] | None = None  # one per turn: how code grades an answer (or null)

    @field_validator("turns")
    @classmethod
    def _turns_not_blank(cls, turns: list[str]) -> list[str]:
        for i, t in enumerate(turns):
            if not t.strip():
                raise ValueError(f"turn {i + 1} is empty")
        return turns

    @model_validator(mode="after")
    def _encodable(self) -> "Question":
        """Every text must be valid Unicode: a lone surrogate (``"\\ud800"`` in JSON) would pass
        here and crash a tokenizer after the model has loaded."""
        texts = [("question_id", str(self.question_id)), ("category", self.category),
                 *((f"turns.{i + 1}", t) for i, t in enumerate(self.turns)),
                 *((f"reference.{i + 1}", t) for i, t in enumerate(self.reference or [])),
                 *((f"rationale.{i + 1}", t) for i, t in enumerate(self.rationale or []))]
        for where, text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise ValueError(f"{where} holds a lone surrogate (\\u{ord(text[err.start]):04x}) "
                                 "at character " f"{err.start}; fix the text") from None
        return self

    @property
    def key(self) -> str:
        """The id as a string: run folders key everything by it."""
        return str(self.question_id)


class QuestionSetInfo(Record):
    name: str
    path: str
    sha256: str
    n_questions: int
    categories: dict[str, int]


# --------------------------------------------------------------------------- generation


class SamplingSpec(Record):
    """How one question is sampled. ``temperature == 0`` means greedy."""

    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=1024, ge=1)
    seed: int = 0


class AnswerChoice(FastChatRow):
    index: int = 0
    turns: list[str]


class Answer(FastChatRow):
    """A FastChat ``model_answer`` row plus judge's extras (token ids, finish reasons, engine)."""

    question_id: int | str
    answer_id: str
    model_id: str
    choices: list[AnswerChoice] = Field(min_length=1)
    tstamp: float
    # judge's extras -------------------------------------------------------------
    role: str | None = None
    category: str | None = None
    token_ids: list[list[int]] | None = None  # generated ids per turn (no prompt)
    prompt_token_counts: list[int] | None = None  # prompt length per turn, after the chat template
    finish_reasons: list[str] | None = None  # "stop" | "length" per turn
    sampling: SamplingSpec | None = None
    engine: str | None = None  # "vllm" | "hf" | "import"
    engine_version: str | None = None

    @property
    def key(self) -> str:
        return str(self.question_id)

    @property
    def turns(self) -> list[str]:
        return self.choices[0].turns


# --------------------------------------------------------------------------- models / manifest


class WeightFile(Record):
    name: str
    bytes: int
    sha256: str | None = None  # known without hashing for hub files (the cache names LFS blobs by it)


class ModelFingerprint(Record):
    config_sha256: str | None
    tokenizer_sha256: str | None
    weights: list[WeightFile]
    vocab_size: int | None = None


class ModelInfo(Record):
    """A resolved model spec: what the user typed, where it lives, and what it is."""

    spec: str
    name: str  # short display name, also FastChat's model_id
    path: str
    embedded: bool = False
    fingerprint: ModelFingerprint | None = None
    revision: str | None = None  # hub ids: the commit the snapshot was taken at
    format: str | None = None  # e.g. "compressed-tensors W4A16", "GGUF Q8_0, dequantized", "unquantized"


class StageTimes(Record):
    started: float | None = None
    finished: float | None = None


class RunManifest(Record):
    """``RUN/manifest.json``: everything needed to know what a run is and to reproduce it."""

    format_version: int = FORMAT_VERSION
    judge_version: str
    run: str
    created: float
    updated: float
    config: dict[str, object] = Field(default_factory=dict)  # the resolved RunConfig, as JSON
    questions: QuestionSetInfo | None = None
    models: dict[Role, ModelInfo] = Field(default_factory=dict)  # role -> model (a role is never a path)
    versions: dict[str, str] = Field(default_factory=dict)  # package -> version
    seed: int = 0
    stages: dict[str, StageTimes] = Field(default_factory=dict)


# --------------------------------------------------------------------------- judge verdicts

IssueKind = Literal[
    "factual_error",
    "reasoning_or_math_error",
    "instruction_not_followed",
    "incomplete_or_truncated",
    "repetition_or_looping",
    "incoherent",
    "wrong_language_or_format",
    "refusal_or_safety_change",
    "other",
]
ISSUE_KINDS: tuple[str, ...] = IssueKind.__args__  # type: ignore[attr-defined]

PairLabel = Literal["A>>B", "A>B", "A=B", "B>A", "B>>A"]
PAIR_LABELS: tuple[str, ...] = PairLabel.__args__  # type: ignore[attr-defined]


class SingleVerdict(Record):
    """What the judge must return when grading one answer."""

    explanation: str
    issues: list[IssueKind] = Field(default_factory=list)
    rating: int = Field(ge=1, le=10)


class SingleVerdictWithReference(SingleVerdict):
    """Single grading against a reference answer: also says whether the answer is correct."""

    correct: bool


class PairVerdict(Record):
    """What the judge must return when comparing answers A and B."""

    explanation: str
    issues_a: list[IssueKind] = Field(default_factory=list)
    issues_b: list[IssueKind] = Field(default_factory=list)
    verdict: PairLabel


JudgmentStatus = Literal["ok", "api_error", "invalid_output", "imported_error", "duplicate"]
Winner = Literal["baseline", "compressed", "tie"]


class Usage(Record):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0  # HTTP requests made for this judgment (0 when served from the cache)


class SingleJudgment(FastChatRow):
    """A ``model_judgment/*_single.jsonl`` row (FastChat) plus judge's extras.

    ``score`` is FastChat's field: the rating, or -1 when ``status != "ok"``. Aggregation must use
    ``status``; a failed judgment is never a grade.
    """

    question_id: int | str
    model: str
    judge: tuple[str, str]  # (judge model, prompt name), as FastChat
    user_prompt: str
    judgment: str  # the judge's raw text
    score: float
    turn: int = Field(ge=1)
    tstamp: float
    # judge's extras -------------------------------------------------------------
    role: str | None = None
    status: JudgmentStatus = "ok"
    error: str | None = None
    verdict: SingleVerdictWithReference | SingleVerdict | None = None
    correct: bool | None = None
    prompt_sha256: str | None = None
    usage: Usage | None = None
    attempts: int = 1

    @model_validator(mode="after")
    def _failed_has_no_grade(self) -> "SingleJudgment":
        if self.status != "ok" and self.score != -1:
            raise ValueError("a failed judgment must have score -1")
        return self


class PairGame(Record):
    """One order of a pairwise game: who sat in position A, and what the judge said."""

    a_role: str
    b_role: str
    user_prompt: str
    judgment: str
    status: JudgmentStatus
    error: str | None = None
    verdict: PairVerdict | None = None
    winner: Winner | None = None  # mapped back to roles; None when status != ok
    strength: Literal[0, 1, 2] | None = None  # 2 = "much better", 1 = "better", 0 = tie
    usage: Usage | None = None
    attempts: int = 1


class PairJudgment(FastChatRow):
    """A ``model_judgment/*_pair.jsonl`` row (FastChat) plus both games with roles."""

    question_id: int | str
    model_1: str  # baseline's model id
    model_2: str  # compressed model's id
    g1_winner: Literal["model_1", "model_2", "tie", "error"]
    g2_winner: Literal["model_1", "model_2", "tie", "error"]
    judge: tuple[str, str]
    g1_user_prompt: str
    g1_judgment: str
    g2_user_prompt: str
    g2_judgment: str
    turn: int = Field(ge=1)
    tstamp: float
    # judge's extras -------------------------------------------------------------
    role_1: str | None = None
    role_2: str | None = None
    games: list[PairGame] | None = None
    status: JudgmentStatus = "ok"  # "ok" only when both games are ok
    winner: Winner | None = None  # consistent winner across both orders, else "tie"; None if failed
    consistent: bool | None = None
    prompt_sha256: str | None = None


# --------------------------------------------------------------------------- divergence


class KLSummary(Record):
    """llama.cpp-style statistics over a set of token positions (KL in nats).

    The SEs treat tokens as independent (as llama.cpp does), which understates them: the tokens
    of one answer move together (the scorecard's intervals resample whole questions).
    ``quantiles_of``: whether median, p90, p99, p99.9 and max are of the per-token KL or of its
    top-K lower bound (when KL is estimated with tail samples; see `judge.stats.kl_summary`).
    """

    n_tokens: int
    kl_mean: float
    kl_se: float
    kl_median: float
    kl_p90: float
    kl_p99: float
    kl_p999: float
    kl_max: float
    same_top1: float
    same_top1_se: float
    dp_mean: float  # mean of p_compressed(tok) - p_baseline(tok)
    dp_rms: float
    log_ppl_ratio: float  # mean NLL_compressed - mean NLL_baseline
    log_ppl_ratio_se: float
    reverse_kl_mean: float | None = None
    jsd_mean: float | None = None
    kl_bound_mean: float | None = None  # the top-K lower bound, when kl_mean is an estimate
    quantiles_of: Literal["kl", "kl lower bound"] = "kl"


class TurnDivergence(Record):
    """One line of ``RUN/divergence/<role>.jsonl``: statistics of one (question, turn)."""

    question_id: int | str
    category: str
    turn: int
    role: str
    stats: KLSummary


# --------------------------------------------------------------------------- the judge's self-test

ProbeKind = Literal["truncated", "shuffled", "repetition", "wrong_number", "substituted", "refusal"]
PROBE_KINDS: tuple[str, ...] = ProbeKind.__args__  # type: ignore[attr-defined]


class Probe(Record):
    """A planted degradation of one baseline answer (one turn), whose ground truth is known: the
    degraded text is worse than the intact answer it was made from. See `judge.grade.probes`."""

    probe_id: str  # "<kind>:<question_id>:<turn>", unique within a run
    kind: ProbeKind
    question_id: int | str
    turn: int = Field(ge=1)
    expected_issues: list[IssueKind]  # the kinds of the closed vocabulary that name it rightly
    text: str  # the degraded answer to ``turn``; earlier turns stay intact


class ProbeJudgment(Record):
    """One line of ``RUN/judgments/probes.jsonl``: the judge on one probe.

    ``single`` grades the degraded answer alone, ``intact`` the baseline's own answer with the same
    prompt as its grade in ``single.jsonl`` (so it is a cache hit after grading), ``pair`` plays the
    intact answer (role ``baseline``) against the degraded one (role ``probe``) in both orders.
    Parts the grading mode does not use are None. ``status`` is ``ok`` when every part made is.
    """

    probe: Probe
    judge: str  # the judge model
    mode: Literal["single", "pairwise", "both"]
    tstamp: float
    status: JudgmentStatus
    single: SingleJudgment | None = None
    intact: SingleJudgment | None = None
    pair: PairJudgment | None = None
