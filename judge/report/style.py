"""Presentation helpers shared by the renderers: number formats, KL colours, safe terminal text.

Nothing here computes a statistic; it only formats what the scorecard holds.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from judge.scorecard import fmt, fmt_ci  # noqa: F401 - re-exported for the renderers

if TYPE_CHECKING:
    from judge.scorecard import Section
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
                 "indistinguishable": "#566573", "insufficient data": "#7f8c8d"}


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
