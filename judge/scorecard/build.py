"""Build the `Scorecard` of a run: grades, head-to-head, flips, divergence, correlation, verdict.

Joins the judgments and the divergence stage per (question, turn) item and calls `judge.stats` for
every interval and test. Conventions (see `judge.stats`): deltas are ``compressed - baseline``,
win rates are the compressed model's, bootstrap intervals resample whole questions (the turns of
one question stay together) with one seed, so the same run and seed give the same scorecard.

Which rows count: the rows of one judge model, and for each key the LAST judgment row in the file
(see `judge.scorecard.data`); a judgment whose status is not ``ok`` is never a grade, it is counted
in ``failures``.

Intervals: means (grade deltas, win rates, accuracy and KL deltas) take the expanded percentile
interval, and no row gets an interval from fewer than `judge.stats.MIN_QUESTIONS_FOR_INTERVAL`
questions (its ``note`` says why); flips take the question-level exact McNemar test. Coverage is
measured by simulation in tests/test_stats_coverage.py.
Each compressed role gets one `Section`; a ``control`` role (a re-run of the baseline) gets the
same section, shown as the noise floor next to every compressed role's numbers. Every section has
both axes (`judge.scorecard.behaviour`, `judge.scorecard.quality`); the judge's self-test
(`judge.scorecard.selftest`) is scored once per scorecard and decides whether quality is shown.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from judge.errors import RunFolderError
from judge.schemas import ISSUE_KINDS, MT_BENCH_CATEGORIES
from judge.scorecard.data import ItemKey, RunData, correctness, item_sort, load_run, provenance
from judge.scorecard.schema import (
    FailureCount,
    FlaggedItem,
    GradeRow,
    HeadToHead,
    ItemPoint,
    Scorecard,
    Section,
    SummaryRow,
    VsControl,
)
from judge.scorecard.behaviour import behaviour_axis
from judge.scorecard.divergence import divergence_rows, kl_histogram, kl_method
from judge.scorecard.flagged import build_flagged, flagged_counts
from judge.scorecard.quality import Signals, missingness, quality_axis
from judge.scorecard.schema import SelfTest
from judge.scorecard.selftest import DEFAULT_MIN_SENSITIVITY, self_test
from judge.scorecard.verdict import overall_verdict, section_verdict
from judge.stats import (
    CI,
    MIN_QUESTIONS_FOR_INTERVAL,
    bootstrap_mean_ci,
    FlipCounts,
    IntervalMethod,
    flips,
    paired_bootstrap_mean_delta,
    spearman_ci,
    win_rate_ci,
)
from judge.store import Run

_NAN = float("nan")
_PAIR_SCORE = {"compressed": 1.0, "tie": 0.5, "baseline": 0.0}


@dataclass(frozen=True)
class Settings:
    """Bootstrap settings shared by every interval of one scorecard."""

    seed: int = 0
    n_resamples: int = 2000
    alpha: float = 0.05
    min_sensitivity: float = DEFAULT_MIN_SENSITIVITY  # the judge's self-test threshold
    method: IntervalMethod = "expanded"
    min_questions: int = MIN_QUESTIONS_FOR_INTERVAL

    def kw(self) -> dict:
        """Keyword arguments of the bootstrap of a mean (`judge.stats.bootstrap_mean_ci`)."""
        return {**self.rho_kw(), "method": self.method}

    def rho_kw(self) -> dict:
        """Keyword arguments of `judge.stats.spearman_ci` (a plain percentile interval)."""
        return {"seed": self.seed, "n_resamples": self.n_resamples, "alpha": self.alpha,
                "min_clusters": self.min_questions}


# --------------------------------------------------------------------------- per-item values


def grades(data: RunData, role: str) -> dict[ItemKey, float]:
    """(question, turn) -> 1-10 grade, for judgments with status ok."""
    return {(q, t): float(row.score) for (q, t, r), row in data.single.items()
            if r == role and row.status == "ok"}


def is_reference_graded(data: RunData, key: ItemKey, roles: tuple[str, ...]) -> bool:
    q = data.questions.get(key[0])
    if q is not None and q.reference is not None and key[1] <= len(q.reference):
        return bool(q.reference[key[1] - 1].strip())
    for role in roles:
        row = data.single.get((key[0], key[1], role))
        if row is not None and (row.correct is not None or hasattr(row.verdict, "correct")):
            return True
    return False


def pair_outcomes(data: RunData, role: str) -> dict[ItemKey, str]:
    """(question, turn) -> consistent winner ("baseline"/"compressed"/"tie") of ok games."""
    out: dict[ItemKey, str] = {}
    for (q, t, r), row in data.pairwise.items():
        if r == role and row.status == "ok" and row.winner is not None:
            out[(q, t)] = row.winner
    return out


def _category_order(cats: set[str]) -> list[str]:
    known = [c for c in MT_BENCH_CATEGORIES if c in cats]
    return known + sorted(cats - set(known))


def _scopes(data: RunData, keys: list[ItemKey]) -> list[tuple[str, str, list[ItemKey]]]:
    """(scope, label, items) for overall, each turn, each category."""
    out = [("overall", "overall", keys)]
    for turn in sorted({t for _, t in keys}):
        out.append(("turn", f"turn {turn}", [k for k in keys if k[1] == turn]))
    cats = {k: data.category(k[0]) for k in keys}
    for cat in _category_order(set(cats.values())):
        out.append(("category", cat, [k for k in keys if cats[k] == cat]))
    return out


# --------------------------------------------------------------------------- section parts


def grade_rows(data: RunData, role: str, s: Settings) -> list[GradeRow]:
    base, comp = grades(data, "baseline"), grades(data, role)
    paired = sorted(set(base) & set(comp), key=item_sort)
    rows = []
    for scope, label, keys in _scopes(data, paired):
        b = np.array([base[k] for k in keys], dtype=np.float64)
        c = np.array([comp[k] for k in keys], dtype=np.float64)
        delta = paired_bootstrap_mean_delta(b, c, groups=[k[0] for k in keys], **s.kw())
        rows.append(GradeRow(scope=scope, label=label, n=len(keys),  # type: ignore[arg-type]
                             baseline_mean=float(b.mean()) if len(b) else _NAN,
                             compressed_mean=float(c.mean()) if len(c) else _NAN, delta=delta))
    if not paired:
        rows = [GradeRow(scope="overall", label="overall", n=0, baseline_mean=_NAN,
                         compressed_mean=_NAN,
                         delta=paired_bootstrap_mean_delta([], [], **s.kw()))]
    return rows


def head_to_head(data: RunData, role: str, s: Settings) -> HeadToHead | None:
    rows = {(q, t): row for (q, t, r), row in data.pairwise.items() if r == role and row.status == "ok"
            and row.winner is not None}
    if not rows:
        return None
    keys = sorted(rows, key=item_sort)
    outcomes = [rows[k].winner for k in keys]
    inconsistent = sum(1 for k in keys if rows[k].consistent is False)
    strong = 0
    for k in keys:
        row = rows[k]
        if row.winner == "baseline" and any(g.winner == "baseline" and g.strength == 2
                                            for g in row.games or []):
            strong += 1
    n = len(keys)
    return HeadToHead(
        n=n, compressed_wins=outcomes.count("compressed"), ties=outcomes.count("tie"),
        baseline_wins=outcomes.count("baseline"), inconsistent=inconsistent,
        inconsistency_rate=inconsistent / n, strong_losses=strong,
        win_rate=win_rate_ci(outcomes, [k[0] for k in keys], **s.kw()),  # type: ignore[arg-type]
    )


def flip_items(data: RunData, role: str) -> tuple[list[ItemKey], list[bool | None], list[bool | None]]:
    """Reference-graded items and the judge's correctness of both sides (None: no verdict)."""
    keys = sorted({(q, t) for q, t, r in data.single if r in ("baseline", role)}, key=item_sort)
    keys = [k for k in keys if is_reference_graded(data, k, ("baseline", role))]
    b = [correctness(data.single.get((q, t, "baseline"))) for q, t in keys]
    c = [correctness(data.single.get((q, t, role))) for q, t in keys]
    return keys, b, c


