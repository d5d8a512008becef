"""The quality axis: is the compressed model worse by the judge? One decision over three signals.

Signals (each only when it has data: an interval at the scorecard's level, or flips with n > 0):
  * **grade delta**: the paired mean of compressed - baseline single grades, question-cluster
    bootstrap; distinguishable when its interval excludes 0;
  * **win rate**: (W + T/2) / N of the swapped pairwise games, question-cluster bootstrap;
    distinguishable when its interval excludes 0.5;
  * **flips**: the judge's correct/incorrect verdicts on reference-graded items; distinguishable
    when the exact McNemar p-value is at most the level; direction: the larger flip count.

**Multiplicity.** The three signals are correlated views of one question, and calling the
status ``worse`` when *any* of them is below alpha lets the false ``worse`` rate grow towards 3x
alpha/2. So the status is decided by **Holm's step-down procedure** over the m signals that have
data, at family-wise level alpha (0.05): test every signal at alpha/m (an interval at confidence
1 - alpha/m, or p <= alpha/m); when r signals are distinguishable, test the rest at alpha/(m - r);
repeat until no new one is. Holm holds the family-wise error rate at alpha under any dependence
between the signals, so the chance that a model no different from the baseline reads ``worse``
is at most alpha (a simulation under the null checks it: tests/scorecard/test_quality.py).
Status: ``worse``/``better`` when every distinguishable signal points that way, ``mixed`` when
they disagree, ``not distinguishable`` when none is, ``insufficient data`` when no signal has data.
The self-test then decides whether that status is shown (`quality_axis`).

**Informative missingness** (`missingness`): single judgments that failed or were never made are
left out of the grades; when they fall on one role more than the other beyond chance (exact
McNemar on the items where only one side failed, p < alpha) the grades left are not a random
sample of the answers, and the verdict says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from judge.scorecard.data import RunData
from judge.scorecard.schema import Missingness, Quality, QualitySignal, QualityStatus, SelfTest
from judge.stats import (CI, FlipCounts, bootstrap_mean_ci, bootstrap_ratio_ci, mcnemar_exact,
                         paired_bootstrap_mean_delta, win_rate_ci)


@dataclass(frozen=True)
class Signals:
    """The per-item data behind the three signals (paired, each with its question as group)."""

    baseline_grades: Sequence[float] = ()
    compressed_grades: Sequence[float] = ()
    grade_groups: Sequence[str] = ()
    outcomes: Sequence[str] = ()  # "compressed" | "tie" | "baseline", per game pair
    outcome_groups: Sequence[str] = ()
    flips: FlipCounts | None = None
    flip_baseline: Sequence[bool | None] = field(default=())
    flip_compressed: Sequence[bool | None] = field(default=())
    flip_groups: Sequence[str] = ()


def _excludes(ci: CI, null: float) -> str | None:
    """'below'/'above' when the interval excludes ``null``, None when it holds it or is NaN."""
    if math.isnan(ci.low) or math.isnan(ci.high):
        return None
    return "below" if ci.high < null else "above" if ci.low > null else None


def _test(name: str, sig: Signals, a: float, kw: dict) -> QualitySignal:
    """One signal tested at level ``a`` (two-sided)."""
    if name == "flips":
        f = sig.flips
        assert f is not None
        hit = f.mcnemar_p <= a
        direction = ("worse" if f.correct_to_incorrect > f.incorrect_to_correct else "better") if hit else "same"
        return QualitySignal(name="flips", estimate=f.flip_percent / 100, null=0.0, level=1 - a,
                             p_value=f.mcnemar_p, n=f.n, direction=direction)
    if name == "grade delta":
        ci, null = paired_bootstrap_mean_delta(sig.baseline_grades, sig.compressed_grades,
                                               groups=list(sig.grade_groups), alpha=a, **kw), 0.0
    else:
        ci, null = win_rate_ci(list(sig.outcomes), list(sig.outcome_groups), alpha=a, **kw), 0.5  # type: ignore[arg-type]
    side = _excludes(ci, null)
    return QualitySignal(name=name, estimate=ci.estimate, null=null, level=1 - a,  # type: ignore[arg-type]
                         low=ci.low, high=ci.high, n=ci.n,
                         direction={"below": "worse", "above": "better", None: "same"}[side])


def holm_status(sig: Signals, *, alpha: float = 0.05, seed: int = 0, n_resamples: int = 2000
                ) -> tuple[QualityStatus, list[QualitySignal]]:
    """Holm's step-down procedure over the signals with data (see the module docstring)."""
    kw = {"seed": seed, "n_resamples": n_resamples}
    names = []
    if len(sig.baseline_grades):
        nominal = paired_bootstrap_mean_delta(sig.baseline_grades, sig.compressed_grades,
                                              groups=list(sig.grade_groups), alpha=alpha, **kw)
        if not math.isnan(nominal.low):
            names.append("grade delta")
    if len(sig.outcomes):
        nominal = win_rate_ci(list(sig.outcomes), list(sig.outcome_groups), alpha=alpha, **kw)  # type: ignore[arg-type]
        if not math.isnan(nominal.low):
            names.append("win rate")
    if sig.flips is not None and sig.flips.n:
        names.append("flips")
    m = len(names)
    last: dict[str, QualitySignal] = {}
    rejected: list[str] = []
    while len(rejected) < m:
        a = alpha / (m - len(rejected))
        new = []
        for name in names:
            if name in rejected:
                continue
            last[name] = _test(name, sig, a, kw)
            if last[name].direction != "same":
                new.append(name)
        if not new:
            break
        rejected += new
    signals = [last[n] for n in names]
    directions = {s.direction for s in signals if s.direction != "same"}
    if not signals:
        status: QualityStatus = "insufficient data"
    elif not directions:
        status = "not distinguishable"
    elif len(directions) == 2:
        status = "mixed"
    else:
        status = directions.pop()  # type: ignore[assignment]
    return status, signals


