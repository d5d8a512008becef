"""The scorecard's verdict in words: a headline naming both axes, then the numbers behind it.

The headline of a compressed role reads, for example::

    Behaviour changed: 14 of 16 answers differ from the baseline's (first difference at token 9,
    median), KL 0.23 nats, same top-1 87%. Quality: unknown: the judge detected 9 of 24 planted
    degradations.

The rules are not here: the behaviour status is decided in `judge.scorecard.behaviour` (noise
floor or exact identity), the quality status in `judge.scorecard.quality` (Holm over the grade
delta, the win rate and the flips) and the judge's self-test in `judge.scorecard.selftest`. This
module only words them; every number it states is in the scorecard. The detail sentences give each
signal at the scorecard's confidence level (95% by default); with a control run, the difference
*exceeds the noise floor* when the paired CI of compressed - control grades excludes 0.
"""

from __future__ import annotations

import math

from judge.scorecard.schema import (
    Behaviour,
    CandidateVerdict,
    DivergenceRow,
    FailureCount,
    GradeRow,
    HeadToHead,
    Quality,
    QualitySignal,
    Section,
    SelfTest,
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


def fmt_position(x: float) -> str:
    """A token position or a median of positions: ``9`` or ``9.5``."""
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def behaviour_headline(b: Behaviour) -> str:
    """``Behaviour changed: 14 of 16 answers differ ...`` (one sentence)."""
    if not b.n_answers:
        return f"Behaviour {b.status}: {b.reason}."
    n_diff = b.n_answers - b.n_identical
    if n_diff == 0:
        text = f"Behaviour {b.status}: all {b.n_answers} answers are identical to the baseline's"
    else:
        text = (f"Behaviour {b.status}: {n_diff} of {b.n_answers} answers differ from the baseline's "
                f"(first difference at {b.first_diff_unit} {fmt_position(b.first_diff_median or 0)}, median)")
    if b.rule == "noise floor" and b.control_n_answers is not None:
        ctrl_diff = b.control_n_answers - (b.control_n_identical or 0)
        where = "beyond" if b.status == "changed" else "within"
        text += (f", {where} the noise floor (control re-run: {ctrl_diff} of "
                 f"{b.control_n_answers} differ)")
    if b.kl_mean is not None:
        text += f", KL {fmt(b.kl_mean.estimate, 2 if b.kl_mean.estimate >= 0.01 else 4)} nats"
    if b.same_top1 is not None:
        text += f", same top-1 {100 * b.same_top1.estimate:.0f}%"
    f = b.checked_flips
    if f is not None and f.n:
        text += (f", {f.correct_to_incorrect + f.incorrect_to_correct} checked flips of {f.n} "
                 f"({f.correct_to_incorrect} correct\u2192incorrect)")
    return text + "."


def _probe_count(t: SelfTest | None) -> str:
    if t is None:
        return ""
    if t.detected is not None:
        return f"the judge detected {t.detected.k} of {t.detected.n} planted degradations"
    if t.graded_lower is not None:
        return f"the judge graded {t.graded_lower.k} of {t.graded_lower.n} planted degradations lower"
    return f"no probe judgment succeeded ({t.n_failed} failed)"


def _signal(s: QualitySignal) -> str:
    if s.name == "grade delta":
        return f"grade delta {fmt(s.estimate, signed=True)}"
    if s.name == "win rate":
        return f"win rate {fmt(s.estimate)}"
    return f"flips {fmt(100 * s.estimate, 1)}% of items, McNemar p = {fmt(s.p_value, 3)}"


def quality_headline(q: Quality, self_test: SelfTest | None) -> str:
    """``Quality: unknown: the judge detected 9 of 24 planted degradations.`` (one sentence)."""
    text = f"Quality: {q.status}"
    decided = [_signal(s) for s in q.signals if s.direction != "same"]
    if q.status in ("worse", "better", "mixed") and decided:
        text += f" ({', '.join(decided)})"
    if q.self_test == "no judge":
        text += ": no judge was run"
    elif q.self_test == "failed":
        text += f": {_probe_count(self_test)}"
    elif q.self_test == "passed":
        text += f"; {_probe_count(self_test)}"
    elif q.self_test == "imported":
        text += "; the judge was not self-tested (imported judgments)"
    else:
        text += "; the judge was not self-tested (no probes)"
    m = q.missingness
    if m is not None and m.informative:
        text += (f"; informative missingness: {m.compressed_failed} judgments failed for this model "
                 f"against {m.baseline_failed} for the baseline")
    return text + "."


def section_verdict(role: str, overall: GradeRow, h2h: HeadToHead | None, flips: FlipCounts | None,
                    divergence: list[DivergenceRow], ctrl: VsControl | None, alpha: float, *,
                    behaviour: Behaviour, quality: Quality, self_test: SelfTest | None,
                    checked: FlipCounts | None = None) -> CandidateVerdict:
    """The headline (both axes) and the detail sentences of one section."""
    level = f"{100 * (1 - alpha):.0f}%"
    headline = f"{behaviour_headline(behaviour)} {quality_headline(quality, self_test)}"
    parts: list[str] = [f"Behaviour rule: {behaviour.reason}."]
    d = overall.delta
    if overall.n:
        where = {"below": "lower than the baseline's, distinguishable from zero",
                 "above": "higher than the baseline's, distinguishable from zero",
                 None: "not distinguishable from zero",
                 "none": "too few questions for an interval"}[_side(d, 0.0)]
        parts.append(f"Grade delta {fmt_ci(d, signed=True)} ({level} CI, {d.n} items from "
                     f"{d.n_clusters} questions): {where}.")
    if h2h is not None:
        w = h2h.win_rate
        where = {"below": "below 0.5", "above": "above 0.5", None: "not distinguishable from 0.5",
                 "none": "too few questions for an interval"}[_side(w, 0.5)]
        parts.append(f"Win rate {fmt_ci(w)} over {h2h.n} swapped games ({h2h.compressed_wins} W / "
                     f"{h2h.ties} T / {h2h.baseline_wins} L, {h2h.strong_losses} strong losses, "
                     f"{100 * h2h.inconsistency_rate:.0f}% position-inconsistent): {where}.")
    if checked is not None and checked.n:  # the checker decides correctness where it can
        parts.append(f"Flips, checked by code (not by the judge), on {checked.n} checkable items: "
                     f"{checked.correct_to_incorrect} correct\u2192incorrect, "
                     f"{checked.incorrect_to_correct} incorrect\u2192correct "
                     f"({fmt(checked.flip_percent, 1)}%), McNemar p = {fmt(checked.mcnemar_p, 3)}; "
                     f"checked accuracy {fmt(100 * checked.baseline_accuracy, 1)}% \u2192 "
                     f"{fmt(100 * checked.compressed_accuracy, 1)}%.")
    elif flips is not None and flips.n:
        parts.append(f"Flips on {flips.n} reference-graded items: {flips.correct_to_incorrect} "
                     f"correct\u2192incorrect, {flips.incorrect_to_correct} incorrect\u2192correct "
                     f"({fmt(flips.flip_percent, 1)}%), McNemar p = {fmt(flips.mcnemar_p, 3)}.")
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
    parts.append(f"Quality rule: {quality.method}; {quality.reason}.")
    m = quality.missingness
    if m is not None and (m.baseline_failed or m.compressed_failed):
        parts.append(f"Single judgments not graded: {m.baseline_failed} of the baseline, "
                     f"{m.compressed_failed} of {role} over {m.n_items} items (only one side: "
                     f"{m.only_baseline} vs {m.only_compressed}, McNemar p = {fmt(m.p_value, 3)}"
                     f"{': informative missingness' if m.informative else ''}).")
    return CandidateVerdict(status=quality.status, headline=headline,
                            text=" ".join([headline, *parts]))


def overall_verdict(sections: list[Section], control: Section | None,
                    failures: list[FailureCount]) -> str:
    """One headline per compressed role, then the noise floor and the failures (newline-separated)."""
    if not sections:
        text = "This run has no compressed model to compare with the baseline."
    else:
        text = "\n".join(f"{sec.role}: {sec.verdict.headline}" for sec in sections)
    if control is not None:
        text += f"\nNoise floor (control re-run of the baseline): {control.verdict.headline}"
    n_failed = sum(f.count for f in failures if f.status != "missing")
    n_missing = sum(f.count for f in failures if f.status == "missing")
    if n_failed or n_missing:
        text += (f"\nJudgments left out (never counted as grades, see Failures): {n_failed} "
                 f"failed, {n_missing} never made.")
    return text