def _paired_flips(keys: list[ItemKey], b: list[bool | None], c: list[bool | None],
                  s: Settings) -> FlipCounts:
    """Flip counts of paired correctness (tested by question) with the accuracy change's interval."""
    counts = flips(b, c, [q for q, _ in keys])

    def as_float(x: bool | None) -> float:
        return _NAN if x is None else float(x)

    acc = paired_bootstrap_mean_delta([as_float(x) for x in b], [as_float(x) for x in c],
                                      groups=[q for q, _ in keys], **s.kw())
    return counts.model_copy(update={"accuracy_delta": acc})


def flip_counts(data: RunData, role: str, s: Settings = Settings()) -> FlipCounts | None:
    """Flips over reference-graded items, tested and bootstrapped by question (turns together)."""
    keys, b, c = flip_items(data, role)
    if not keys or not any(r == role for _, _, r in data.single):
        return None
    if all(x is None for x in b) or all(x is None for x in c):
        return None  # the judge gave no correctness verdicts (e.g. FastChat's single grading)
    return _paired_flips(keys, b, c, s)


def checked_flip_counts(data: RunData, role: str, s: Settings = Settings()) -> FlipCounts | None:
    """Flips decided by the checker (``RUN/checks/``) over the items checked on both sides; an
    ``error`` check (undecided) drops its item. None when either side has no checks."""
    base, comp = data.checks.get("baseline", {}), data.checks.get(role, {})
    if not base or not comp:
        return None
    keys = sorted(set(base) & set(comp), key=item_sort)
    b = [base[k].correct for k in keys]
    c = [comp[k].correct for k in keys]
    return _paired_flips(keys, b, c, s)


