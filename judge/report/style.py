"""Presentation helpers shared by the renderers: number formats, KL colours, safe terminal text.

Nothing here computes a statistic; it only formats what the scorecard holds.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from judge.scorecard import fmt, fmt_ci, fmt_position  # noqa: F401 - re-exported for the renderers

if TYPE_CHECKING:
    from judge.scorecard import Behaviour, FlaggedItem, Proportion, Quality, Section, SelfTest
    from judge.stats import CI

_FEW_RE = re.compile(r"questions < (\d+): no interval \((.*)\)$")

# C0 controls except tab and newline, DEL, and C1 controls: ESC starts terminal escape sequences
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
# bidi overrides and isolates can reorder what a reader sees ("Trojan Source")
_BIDI_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")

KL_LOW_NATS = 1e-3  # below this a token is not coloured
KL_HIGH_NATS = 3.0  # at or above this a token gets the strongest colour


def visible_text(text: str) -> str:
    """Model or judge text made safe for a terminal: control characters shown as symbols.

    ``\\x1b`` becomes ``␛`` (U+241B) and so on (U+2400 + code for C0, ``␡`` for DEL, U+FFFD for
    C1 controls), bidi override characters become U+FFFD. Newlines and tabs are kept.
    """

    def picture(m: re.Match[str]) -> str:
        code = ord(m.group(0))
        if code < 0x20:
            return chr(0x2400 + code)
        if code == 0x7F:
            return "\u2421"
        return "\ufffd"

    return _BIDI_RE.sub("\ufffd", _CONTROL_RE.sub(picture, text))


def kl_level(kl_nats: float) -> float:
    """Colour intensity in [0, 1]: 0 below 1e-3 nats, 1 at 3 nats and above, log-scaled between."""
    if math.isnan(kl_nats) or kl_nats <= KL_LOW_NATS:
        return 0.0
    if kl_nats >= KL_HIGH_NATS:
        return 1.0
    return math.log(kl_nats / KL_LOW_NATS) / math.log(KL_HIGH_NATS / KL_LOW_NATS)


def kl_rgb(kl_nats: float) -> tuple[int, int, int] | None:
    """A background colour for a token: none, then pale yellow through orange to red."""
    level = kl_level(kl_nats)
    if level <= 0.0:
        return None
    # pale yellow (255, 245, 190) -> orange (253, 174, 97) -> red (215, 48, 39)
    stops = [(255, 245, 190), (253, 174, 97), (215, 48, 39)]
    x = level * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    t = x - i
    a, b = stops[i], stops[i + 1]
    r, g, bl = (round(a[j] + (b[j] - a[j]) * t) for j in range(3))
    return r, g, bl


def kl_hex(kl_nats: float) -> str | None:
    rgb = kl_rgb(kl_nats)
    return None if rgb is None else "#{:02x}{:02x}{:02x}".format(*rgb)


def grade_label(score: float | None, status: str | None, correct: bool | None) -> str:
    """``grade 7, correct`` / ``not judged`` / ``judgment failed (api_error)``."""
    if status is None and score is None:
        return "not judged"
    if score is None:
        return f"judgment failed ({status})"
    return f"grade {fmt(score, 0)}" + ("" if correct is None else (", correct" if correct else ", incorrect"))


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.{digits}f}%"


def pct_ci(ci: "CI | None", digits: int = 1) -> str:
    """A share with its interval in percent: ``85.8% [80.1, 90.2]``; the share alone without one."""
    if ci is None:
        return "n/a"
    if math.isnan(ci.low) or math.isnan(ci.high):
        return pct(ci.estimate, digits)
    return f"{pct(ci.estimate, digits)} [{100 * ci.low:.{digits}f}, {100 * ci.high:.{digits}f}]"


def flips_test(f: object) -> str:
    """The name of the flip test the scorecard ran: by question when grouped, else by item."""
    return ("McNemar p by question" if getattr(f, "n_clusters", None) is not None
            else "McNemar exact p")


STATUS_COLOUR = {"worse": "#c0392b", "better": "#1e8449", "mixed": "#b9770e",
                 "not distinguishable": "#566573", "insufficient data": "#7f8c8d",
                 "unknown": "#7f8c8d", "changed": "#b9770e", "unchanged": "#1e8449",
                 "passed": "#1e8449", "failed": "#c0392b", "not run": "#7f8c8d"}


def _ci_pct(ci: "CI | None") -> str:
    if ci is None:
        return "n/a"
    if math.isnan(ci.low):
        return pct(ci.estimate)
    return f"{pct(ci.estimate)} [{pct(ci.low)}, {pct(ci.high)}]"


def behaviour_rule(b: "Behaviour") -> str:
    """The rule that decided the behaviour status, in a few words."""
    if b.rule == "noise floor":
        return (f"noise floor: {b.beyond_floor} vs {b.below_floor} of {b.n_questions} questions, "
                f"sign test p = {fmt(b.sign_test_p, 3)}")
    if b.rule == "exact identity":
        why = "" if b.status != "unknown" else (
            "; sampled answers" if b.greedy is False else "; decoding not recorded")
        return f"exact identity, no control run{why}"
    return "no answers to compare"


def behaviour_line(b: "Behaviour") -> str:
    """The behaviour axis in one or two terminal lines: status, rule, identity, KL, top-1, flips."""
    text = f"Behaviour: {b.status} [{behaviour_rule(b)}]"
    if b.n_answers:
        text += f" {b.n_answers - b.n_identical} of {b.n_answers} answers differ"
        if b.first_diff_median is not None:
            text += f", first at {b.first_diff_unit} {fmt_position(b.first_diff_median)} (median)"
    if b.kl_mean is not None:
        text += f"; mean KL {fmt_ci(b.kl_mean, 4)} nats"
    if b.same_top1 is not None:
        text += f", same top-1 {_ci_pct(b.same_top1)}"
    f = b.checked_flips
    if f is not None and f.n:
        text += (f"; checked flips {f.correct_to_incorrect} c→i, {f.incorrect_to_correct} i→c of "
                 f"{f.n}")
    return text


SELF_TEST_WORDS = {"passed": "the judge passed its self-test", "failed": "the judge failed its self-test",
                   "not run": "the judge was not self-tested (no probes)",
                   "imported": "the judge was not self-tested (imported judgments)",
                   "no judge": "no judge was run"}


def quality_line(q: "Quality") -> str:
    """The quality axis in one or two terminal lines: status, self-test, the Holm decision."""
    text = f"Quality: {q.status} [{SELF_TEST_WORDS[q.self_test]}]"
    if q.self_test != "no judge":
        if q.status == "unknown":
            text += f"; its signals alone say {q.signals_status}"
        decided = [f"{s.name} {s.direction} at {100 * s.level:.1f}%" for s in q.signals
                   if s.direction != "same"]
        text += f"; {q.method}" + (f": {', '.join(decided)}" if decided else
                                   (": none distinguishable" if q.signals else ""))
    m = q.missingness
    if m is not None and m.informative:
        text += (f"; INFORMATIVE MISSINGNESS: {m.compressed_failed} failed judgments of this model "
                 f"vs {m.baseline_failed} of the baseline (McNemar p = {fmt(m.p_value, 3)})")
    return text


def self_test_lines(t: "SelfTest", *, per_kind: bool = True) -> list[str]:
    """The judge's self-test: overall sensitivities with 95% intervals, then (``per_kind``) per kind."""
    def prop(name: str, p: "Proportion | None") -> str | None:
        if p is None:
            return None
        return f"{name} {p.k}/{p.n} ({pct(p.estimate, 0)} [{pct(p.low, 0)}, {pct(p.high, 0)}])"

    parts = [x for x in (prop("detected in both orders", t.detected),
                         prop("graded lower", t.graded_lower),
                         prop("named the kind", t.named)) if x]
    head = f"Judge self-test ({t.judge or '?'}): {t.status}"
    if parts:
        head += f"; {', '.join(parts)}; threshold {t.threshold:g} on the lower bound"
    else:
        head += f"; {t.reason}"
    if t.n_failed:
        head += f"; {t.n_failed} probe judgments failed"
    lines = [head]
    if t.kinds and per_kind:
        def frac(p: "Proportion | None") -> str:
            return "-" if p is None else str(p.k)

        lines.append("  per kind, of n (detected|graded lower|named): " + ", ".join(
            f"{k.kind} {frac(k.detected)}|{frac(k.graded_lower)}|{frac(k.named)} of {k.n}"
            for k in t.kinds))
    return lines


