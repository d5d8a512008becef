"""``RUN/scorecard.md``: the scorecard as GitHub-flavoured Markdown, with the top flagged items.

Text from files is escaped: table cells get HTML entities for ``<>&`` and ``\\|`` for pipes;
answers and explanations go into fenced code blocks whose fence is longer than any backtick run
inside, so nothing in them is interpreted as Markdown or HTML.
"""

from __future__ import annotations

import html
import re

from judge.report.style import (behaviour_line, ci_cell, divergence_table, diverged_text,
                                few_questions_caption, flips_table, judge_accuracy_text, summary_flips, fmt, fmt_ci, grade_label,
                                grade_table, pct, quality_line, self_test_rows, visible_text)
from judge.scorecard import FlaggedItem, Scorecard, Section, SelfTest

MAX_FLAGGED = 20


def cell(text: object) -> str:
    s = visible_text("" if text is None else str(text))
    return html.escape(s, quote=False).replace("|", "\\|").replace("\n", " ")


def fenced(text: str | None) -> str:
    body = visible_text(text or "")
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(header) - 1)
    return [_row(*header), "| " + " | ".join(align) + " |", *(_row(*r) for r in rows), ""]


def _section(sec: Section, control: Section | None) -> list[str]:
    out = [f"## {cell(sec.role)} ({cell(sec.model or '?')}): behaviour {sec.behaviour.status}, "
           f"quality {sec.quality.status}", "", cell(sec.verdict.text), "",
           f"- {cell(behaviour_line(sec.behaviour))}", f"- {cell(quality_line(sec.quality))}", ""]
    if sec.quality.signals:
        out += _table(["quality signal", "estimate", "null", "level", "interval", "p", "decision"],
                      [[q.name, fmt(q.estimate, 3), fmt(q.null, 1), f"{100 * q.level:.1f}%",
                        f"[{fmt(q.low, 3)}, {fmt(q.high, 3)}]" if q.low is not None else "",
                        fmt(q.p_value, 3) if q.p_value is not None else "", q.direction]
                       for q in sec.quality.signals])
    if sec.quality.recovery is not None:
        out += [f"Recovery (compressed / baseline mean grade): {cell(fmt_ci(sec.quality.recovery, 3))}", ""]
    out += ["### Grades (1-10, paired items)", ""]
    header, rows = grade_table(sec, control)
    out += _table(header, rows) if rows else ["No item was graded ok for both models.", ""]
    if rows and (few := few_questions_caption([r.delta for r in sec.grades])):
        out += [cell(few + "."), ""]
    h = sec.head_to_head
    if h is not None:
        out += ["### Head-to-head (swapped games)", ""]
        out += _table(["n", "wins", "ties", "losses", "strong losses", "inconsistent", "win rate [95% CI]"],
                      [[h.n, h.compressed_wins, h.ties, h.baseline_wins, h.strong_losses,
                        f"{h.inconsistent} ({pct(h.inconsistency_rate, 0)})", ci_cell(h.win_rate)]])
    if sec.checked_flips is not None:
        out += ["### Checked flips (answers checked by code, no judge)", ""]
        out += _table(*flips_table(sec.checked_flips))
    f = sec.flips
    if f is not None:
        title = "judged by the judge; the checked flips above decide" if sec.checked_flips else ""
        out += [f"### Flips (reference-graded items{', ' + title if title else ''})", ""]
        out += _table(*flips_table(f))
    if judge_accuracy_text(sec):
        out += [judge_accuracy_text(sec), ""]
    if sec.divergence:
        out += ["### Divergence KL(baseline‖compressed), nats", ""]
        if sec.kl_method:
            out += [f"KL: {cell(sec.kl_method)}", ""]
        header, rows, caption = divergence_table(sec)
        out += _table(header, rows) + ([cell(caption + "."), ""] if caption else [])
    if sec.kl_grade_spearman is not None:
        rho = sec.kl_grade_spearman
        out += [f"Spearman ρ between an item's mean KL and its grade drop: {cell(fmt_ci(rho))} "
                f"(n = {rho.n} items)" + (f", {cell(rho.note)}" if rho.note else ""), ""]
    kinds = sorted({k for d in (*sec.issues.values(), *sec.pair_issues.values()) for k in d})
    if kinds:
        roles = list(sec.issues)
        out += ["### Degradation kinds named by the judge (single grading / pairwise games)", ""]
        out += _table(["kind", *roles], [[k, *[f"{sec.issues.get(r, {}).get(k, 0)} / "
                                                f"{sec.pair_issues.get(r, {}).get(k, 0)}" for r in roles]]
                                         for k in kinds])
    return out


