"""The scorecard and the flagged-response review in a terminal, with rich.

Every string that comes from a file (model answers, judge explanations, categories, model names)
goes into a `rich.text.Text` after `visible_text`, never into a markup-interpreted string, so
``[bold]`` stays literal and escape sequences cannot reach the terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from judge.report.style import (STATUS_COLOUR, behaviour_line, ci_cell, diverged_text,
                                few_questions_caption, flips_test, judge_accuracy_text, summary_flips, fmt, fmt_ci, grade_label, kl_rgb,
                                pct, quality_line, self_test_lines, visible_text)
from judge.scorecard import FlaggedItem, Scorecard, Section

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text


def _t(text: object, style: str = "") -> "Text":
    """File-derived text as a literal rich Text; long words fold instead of being cut off."""
    from rich.text import Text

    return Text(visible_text("" if text is None else str(text)), style=style, overflow="fold")


def _console(console: "Console | None") -> "Console":
    from rich.console import Console

    return console or Console()


def _table(title: str, *columns: str) -> "object":
    from rich.table import Table

    table = Table(title=_t(title, "bold"), title_justify="left", show_edge=False, pad_edge=False)
    for i, col in enumerate(columns):
        table.add_column(_t(col), justify="left" if i == 0 else "right", no_wrap=i > 0,
                         min_width=10 if i == 0 else None)
    return table


def _section(sec: Section, control: Section | None, categories: bool) -> list["RenderableType"]:
    from rich.panel import Panel
    from rich.rule import Rule

    out: list[RenderableType] = []
    colour = STATUS_COLOUR.get(sec.quality.status, "white")
    title = _t(f"{sec.role} ({sec.model or '?'}): behaviour {sec.behaviour.status} · quality "
               f"{sec.quality.status}", f"bold {colour}")
    if sec.role == "control":  # the candidates' verdicts are already in the top panel
        out.append(Panel(_t(sec.verdict.text), title=title, title_align="left"))
    else:
        out.append(Rule(title, align="left"))
    out.append(_t(behaviour_line(sec.behaviour)))
    out.append(_t(quality_line(sec.quality)))
    noise = control is not None and sec.role != "control"
    cols = ["scope", "n", "baseline", sec.role, "Δ [95% CI]"] + (["noise Δ"] if noise else [])
    grades = _table("Grades (1-10), paired items", *cols)
    shown = [row for row in sec.grades if row.scope != "category" or categories]
    for row in shown:
        cells = [_t(row.label), _t(row.n), _t(fmt(row.baseline_mean)), _t(fmt(row.compressed_mean)),
                 _t(ci_cell(row.delta, signed=True))]
        if noise:
            cells.append(_t(ci_cell(row.noise_delta, signed=True) if row.noise_delta else "n/a"))
        grades.add_row(*cells)
    caption = few_questions_caption([r.delta for r in shown])
    if caption:
        grades.caption, grades.caption_justify = _t(caption), "left"
    out.append(grades if sec.grades[0].n else _t("Grades: no item was graded ok for both models"))
    h = sec.head_to_head
    if h is not None:
        line = (f"Head-to-head (n={h.n}): {h.compressed_wins} W / {h.ties} T / {h.baseline_wins} L; "
                f"win rate {ci_cell(h.win_rate)}; strong losses {h.strong_losses}; "
                f"position-inconsistent {h.inconsistent} ({pct(h.inconsistency_rate, 0)})")
        if noise and control.head_to_head is not None:
            line += f"; control win rate {fmt_ci(control.head_to_head.win_rate)}"
        out.append(_t(line))
    if sec.checked_flips is not None:
        out.append(_t(_flips_line("Checked flips (by code, no judge; ", "undecided", "checked accuracy",
                                  sec.checked_flips)))
    if judge_accuracy_text(sec):
        out.append(_t(judge_accuracy_text(sec) or ""))
    if sec.flips is not None:
        out.append(_t(_flips_line("Flips on reference-graded items (", "without both verdicts",
                                  "accuracy", sec.flips)))
    if sec.divergence:
        div = _table("Divergence KL(baseline‖compressed), nats", "scope", "items", "tokens",
                     "mean [95% CI]", "median", "p99", "max", "same top-1")
        rows = [d for d in sec.divergence if d.scope != "category" or categories]
        for d in rows:
            mean = ci_cell(d.kl_mean_ci, 4) if d.kl_mean_ci is not None else fmt(d.kl_mean, 4)
            div.add_row(_t(d.label), _t(d.n_items), _t(d.n_tokens), _t(mean),
                        _t(fmt(d.kl_median, 4)), _t(fmt(d.kl_p99, 3)), _t(fmt(d.kl_max, 3)),
                        _t(pct(d.same_top1)))
        notes = [f"KL: {sec.kl_method}" if sec.kl_method else None,
                 few_questions_caption([d.kl_mean_ci for d in rows])]
        if any(notes):
            div.caption = _t("; ".join(n for n in notes if n))
            div.caption_justify = "left"
        out.append(div)
    if sec.kl_grade_spearman is not None:
        rho = sec.kl_grade_spearman
        out.append(_t(f"Spearman ρ(KL, grade drop) = {fmt_ci(rho)} over {rho.n} items"
                      + (f" ({rho.note})" if rho.note else "")))
    kinds = sorted({k for d in (*sec.issues.values(), *sec.pair_issues.values()) for k in d})
    if kinds and categories:
        roles = list(sec.issues)
        issues = _table("Degradation kinds (single | pairwise)", "kind",
                        *[r for r in roles])
        for k in kinds:
            issues.add_row(_t(k), *[_t(f"{sec.issues.get(r, {}).get(k, 0)} | "
                                       f"{sec.pair_issues.get(r, {}).get(k, 0)}") for r in roles])
        out.append(issues)
    elif kinds:  # compact: the kinds named for this model only, most frequent first
        counts = {k: sec.issues.get(sec.role, {}).get(k, 0) + sec.pair_issues.get(sec.role, {}).get(k, 0)
                  for k in kinds}
        top = ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n)
        if top:
            out.append(_t(f"Degradation kinds named for {sec.role} (single + pairwise): {top}"))
    out.append(_t(f"Flagged responses: {sec.n_flagged} (see `judge review`)"
                  + ("" if categories else "; per category and per kind: scorecard.md, report.html")))
    return out


def scorecard_renderables(card: Scorecard, *, categories: bool = True) -> list["RenderableType"]:
    """The scorecard as rich renderables; ``categories=False`` keeps the overall and per-turn rows
    only (the compact form `judge compare` prints; the files always hold every row)."""
    from rich.panel import Panel
    from rich.rule import Rule

    p = card.provenance
    verdict, title = card.verdict, "Verdict"
    first, _, rest = verdict.partition("\n")
    if p.judge_model and not p.other_judges and first == f"Judge: {p.judge_model}.":
        verdict, title = rest, f"Verdict (judge {p.judge_model})"  # one line less on the screen
    out: list[RenderableType] = [Rule(_t(f"judge scorecard — {p.run}", "bold")),
                                 Panel(_t(verdict), title=_t(title, "bold"), title_align="left")]
    for sec in card.sections:
        out.extend(_section(sec, card.control, categories))
    if card.control is not None:
        out.extend(_section(card.control, None, categories))
    if len(card.summary) > 1:
        summary = _table("Candidates", "role", "grade Δ [95% CI]", "win rate", "flips", "mean KL",
                         "same top-1", "flagged")
        for s in card.summary:
            summary.add_row(_t(s.role), _t(ci_cell(s.grade_delta, signed=True)),
                            _t(ci_cell(s.win_rate) if s.win_rate else "n/a"),
                            _t(summary_flips(s)),
                            _t(fmt(s.kl_mean, 4)), _t(pct(s.same_top1)), _t(s.n_flagged))
        out.append(summary)
    if card.self_test is not None:
        out.extend(_t(line) for line in self_test_lines(card.self_test, per_kind=categories))
    failures = _table("Judgments that are not grades", "kind", "role", "status", "count")
    for f in card.failures:
        failures.add_row(_t(f.kind), _t(f.role), _t(f.status), _t(f.count))
    out.append(failures if card.failures else _t("Judgment failures: none"))
    models = ", ".join(f"{m.role}={m.name}" for m in p.models)
    left_out = (f" (left out: {p.n_other_judge} judgments by {', '.join(p.other_judges)})"
                if p.other_judges else "")
    out.append(_t(f"Provenance: models {models}; judge {', '.join(p.judges) or 'n/a'}{left_out}; questions "
                  f"{p.question_set or '?'} ({p.n_questions or '?'}); bootstrap seed "
                  f"{p.bootstrap_seed}, {p.n_resamples} resamples; judge {p.judge_version}", "dim"))
    return out


def print_scorecard(card: Scorecard, console: "Console | None" = None, *,
                    categories: bool = True) -> None:
    con = _console(console)
    for r in scorecard_renderables(card, categories=categories):
        con.print(r)


# --------------------------------------------------------------------------- review


def coloured_answer(item: FlaggedItem) -> "Text":
    """The baseline answer, each token on a background coloured by its KL (plain without tokens)."""
    from rich.style import Style
    from rich.text import Text

    if not item.tokens:
        return _t(item.baseline_answer or "(no answer)")
    text = Text(overflow="fold")
    for span in item.tokens:
        rgb = kl_rgb(span.kl)
        style = Style(bgcolor=f"rgb({rgb[0]},{rgb[1]},{rgb[2]})", color="black") if rgb else Style()
        if not span.top1:
            style += Style(underline=True)
        text.append(visible_text(span.text), style=style)
    return text


def _side(grade: str, issues: list[str], explanation: str | None, answer: "Text") -> "object":
    from rich.console import Group

    return Group(answer, _t(""), _t(grade, "bold"),
                 _t(f"issues: {', '.join(issues) or 'none'}", "italic"),
                 _t(explanation or "", "dim"))


def review_renderables(item: FlaggedItem) -> list["RenderableType"]:
    from rich.rule import Rule
    from rich.table import Table

    kl = f", KL mean {fmt(item.kl_mean, 4)} max {fmt(item.kl_max, 3)}" if item.kl_mean is not None else ""
    kl += diverged_text(item)
    rank = f"#{item.rank}" if item.rank else "(not flagged)"
    why = f"{', '.join(item.reasons)} · severity {fmt(item.severity, 0)}" if item.reasons else "no regression"
    head = _t(f"{rank}  question {item.question_id} turn {item.turn} · {item.category} · "
              f"{item.role} · {why}{kl}", "bold")
    out: list[RenderableType] = [Rule(), head]
    if item.question:
        out.append(_t(item.question, "cyan"))
    table = Table(expand=True, show_lines=False)
    table.add_column(_t("baseline" + (" (background: KL per token)" if item.tokens else "")),
                     ratio=1)
    table.add_column(_t(item.role), ratio=1)
    table.add_row(
        _side(grade_label(item.baseline_score, item.baseline_status, item.baseline_correct),
              item.baseline_issues, item.baseline_explanation, coloured_answer(item)),
        _side(grade_label(item.compressed_score, item.compressed_status, item.compressed_correct),
              item.compressed_issues, item.compressed_explanation,
              _t(item.compressed_answer or "(no answer)")))
    out.append(table)
    if item.pair_status not in (None, "ok"):
        out.append(_t(f"Pairwise: judgment failed ({item.pair_status})", "bold"))
    if item.games:
        verdict = item.pair_winner or "failed"
        out.append(_t(f"Pairwise: {verdict}" + ("" if item.pair_consistent in (None, True)
                                              else " (orders disagree)"), "bold"))
        for g in item.games:
            out.append(_t(f"  A={g.a_role}, B={g.b_role}: {g.label or 'failed'} — "
                          f"{g.explanation or ''}"))
    return out


def print_review(items: list[FlaggedItem], console: "Console | None" = None) -> None:
    con = _console(console)
    if not items:
        con.print(_t("No flagged responses: no item regressed by the flagging rules."))
        return
    for item in items:
        for r in review_renderables(item):
            con.print(r)


def _flips_line(head: str, dropped: str, accuracy: str, f) -> str:
    """One line of flip counts: the checker's or the judge's (same record, other words)."""
    return (f"{head}n={f.n}, {f.n_dropped} {dropped}): correct→incorrect "
            f"{f.correct_to_incorrect}, incorrect→correct {f.incorrect_to_correct}, "
            f"{fmt(f.flip_percent, 1)}% flipped; {accuracy} {pct(f.baseline_accuracy)} → "
            f"{pct(f.compressed_accuracy)}; {flips_test(f)} = {fmt(f.mcnemar_p, 3)}")