def diverged_text(item: "FlaggedItem") -> str:
    """``, KL mass 2.31, first difference at token 9`` (empty when unknown)."""
    out = ""
    if item.kl_mass is not None:
        out += f", KL mass {fmt(item.kl_mass, 2)}"
    if item.first_diff is not None:
        out += f", first difference at {item.first_diff_unit} {item.first_diff}"
    elif item.answers_identical:
        out += ", answers identical"
    return out


def ci_cell(ci: "CI", digits: int = 2, signed: bool = False) -> str:
    """`fmt_ci`, and for an estimate left without an interval because too few questions were
    behind it, how many: ``−1.00 (3 q: no CI)`` (see `few_questions_caption`)."""
    text = fmt_ci(ci, digits, signed)
    if (math.isnan(ci.low) and not math.isnan(ci.estimate) and ci.note
            and _FEW_RE.search(ci.note)):
        text += f" ({ci.n_clusters} q: no CI)"
    return text


def few_questions_caption(cis: "list[CI | None]") -> str | None:
    """Why some cells have no interval, once per table; None when every interval is there."""
    for ci in cis:
        m = _FEW_RE.search(ci.note or "") if ci is not None and math.isnan(ci.low) else None
        if m is not None:
            return f"No CI below {m.group(1)} questions: {m.group(2)}"
    return None