def _self_test(t: SelfTest) -> list[str]:
    out = ["## Judge self-test (planted degradations of the baseline's answers)", "",
           f"Judge {cell(t.judge or '?')}: **{t.status}**. {cell(t.reason)}.", ""]
    header, rows = self_test_rows(t)
    return out + (_table(header, rows) if rows else [])


def _flagged(item: FlaggedItem) -> list[str]:
    out = [f"### #{item.rank} question {cell(item.question_id)}, turn {item.turn} "
           f"({cell(item.category)}, {cell(item.role)})", "",
           f"Reasons: {cell(', '.join(item.reasons))}; severity {fmt(item.severity, 0)}; "
           f"{grade_label(item.baseline_score, item.baseline_status, item.baseline_correct)} → "
           f"{grade_label(item.compressed_score, item.compressed_status, item.compressed_correct)}; pairwise "
           f"{cell(item.pair_winner or 'n/a')}; KL mean {fmt(item.kl_mean, 4)}{cell(diverged_text(item))}", ""]
    if item.question:
        out += ["Question:", "", fenced(item.question), ""]
    out += ["Baseline answer:", "", fenced(item.baseline_answer), "",
            f"Judge on the baseline (issues: {cell(', '.join(item.baseline_issues) or 'none')}):", "",
            fenced(item.baseline_explanation), "",
            f"{cell(item.role)} answer:", "", fenced(item.compressed_answer), "",
            f"Judge on {cell(item.role)} (issues: {cell(', '.join(item.compressed_issues) or 'none')}):",
            "", fenced(item.compressed_explanation), ""]
    return out


def render_markdown(card: Scorecard, flagged: list[FlaggedItem]) -> str:
    p = card.provenance
    out = [f"# judge scorecard: {cell(p.run)}", "", "**Verdict.**", ""]
    for line in card.verdict.splitlines():
        out += [cell(line), ""]
    if len(card.summary) > 1:
        out += ["## Candidates", ""]
        out += _table(["role", "grade Δ [95% CI]", "win rate", "% flips", "mean KL", "same top-1",
                       "flagged"],
                      [[s.role, ci_cell(s.grade_delta, signed=True),
                        ci_cell(s.win_rate) if s.win_rate else "n/a", summary_flips(s),
                        fmt(s.kl_mean, 4), pct(s.same_top1), s.n_flagged] for s in card.summary])
    for sec in card.sections:
        out += _section(sec, card.control)
    if card.control is not None:
        out += _section(card.control, None)
    if card.self_test is not None:
        out += _self_test(card.self_test)
    out += ["## Judgments that are not grades", ""]
    out += (_table(["kind", "role", "status", "count"],
                   [[f.kind, f.role, f.status, f.count] for f in card.failures])
            if card.failures else ["None.", ""])
    out += ["## Provenance", ""]
    out += _table(["role", "model", "spec", "config sha256", "tokenizer sha256", "weights (bytes)"],
                  [[m.role, m.name, m.spec, (m.config_sha256 or "")[:12],
                    (m.tokenizer_sha256 or "")[:12], m.weight_bytes or ""] for m in p.models])
    prompts = "; ".join(f"{k}: {', '.join(h[:12] for h in v) or 'n/a'}" for k, v in p.prompts.items())
    left_out = (f" (left out: {p.n_other_judge} judgments by {', '.join(p.other_judges)})"
                if p.other_judges else "")
    out += [f"Judge: {cell((', '.join(p.judges) or 'n/a') + left_out)}; prompts: "
            f"{cell(prompts or 'n/a')}.  ",
            f"Questions: {cell(p.question_set or '?')} ({p.n_questions or '?'} questions, sha256 "
            f"{cell((p.question_set_sha256 or '')[:12])}).  ",
            f"Seeds: run {p.run_seed}, bootstrap {p.bootstrap_seed} ({p.n_resamples} resamples, "
            f"{100 * p.confidence:.0f}% intervals).  ",
            f"Versions: {cell(', '.join(f'{k} {v}' for k, v in p.versions.items()))}; scorecard by "
            f"judge {cell(p.judge_version)}.", ""]
    if flagged:
        shown = flagged[:MAX_FLAGGED]
        out += [f"## Flagged responses (top {len(shown)} of {len(flagged)}; all in flagged.jsonl)", ""]
        for item in shown:
            out += _flagged(item)
    return "\n".join(out).rstrip() + "\n"