def judge_accuracy(data: RunData, roles: tuple[str, ...], s: Settings) -> CI | None:
    """How often the judge's reference-guided correct/incorrect verdict agrees with the checker,
    over the answers of ``roles`` that have both (question-cluster bootstrap). None without both."""
    agree: list[float] = []
    groups: list[str] = []
    for role in roles:
        for key, row in data.checks.get(role, {}).items():
            judged = correctness(data.single.get((key[0], key[1], role)))
            if judged is None or row.correct is None:
                continue
            agree.append(float(judged == row.correct))
            groups.append(key[0])
    if not agree:
        return None
    return bootstrap_mean_ci(np.array(agree), groups, **s.kw())


def quality_signals(data: RunData, role: str, fl: FlipCounts | None) -> Signals:
    """The per-item data of the quality axis' three signals (the same items as the rows)."""
    base, comp = grades(data, "baseline"), grades(data, role)
    paired = sorted(set(base) & set(comp), key=item_sort)
    outcomes = pair_outcomes(data, role)
    okeys = sorted(outcomes, key=item_sort)
    fkeys, fb, fc = flip_items(data, role) if fl is not None else ([], [], [])
    return Signals(baseline_grades=[base[k] for k in paired], compressed_grades=[comp[k] for k in paired],
                   grade_groups=[k[0] for k in paired], outcomes=[outcomes[k] for k in okeys],
                   outcome_groups=[k[0] for k in okeys], flips=fl, flip_baseline=fb,
                   flip_compressed=fc, flip_groups=[k[0] for k in fkeys])


def is_imported(data: RunData) -> bool:
    return bool(data.manifest and "import" in data.manifest.config)


def kl_vs_drop(data: RunData, role: str, s: Settings) -> tuple[CI | None, list[ItemPoint]]:
    """Spearman's rho between an item's mean KL and its grade drop (baseline - compressed)."""
    div = data.divergence.get(role, {})
    base, comp = grades(data, "baseline"), grades(data, role)
    keys = sorted((k for k in div if k in base and k in comp and div[k].stats.n_tokens > 0
                   and not math.isnan(div[k].stats.kl_mean)), key=item_sort)
    points = [ItemPoint(question_id=q, turn=t, category=data.category(q),
                        kl_mean=div[(q, t)].stats.kl_mean, grade_drop=base[(q, t)] - comp[(q, t)])
              for q, t in keys]
    if not div:
        return None, points
    rho = spearman_ci([p.kl_mean for p in points], [p.grade_drop for p in points],
                      groups=[p.question_id for p in points], **s.rho_kw())
    return rho, points


