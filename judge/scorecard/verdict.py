"""The scorecard's verdict: a few sentences saying whether a difference is distinguishable from zero.

Rules, each at the scorecard's confidence level (95% by default):
  * grades: the paired delta's bootstrap CI lies entirely below 0 (worse) or above 0 (better);
  * head-to-head: the win rate's CI lies entirely below 0.5 (worse) or above 0.5 (better);
  * flips: the exact McNemar p-value is below alpha; the direction is the larger flip count.
The status is ``worse``/``better`` when every distinguishable signal points that way, ``mixed``
when they disagree, ``indistinguishable`` when none is, ``insufficient data`` without any signal.
With a control run (a re-run of the baseline), the difference *exceeds the noise floor* when the
paired CI of compressed - control grades excludes 0.
"""

from __future__ import annotations

import math

from judge.scorecard.schema import (
    CandidateVerdict,
    DivergenceRow,
    FailureCount,
    GradeRow,
    HeadToHead,
    Section,
    VsControl,
)
from judge.stats import CI, FlipCounts


def fmt(x: float | None, digits: int = 2, signed: bool = False) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    text = f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    return text.replace("-", "\u2212")


def fmt_ci(ci: CI, digits: int = 2, signed: bool = False) -> str:
    """``-0.42 [-0.80, -0.05]``; no interval when it is NaN."""
    if math.isnan(ci.low) or math.isnan(ci.high):
        return fmt(ci.estimate, digits, signed)
    return (f"{fmt(ci.estimate, digits, signed)} [{fmt(ci.low, digits, signed)}, "
            f"{fmt(ci.high, digits, signed)}]")


def _side(ci: CI, null: float) -> str | None:
    """'above'/'below' when the CI excludes ``null``, None when it contains it, 'none' without one."""
    if math.isnan(ci.low) or math.isnan(ci.high):
        return "none"
    if ci.low > null:
        return "above"
    if ci.high < null:
        return "below"
    return None


def section_verdict(role: str, overall: GradeRow, h2h: HeadToHead | None, flips: FlipCounts | None,
                    divergence: list[DivergenceRow], ctrl: VsControl | None,
                    alpha: float) -> CandidateVerdict:
    level = f"{100 * (1 - alpha):.0f}%"
    name = "The control run (a re-run of the baseline)" if role == "control" else f"{role}"
    parts: list[str] = []
    signals: list[str] = []  # "worse" | "better" | "same", one per signal with data

    d = overall.delta
    if overall.n:
        side = _side(d, 0.0)
        where = {"below": "lower than the baseline's, distinguishable from zero",
                 "above": "higher than the baseline's, distinguishable from zero",
                 None: "not distinguishable from zero",
                 "none": "too few questions for an interval"}[side]
        parts.append(f"Grade delta {fmt_ci(d, signed=True)} ({level} CI, {d.n} items from "
                     f"{d.n_clusters} questions): {where}.")
        if side in ("below", "above", None):
            signals.append({"below": "worse", "above": "better", None: "same"}[side])
    if h2h is not None:
        w = h2h.win_rate
        side = _side(w, 0.5)
        where = {"below": "below 0.5", "above": "above 0.5", None: "not distinguishable from 0.5",
                 "none": "too few questions for an interval"}[side]
        parts.append(f"Win rate {fmt_ci(w)} over {h2h.n} swapped games ({h2h.compressed_wins} W / "
                     f"{h2h.ties} T / {h2h.baseline_wins} L, {h2h.strong_losses} strong losses, "
                     f"{100 * h2h.inconsistency_rate:.0f}% position-inconsistent): {where}.")
        if side in ("below", "above", None):
            signals.append({"below": "worse", "above": "better", None: "same"}[side])
    if flips is not None and flips.n:
        sig = flips.mcnemar_p < alpha
        parts.append(f"Flips on {flips.n} reference-graded items: {flips.correct_to_incorrect} "
                     f"correct\u2192incorrect, {flips.incorrect_to_correct} incorrect\u2192correct "
                     f"({fmt(flips.flip_percent, 1)}%), McNemar p = {fmt(flips.mcnemar_p, 3)}"
                     f"{'' if sig else ' (not significant)'}.")
        if sig:
            signals.append("worse" if flips.correct_to_incorrect > flips.incorrect_to_correct
                           else "better")
        else:
            signals.append("same")
    if divergence:
        o = divergence[0]
        parts.append(f"Mean KL {fmt(o.kl_mean, 4)} nats over {o.n_tokens} tokens, same top-1 "
                     f"{fmt(100 * o.same_top1, 1)}%.")
    if ctrl is not None:
        side = _side(ctrl.grade_delta, 0.0)
        where = ("exceeds the noise floor" if side in ("below", "above")
                 else "is within the noise floor")
        parts.append(f"Against the control re-run, grade delta {fmt_ci(ctrl.grade_delta, signed=True)}"
                     f": the difference {where}.")

    distinct = {s for s in signals if s != "same"}
    if not signals:
        status = "insufficient data"
    elif not distinct:
        status = "indistinguishable"
    elif len(distinct) == 2:
        status = "mixed"
    else:
        status = distinct.pop()
    head = {"worse": f"{name} is worse than the baseline.",
            "better": f"{name} is better than the baseline.",
            "mixed": f"{name} differs from the baseline in mixed directions.",
            "indistinguishable": f"{name} is not distinguishable from the baseline.",
            "insufficient data": f"{name}: not enough judgments for a verdict."}[status]
    return CandidateVerdict(status=status, text=" ".join([head, *parts]))  # type: ignore[arg-type]


def overall_verdict(sections: list[Section], control: Section | None,
                    failures: list[FailureCount]) -> str:
    """One paragraph per compressed role, then the noise floor and the failures (newline-separated)."""
    if not sections:
        text = "This run has no compressed model to compare with the baseline."
    else:
        text = "\n".join(sec.verdict.text for sec in sections)
    if control is not None:
        text += f"\nNoise floor: control grade delta {fmt_ci(control.grades[0].delta, signed=True)}."
    n_failed = sum(f.count for f in failures if f.status != "missing")
    n_missing = sum(f.count for f in failures if f.status == "missing")
    if n_failed or n_missing:
        text += (f"\nJudgments left out (never counted as grades, see Failures): {n_failed} "
                 f"failed, {n_missing} never made.")
    return text
