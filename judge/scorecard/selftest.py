"""Scoring the judge's self-test: how many planted degradations did the judge see?

Reads ``RUN/judgments/probes.jsonl`` (`judge.grade.selftest` writes it), the latest row per probe
for the scorecard's judge. A probe whose row is not ``ok`` counts as a failed judgment, never as
missed or seen. Over the ok probes, overall and per kind, with Wilson score intervals:
  * ``detected``: the swapped pairwise game preferred the intact answer in both orders;
  * ``graded_lower``: the degraded answer's single grade is below the intact answer's;
  * ``named``: the judge named one of the probe's expected issue kinds (in the single grade of
    the degraded answer when there is one, else in either game's issues for it).
The self-test **passes** when the lower bound of every sensitivity measured (``detected`` and/or
``graded_lower``, by grading mode) reaches the threshold (`DEFAULT_MIN_SENSITIVITY`, configurable:
``judge report --min-sensitivity``, ``[report] min_sensitivity``). The default 0.5 asks that the
judge sees, with 95% confidence, more than half of degradations as gross as a truncated answer,
a shuffled one or a wrong final number; a judge that grades every answer alike detects none.
With no probe rows for the judge the self-test is ``not run``; with rows but none ok, ``failed``.
"""

from __future__ import annotations

from collections import defaultdict

from judge.schemas import PROBE_KINDS, ProbeJudgment
from judge.scorecard.data import RunData
from judge.scorecard.schema import ProbeKindRow, Proportion, SelfTest
from judge.stats import wilson_ci
from judge.store import read_jsonl

DEFAULT_MIN_SENSITIVITY = 0.5


def proportion(k: int, n: int, alpha: float = 0.05) -> Proportion | None:
    if n == 0:
        return None
    ci = wilson_ci(k, n, alpha=alpha)
    return Proportion(k=k, n=n, estimate=ci.estimate, low=ci.low, high=ci.high, level=ci.level)


def scorecard_judge(data: RunData) -> str | None:
    """The judge model of the run's judgments when there is exactly one, else None."""
    judges = {r.judge[0] for r in (*data.single.values(), *data.pairwise.values())}
    return judges.pop() if len(judges) == 1 else None


def probe_rows(data: RunData) -> list[ProbeJudgment]:
    """The latest probe row per probe id, for the scorecard's judge (the most recent probe judge
    when the judgments name none or several)."""
    path = data.run.probes_path
    if not path.is_file():
        return []
    rows = read_jsonl(path, ProbeJudgment)
    if not rows:
        return []
    judge = scorecard_judge(data) or rows[-1].judge
    latest = {r.probe.probe_id: r for r in rows if r.judge == judge}
    return list(latest.values())


def _outcomes(row: ProbeJudgment) -> tuple[bool | None, bool | None, bool]:
    """(detected, graded lower, named) of one ok probe; None where that part was not made."""
    detected = graded = None
    expected = set(row.probe.expected_issues)
    named = False
    if row.pair is not None:
        detected = row.pair.winner == "baseline"
        for g in row.pair.games or []:
            if g.verdict is not None:
                issues = g.verdict.issues_a if g.a_role != "baseline" else g.verdict.issues_b
                named = named or bool(expected & set(issues))
    if row.single is not None and row.intact is not None:
        graded = row.single.score < row.intact.score
        if row.single.verdict is not None:
            named = bool(expected & set(row.single.verdict.issues))
    return detected, graded, named


def self_test(data: RunData, *, threshold: float = DEFAULT_MIN_SENSITIVITY,
              alpha: float = 0.05) -> SelfTest:
    """The self-test of the scorecard's judge (rules in the module docstring)."""
    rows = probe_rows(data)
    judge = rows[0].judge if rows else scorecard_judge(data)
    if not rows:
        return SelfTest(judge=judge, status="not run", threshold=threshold,
                        reason="no probe judgments for this judge (`judge grade --probes N` makes them)")
    ok = [r for r in rows if r.status == "ok"]
    by_kind: dict[str, list[tuple[bool | None, bool | None, bool]]] = defaultdict(list)
    for r in ok:
        by_kind[r.probe.kind].append(_outcomes(r))

    def props(outs: list[tuple[bool | None, bool | None, bool]]
              ) -> tuple[Proportion | None, Proportion | None, Proportion | None]:
        det = [d for d, _, _ in outs if d is not None]
        low = [g for _, g, _ in outs if g is not None]
        return (proportion(sum(det), len(det), alpha), proportion(sum(low), len(low), alpha),
                proportion(sum(n for _, _, n in outs), len(outs), alpha))

    all_outs = [o for outs in by_kind.values() for o in outs]
    detected, graded, named = props(all_outs)
    kinds = []
    for kind in [k for k in PROBE_KINDS if k in by_kind]:
        d, g, n = props(by_kind[kind])
        kinds.append(ProbeKindRow(kind=kind, n=len(by_kind[kind]), detected=d, graded_lower=g, named=n))
    measured = [p for p in (detected, graded) if p is not None]
    n_failed = len(rows) - len(ok)
    if not measured:
        status, reason = "failed", f"none of the {len(rows)} probe judgments succeeded"
    else:
        weak = [(name, p) for name, p in (("detected in both orders", detected),
                                           ("graded lower", graded)) if p is not None
                and p.low < threshold]
        parts = "; ".join(f"{name} {p.k} of {p.n} (95% lower bound {p.low:.2f})"
                          for name, p in (("detected in both orders", detected),
                                          ("graded lower", graded)) if p is not None)
        if weak:
            status = "failed"
            reason = (f"{parts}: below the {threshold:g} the quality verdict needs")
        else:
            status, reason = "passed", f"{parts}: at least {threshold:g}"
        if n_failed:
            reason += f"; {n_failed} probe judgments failed and are not counted"
    return SelfTest(judge=judge, status=status, reason=reason, threshold=threshold,  # type: ignore[arg-type]
                    n_probes=len(rows), n_ok=len(ok), n_failed=n_failed, detected=detected,
                    graded_lower=graded, named=named, kinds=kinds)