def missingness(data: RunData, role: str, alpha: float) -> Missingness | None:
    """Failed or never-made single judgments on the items both models answered (or both were
    judged on, without answers); None when neither role has single judgments."""
    judged = {(q, t) for q, t, r in data.single if r in ("baseline", role)}
    if not judged:
        return None
    base, comp = data.answers.get("baseline", {}), data.answers.get(role, {})
    if base and comp:
        items = {(q, t) for q, a in base.items() if q in comp
                 for t in range(1, min(len(a.turns), len(comp[q].turns)) + 1)}
    else:
        items = judged
    failed = {r: {k for k in items if (row := data.single.get((*k, r))) is None or row.status != "ok"}
              for r in ("baseline", role)}
    only_b = len(failed["baseline"] - failed[role])
    only_c = len(failed[role] - failed["baseline"])
    p = mcnemar_exact(only_b, only_c)
    return Missingness(n_items=len(items), baseline_failed=len(failed["baseline"]),
                       compressed_failed=len(failed[role]), only_baseline=only_b,
                       only_compressed=only_c, p_value=p, informative=p < alpha)


def quality_axis(sig: Signals, *, self_test: SelfTest | None, imported: bool, judged: bool,
                 missing: Missingness | None, alpha: float, seed: int, n_resamples: int) -> Quality:
    """The quality axis: Holm's status, shown unless there is no judge or it failed its self-test."""
    kw = {"seed": seed, "n_resamples": n_resamples, "alpha": alpha}
    signals_status, signals = holm_status(sig, alpha=alpha, seed=seed, n_resamples=n_resamples)
    m = len(signals)
    method = (f"Holm over {m} signal{'s' if m != 1 else ''} ({', '.join(s.name for s in signals)}), "
              f"family-wise alpha {alpha:g}" if m else "no signal with data")
    recovery = flip_rate = None
    if len(sig.baseline_grades):
        recovery = bootstrap_ratio_ci(sig.compressed_grades, sig.baseline_grades,
                                      list(sig.grade_groups), **kw)
    pairs = [(b, c, g) for b, c, g in zip(sig.flip_baseline, sig.flip_compressed, sig.flip_groups)
             if b is not None and c is not None]
    if pairs:
        flipped = np.array([float(b != c) for b, c, _ in pairs])
        flip_rate = bootstrap_mean_ci(flipped, [g for _, _, g in pairs], **kw)
    if not judged:
        st, reason, status = "no judge", "no judge was run (--judge none)", "unknown"
    elif imported:
        st, status = "imported", signals_status
        reason = "the judge was not self-tested: the judgments were imported from FastChat files"
    elif self_test is None or self_test.status == "not run":
        st, status = "not run", signals_status
        reason = ("the judge was not self-tested (no probe judgments; `judge grade --probes N` "
                  "makes them): its sensitivity is unknown")
    elif self_test.status == "failed":
        st, status = "failed", "unknown"
        reason = f"the judge failed its self-test: {self_test.reason}"
    else:
        st, status, reason = "passed", signals_status, f"the judge passed its self-test: {self_test.reason}"
    return Quality(status=status, signals_status=signals_status, reason=reason,  # type: ignore[arg-type]
                   self_test=st, method=method, signals=signals,  # type: ignore[arg-type]
                   recovery=recovery, flip_rate=flip_rate, missingness=missing)