def issue_counts(data: RunData, roles: tuple[str, ...]) -> tuple[dict[str, dict[str, int]],
                                                                  dict[str, dict[str, int]]]:
    """Degradation kinds named by the judge: (single grading, pairwise games), role -> kind -> n."""
    single = {r: Counter() for r in roles}
    pair = {r: Counter() for r in roles}
    for (_, _, role), row in data.single.items():
        if role in single and row.status == "ok" and row.verdict is not None:
            single[role].update(row.verdict.issues)
    for (_, _, role2), prow in data.pairwise.items():
        if role2 not in roles:
            continue
        for g in prow.games or []:
            if g.status == "ok" and g.verdict is not None:
                for r, issues in ((g.a_role, g.verdict.issues_a), (g.b_role, g.verdict.issues_b)):
                    if r in pair:
                        pair[r].update(issues)

    def ordered(c: Counter) -> dict[str, int]:
        return {k: c[k] for k in ISSUE_KINDS if c[k]}

    return {r: ordered(c) for r, c in single.items()}, {r: ordered(c) for r, c in pair.items()}


def vs_control(data: RunData, role: str, s: Settings) -> VsControl | None:
    ctrl, comp = grades(data, "control"), grades(data, role)
    if not ctrl:
        return None
    keys = sorted(set(ctrl) & set(comp), key=item_sort)
    grade_delta = paired_bootstrap_mean_delta([ctrl[k] for k in keys], [comp[k] for k in keys],
                                              groups=[k[0] for k in keys], **s.kw())
    pc, pr = pair_outcomes(data, "control"), pair_outcomes(data, role)
    win_delta = None
    if pc and pr:
        pkeys = sorted(set(pc) & set(pr), key=item_sort)
        win_delta = paired_bootstrap_mean_delta(
            [_PAIR_SCORE[pc[k]] for k in pkeys], [_PAIR_SCORE[pr[k]] for k in pkeys],
            groups=[k[0] for k in pkeys], **s.kw())
    return VsControl(grade_delta=grade_delta, win_score_delta=win_delta)


def build_section(data: RunData, role: str, s: Settings, n_flagged: int = 0,
                  control: Section | None = None, judge_test: SelfTest | None = None) -> Section:
    rows = grade_rows(data, role, s)
    if control is not None:
        noise = {(r.scope, r.label): r.delta for r in control.grades}
        rows = [r.model_copy(update={"noise_delta": noise.get((r.scope, r.label))}) for r in rows]
    rho, points = kl_vs_drop(data, role, s)
    issues, pair_issues = issue_counts(data, ("baseline", role))
    model = data.manifest.models.get(role) if data.manifest else None
    qs = {q for q, _ in grades(data, role)} & {q for q, _ in grades(data, "baseline")}
    if not qs:
        qs = set(data.answers.get(role, {})) & set(data.answers.get("baseline", {}))
    h2h = head_to_head(data, role, s)
    fl = flip_counts(data, role, s)
    ctrl = vs_control(data, role, s) if role != "control" else None
    div = divergence_rows(data, role, s.kw())
    checked = checked_flip_counts(data, role, s)  # machine-checked flips (checks/<role>.jsonl)
    beh = behaviour_axis(data, role, alpha=s.alpha, seed=s.seed, n_resamples=s.n_resamples,
                         dp_rms=div[0].dp_rms if div else None, checked_flips=checked)
    judged = any(r == role for *_, r in data.single) or any(r == role for *_, r in data.pairwise)
    qual = quality_axis(quality_signals(data, role, fl), self_test=judge_test,
                        imported=is_imported(data), judged=judged,
                        missing=missingness(data, role, s.alpha), alpha=s.alpha, seed=s.seed,
                        n_resamples=s.n_resamples)
    section = Section(
        role=role, model=model.name if model else None, n_questions=len(qs), grades=rows,
        head_to_head=h2h, flips=fl, divergence=div, kl_histogram=kl_histogram(data, role),
        kl_method=kl_method(data, role) if div else None,
        kl_grade_spearman=rho, points=points, issues=issues, pair_issues=pair_issues,
        vs_control=ctrl, n_flagged=n_flagged, checked_flips=checked,
        judge_accuracy=judge_accuracy(data, ("baseline", role), s), behaviour=beh, quality=qual,
        verdict=section_verdict(role, rows[0], h2h, fl, div, ctrl, s.alpha, behaviour=beh,
                                quality=qual, self_test=judge_test, checked=checked),
    )
    return section