def grade_table(sec: "Section", control: "Section | None") -> tuple[list[str], list[list[object]]]:
    """Header and rows of a section's grade table (scope, n, means, Δ, noise Δ), shared by the
    Markdown and HTML renderers. No rows when no item was graded ok for both models."""
    noise = control is not None and sec.role != "control"
    header = ["scope", "n", "baseline", sec.role, "Δ [95% CI]"] + (["noise Δ"] if noise else [])
    rows: list[list[object]] = []
    if not sec.grades or not sec.grades[0].n:
        return header, rows
    for r in sec.grades:
        row: list[object] = [r.label, r.n, fmt(r.baseline_mean), fmt(r.compressed_mean),
                             ci_cell(r.delta, signed=True)]
        if noise:
            row.append(ci_cell(r.noise_delta, signed=True) if r.noise_delta else "n/a")
        rows.append(row)
    return header, rows


def self_test_rows(t: "SelfTest") -> tuple[list[str], list[list[object]]]:
    """Header and rows of the self-test table (overall, then per kind), for Markdown and HTML."""
    def cellp(p: "Proportion | None") -> str:
        if p is None:
            return "n/a"
        return f"{p.k}/{p.n} ({pct(p.estimate, 0)} [{pct(p.low, 0)}, {pct(p.high, 0)}])"

    header = ["probes", "n", "detected in both orders", "graded lower", "named the kind"]
    if not t.n_ok:
        return header, []
    rows: list[list[object]] = [["all", t.n_ok, cellp(t.detected), cellp(t.graded_lower), cellp(t.named)]]
    rows += [[k.kind, k.n, cellp(k.detected), cellp(k.graded_lower), cellp(k.named)] for k in t.kinds]
    return header, rows


def flips_table(f: object) -> tuple[list[str], list[list[object]]]:
    """Header and row of the flips table (Markdown and HTML): counts, accuracies with the
    question-level interval of their difference, and the McNemar test the scorecard ran."""
    acc = f"{pct(f.baseline_accuracy)} → {pct(f.compressed_accuracy)}"  # type: ignore[attr-defined]
    delta = getattr(f, "accuracy_delta", None)
    if delta is not None:
        acc += f", Δ {ci_cell(delta, 3, signed=True)}"
    return (["n", "dropped", "correct→incorrect", "incorrect→correct", "% flips", "accuracy",
             flips_test(f)],
            [[f.n, f.n_dropped, f.correct_to_incorrect, f.incorrect_to_correct,  # type: ignore[attr-defined]
              fmt(f.flip_percent, 1), acc, fmt(f.mcnemar_p, 3)]])  # type: ignore[attr-defined]


def summary_flips(s: "object") -> str:
    """The summary table's flips cell: the percentage, marked when the checker decided it."""
    pct_ = getattr(s, "flip_percent", None)
    if pct_ is None:
        return "n/a"
    return f"{fmt(pct_, 1)}%" + (" (checked)" if getattr(s, "flips_from", None) == "checker" else "")


def judge_accuracy_text(sec: "Section") -> str | None:
    """The judge's correct/incorrect verdicts scored against the checker, in one sentence."""
    a = sec.judge_accuracy
    if a is None:
        return None
    return (f"The judge's correct/incorrect verdicts agree with the checker on "
            f"{ci_cell(a)} of {a.n} checked answers ({a.n_clusters} questions).")


def divergence_table(sec: "Section") -> tuple[list[str], list[list[object]], str | None]:
    """Header, rows and caption of the divergence table (Markdown and HTML): means with their
    question-level intervals, quantiles (of the lower bound when ``quantiles_of`` says so)."""
    header = ["scope", "items", "tokens", "mean [95% CI]", "median", "p99", "max",
              "same top-1 [95% CI]", "RMS Δp"]
    rows: list[list[object]] = []
    for d in sec.divergence:
        mean = ci_cell(d.kl_mean_ci, 4) if d.kl_mean_ci is not None else fmt(d.kl_mean, 4)
        top1 = pct_ci(d.same_top1_ci) if d.same_top1_ci is not None else pct(d.same_top1)
        rows.append([d.label, d.n_items, d.n_tokens, mean, fmt(d.kl_median, 4), fmt(d.kl_p99, 3),
                     fmt(d.kl_max, 3), top1, fmt(d.dp_rms, 4)])
    notes = []
    if any(d.quantiles_of == "kl lower bound" for d in sec.divergence):
        notes.append("Median, p99 and max are of the per-token top-K lower bound (the tail "
                     "estimate is unbiased for means, but noisy per token)")
    if few := few_questions_caption([d.kl_mean_ci for d in sec.divergence]):
        notes.append(few)
    return header, rows, "; ".join(notes) or None