def summary_rows(sections: list[Section]) -> list[SummaryRow]:
    out = []
    for sec in sections:
        overall = sec.divergence[0] if sec.divergence else None
        f = sec.checked_flips if sec.checked_flips is not None and sec.checked_flips.n else sec.flips
        out.append(SummaryRow(
            role=sec.role, grade_delta=sec.grades[0].delta,
            win_rate=sec.head_to_head.win_rate if sec.head_to_head else None,
            flip_percent=f.flip_percent if f else None, flips_n=f.n if f else None,
            flips_from=None if f is None else "checker" if f is sec.checked_flips else "judge",
            kl_mean=overall.kl_mean if overall else None,
            same_top1=overall.same_top1 if overall else None, n_flagged=sec.n_flagged))
    return out


def failure_counts(data: RunData) -> list[FailureCount]:
    """Every judgment that is not a grade, by kind, role and status, plus items never judged."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for (_, _, role), row in data.single.items():
        if row.status != "ok":
            counts[("single", role, row.status)] += 1
    for (_, _, role2), prow in data.pairwise.items():
        if prow.status != "ok":
            counts[("pairwise", role2, prow.status)] += 1
    expected = {role: {(q, t) for q, a in by_q.items() for t in range(1, len(a.turns) + 1)}
                for role, by_q in data.answers.items()}
    if data.single:
        for role, keys in expected.items():
            judged = {(q, t) for q, t, r in data.single if r == role}
            if missing := len(keys - judged):
                counts[("single", role, "missing")] += 1 * missing
    if data.pairwise:
        base = expected.get("baseline", set())
        for role, keys in expected.items():
            if role == "baseline":
                continue
            judged = {(q, t) for q, t, r in data.pairwise if r == role}
            if missing := len((keys & base) - judged):
                counts[("pairwise", role, "missing")] += missing
    return [FailureCount(kind=k, role=r, status=st, count=n)  # type: ignore[arg-type]
            for (k, r, st), n in sorted(counts.items())]


# --------------------------------------------------------------------------- entry points


def judge_sentence(data: RunData) -> str:
    """Which judge graded what the scorecard shows, and whose judgments were left out."""
    if data.judge_model is None:
        return ""  # no judge (--judge none, or not graded yet): the quality axis says so
    text = f"Judge: {data.judge_model}."
    if data.other_judges:
        text += (f" Left out: {data.n_other_judge} judgments by {', '.join(data.other_judges)} "
                 "(one judge per scorecard; --judge-model picks another).")
    return text


def build_report(run: Run, *, seed: int = 0, n_resamples: int = 2000, alpha: float = 0.05,
                 tokens: bool = True, min_sensitivity: float = DEFAULT_MIN_SENSITIVITY,
                 judge_model: str | None = None, method: IntervalMethod = "expanded",
                 min_questions: int = MIN_QUESTIONS_FOR_INTERVAL
                 ) -> tuple[Scorecard, list[FlaggedItem]]:
    """Load a run once and build its scorecard and flagged list (token KL decoded when asked),
    from the judgments of one judge model (the run's only one, or ``judge_model``).

    ``min_sensitivity``: the lower 95% bound the judge's self-test sensitivity must reach for the
    quality verdict to be shown (`judge.scorecard.selftest`). ``method`` and ``min_questions`` set
    the intervals (module docstring); the defaults are the ones whose coverage is measured, other
    values are for tests that compute intervals by hand.
    """
    data = load_run(run, judge_model)
    s = Settings(seed, n_resamples, alpha, min_sensitivity, method, min_questions)
    flagged = build_flagged(data, tokens=tokens)
    per_role = flagged_counts(flagged)
    judged = bool(data.single or data.pairwise)
    judge_test = (self_test(data, threshold=s.min_sensitivity, alpha=s.alpha)
                  if judged and not is_imported(data) else None)
    control = (build_section(data, "control", s, judge_test=judge_test)
               if "control" in data.roles else None)
    sections = [build_section(data, role, s, per_role.get(role, 0), control, judge_test)
                for role in data.compressed_roles]
    summary = summary_rows(sections + ([control] if control else []))
    failures = failure_counts(data)
    baseline = data.manifest.models.get("baseline") if data.manifest else None
    card = Scorecard(
        created=time.time(), provenance=provenance(data, s.seed, s.n_resamples, 1 - s.alpha),
        baseline_model=baseline.name if baseline else None, sections=sections, control=control,
        summary=summary, failures=failures, n_superseded=data.n_superseded, self_test=judge_test,
        verdict="\n".join(s for s in (judge_sentence(data), overall_verdict(sections, control, failures))
                          if s),
    )
    return card, flagged


def build_scorecard(run: Run, *, seed: int = 0, n_resamples: int = 2000, alpha: float = 0.05,
                    min_sensitivity: float = DEFAULT_MIN_SENSITIVITY, judge_model: str | None = None,
                    method: IntervalMethod = "expanded",
                    min_questions: int = MIN_QUESTIONS_FOR_INTERVAL) -> Scorecard:
    """The scorecard alone (no token decoding); arguments as `build_report`."""
    return build_report(run, seed=seed, n_resamples=n_resamples, alpha=alpha, tokens=False,
                        min_sensitivity=min_sensitivity, judge_model=judge_model, method=method,
                        min_questions=min_questions)[0]


def review_items(run: Run, *, question: str | None = None, role: str | None = None,
                 limit: int | None = 10, judge_model: str | None = None) -> list[FlaggedItem]:
    """What `judge review` shows: the flagged list (from ``flagged.jsonl`` when it is newer than
    the judgments and divergence files, else rebuilt), filtered by role and question.

    With ``question``, every turn of that question is shown, flagged or not. ``judge_model``
    picks the judge in a run graded by several (and rebuilds the list from its judgments).
    """
    from judge.scorecard.flagged import question_views
    from judge.store import read_jsonl

    path = run.root / "flagged.jsonl"
    inputs = [run.single_path, run.pairwise_path]
    if run.divergence_dir.is_dir():
        inputs += list(run.divergence_dir.glob("*"))
    newest_input = max((p.stat().st_mtime for p in inputs if p.exists()), default=0.0)
    if role is not None:
        _check_role(run, role)
    if question is not None:
        data = load_run(run, judge_model)
        known = set(data.questions) | {k for by_q in data.answers.values() for k in by_q}
        if str(question) not in known:
            raise RunFolderError(f"no question {str(question)!r} in this run (questions: "
                                 f"{_listing(known)}); pass one of them to --question",
                                 path=run.root)
        items = question_views(data, str(question), [role] if role else data.compressed_roles)
    elif judge_model is None and path.is_file() and path.stat().st_mtime >= newest_input:
        items = read_jsonl(path, FlaggedItem)
    else:
        items = build_flagged(load_run(run, judge_model), tokens=True,
                              max_token_items=limit or 200)
    if role is not None:
        items = [it for it in items if it.role == role]
    return items if limit is None else items[:limit]


def _listing(names: set[str], most: int = 12) -> str:
    """Names as a short list: numeric ids in numeric order, at most ``most`` then a count."""
    ordered = sorted(names, key=lambda q: (0, int(q), "") if q.lstrip("-").isdigit() else (1, 0, q))
    shown = ", ".join(ordered[:most]) or "none"
    return shown + (f" and {len(ordered) - most} more" if len(ordered) > most else "")


def _check_role(run: Run, role: str) -> None:
    """`judge review --role` names a role this run has, else one line listing the roles it has."""
    if not run.root.is_dir():
        raise RunFolderError("run folder not found; give a run name under outputs/ or a path",
                             path=run.root)
    manifest = run.load_manifest()
    roles = set(run.answer_roles()) | set(manifest.models if manifest else {})
    if run.divergence_dir.is_dir():
        roles |= {p.stem for p in run.divergence_dir.glob("*.jsonl")}
    roles = {r for r in roles if r != "baseline"}
    if role not in roles:
        raise RunFolderError(f"no role {role!r} in this run (roles: {_listing(roles)}); pass one "
                             "of them to --role", path=run.root)
