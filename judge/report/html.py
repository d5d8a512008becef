"""``RUN/report.html``: one self-contained page (inline CSS, SVG and a small script; no network).

Order: the verdict and headline numbers, then per compressed role its charts (grades per category,
win/tie/loss, KL histogram, KL against grade drop) and tables, then the flagged responses side by
side with filters and token-level KL colouring, then failures and provenance.
Every string from a file passes through `html.escape` (``quote=True``) before it reaches the page,
and a Content-Security-Policy allows only the page's own script (by hash), inline styles and
``data:`` images, so injected markup could not run or fetch anything even if it got through.
"""

from __future__ import annotations

import math
from html import escape

from judge.report import charts
from judge.report.assets import CSS, JS, script_hash
from judge.report.style import (KL_LOW_NATS, STATUS_COLOUR, behaviour_line, ci_cell,
                                divergence_table, diverged_text, few_questions_caption, flips_table,
                                flips_test, fmt, fmt_ci, judge_accuracy_text, summary_flips, grade_label, grade_table, kl_hex, pct,
                                quality_line, self_test_rows)
from judge.scorecard import FlaggedItem, Scorecard, Section, SelfTest

MAX_FLAGGED = 200  # the page stays light on a phone; flagged.jsonl has them all


def e(text: object) -> str:
    return escape("" if text is None else str(text), quote=True)


def _table(header: list[str], rows: list[list[object]], cls: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header) if header else ""
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    attr = f' class="{cls}"' if cls else ""
    return (f'<div class="tablewrap"><table{attr}>' + (f"<thead><tr>{head}</tr></thead>" if head else "")
            + f"<tbody>{body}</tbody></table></div>")


def _status(status: str, prefix: str = "") -> str:
    return (f'<span class="status" style="background:{STATUS_COLOUR.get(status, "#777")}">'
            f"{e(prefix + status)}</span>")


def _card(key: str, value: str, sub: str = "") -> str:
    return (f'<div class="card"><div class="k">{e(key)}</div><div class="v">{e(value)}</div>'
            f'<div class="s">{e(sub)}</div></div>')


def _axes(sec: Section) -> str:
    """Both axes of a section: status badges, the headline and one line per axis."""
    return (f'<div class="axes"><p>{_status(sec.behaviour.status, "behaviour ")} '
            f'{_status(sec.quality.status, "quality ")}</p>'
            f'<ul><li>{e(behaviour_line(sec.behaviour))}</li>'
            f'<li>{e(quality_line(sec.quality))}</li></ul></div>')


def _self_test(t: SelfTest) -> str:
    header, rows = self_test_rows(t)
    return (f'<section id="self-test"><h2>Judge self-test {_status(t.status)}</h2>'
            f'<p>Planted degradations of the baseline\'s own answers (truncated, shuffled, looping, '
            f'a wrong final number, another question\'s answer, a refusal), each judged against its '
            f'intact original. Judge {e(t.judge or "?")}: {e(t.reason)}.</p>'
            + (_table(header, rows) if rows else "") + "</section>")


def _cards(sec: Section, control: Section | None) -> str:
    g = sec.grades[0]
    ci = fmt_ci(g.delta, signed=True).partition(" ")[2] or f"none ({g.delta.n_clusters} questions)"
    out = [] if not g.n else [_card("grade Δ (compressed − baseline)", fmt(g.delta.estimate, signed=True),
                 f"95% CI {ci}; {g.n} items, {g.delta.n_clusters} questions"
                 + (f"; noise floor {fmt_ci(g.noise_delta, signed=True)}" if g.noise_delta else ""))]
    if sec.head_to_head:
        h = sec.head_to_head
        noise = (f"; control {fmt_ci(control.head_to_head.win_rate)}"
                 if control is not None and control.head_to_head else "")
        wci = fmt_ci(h.win_rate).partition(" ")[2] or f"none ({h.win_rate.n_clusters} questions)"
        out.append(_card("win rate vs baseline", fmt(h.win_rate.estimate),
                         f"95% CI {wci}; {h.compressed_wins} W / {h.ties} T / {h.baseline_wins} L, "
                         f"{h.strong_losses} strong{noise}"))
    cf = sec.checked_flips
    if cf is not None and cf.n:
        out.append(_card("checked flips", f"{fmt(cf.flip_percent, 1)}%",
                         f"{cf.correct_to_incorrect} c→i, {cf.incorrect_to_correct} i→c of {cf.n}, "
                         f"checked by code; {flips_test(cf)} {fmt(cf.mcnemar_p, 3)}"))
    if sec.flips:
        f = sec.flips
        out.append(_card("judged flips" if cf is not None and cf.n else "flips", f"{fmt(f.flip_percent, 1)}%",
                         f"{f.correct_to_incorrect} c→i, {f.incorrect_to_correct} i→c of {f.n}; "
                         f"{flips_test(f)} {fmt(f.mcnemar_p, 3)}"))
    if sec.divergence:
        d = sec.divergence[0]
        out.append(_card("mean KL (nats)", fmt(d.kl_mean, 4),
                         f"same top-1 {pct(d.same_top1)}, {d.n_tokens} tokens"))
    out.append(_card("flagged responses", str(sec.n_flagged), "see below"))
    return f'<div class="cards">{"".join(out)}</div>'


def _charts(sec: Section) -> str:
    figs = []
    cats = [(r.label, r.baseline_mean, r.compressed_mean) for r in sec.grades if r.scope == "category"]
    rows = cats or [(r.label, r.baseline_mean, r.compressed_mean) for r in sec.grades]
    if sec.grades[0].n:
        figs.append(("Mean grade per category (paired items)",
                     charts.grade_bars(rows, ("baseline", sec.role))))
    if sec.head_to_head:
        h = sec.head_to_head
        figs.append((f"Head-to-head, {h.n} swapped games",
                     charts.wtl_bar(h.compressed_wins, h.ties, h.baseline_wins, sec.role)))
    if sec.kl_histogram:
        kh = sec.kl_histogram
        figs.append((f"KL histogram (per {kh.unit})", charts.kl_histogram(kh.edges, kh.counts, kh.unit)))
    if sec.points:
        pts = [(p.kl_mean, p.grade_drop, f"question {p.question_id} turn {p.turn} ({p.category}): "
                f"KL {p.kl_mean:.4f}, grade drop {p.grade_drop:+.0f}") for p in sec.points
               if not math.isnan(p.kl_mean)]
        rho = sec.kl_grade_spearman
        cap = "KL against grade drop" + (f" (Spearman ρ {fmt_ci(rho)})" if rho else "")
        figs.append((cap, charts.kl_scatter(pts)))
    inner = "".join(f"<figure><figcaption>{e(cap)}</figcaption>{svg}</figure>" for cap, svg in figs)
    return f'<div class="charts">{inner}</div>'


def _tables(sec: Section, control: Section | None) -> str:
    header, rows = grade_table(sec, control)
    out = ["<h3>Grades (1–10)</h3>", _table(header, rows) if rows
           else "<p>No item was graded ok for both models.</p>"]
    if rows and (few := few_questions_caption([r.delta for r in sec.grades])):
        out += [f'<p class="note">{e(few)}.</p>']
    if sec.head_to_head:
        h = sec.head_to_head
        out += ["<h3>Head-to-head</h3>", _table(
            ["n", "wins", "ties", "losses", "strong losses", "inconsistent", "win rate [95% CI]"],
            [[h.n, h.compressed_wins, h.ties, h.baseline_wins, h.strong_losses,
              f"{h.inconsistent} ({pct(h.inconsistency_rate, 0)})", ci_cell(h.win_rate)]])]
    if sec.checked_flips is not None:
        out += ["<h3>Checked flips (answers checked by code, no judge)</h3>",
                _table(*flips_table(sec.checked_flips))]
    if sec.flips:
        title = ", judged; the checked flips above decide" if sec.checked_flips else ""
        out += [f"<h3>Flips (reference-graded items{title})</h3>", _table(*flips_table(sec.flips))]
    if judge_accuracy_text(sec):
        out += [f"<p>{escape(judge_accuracy_text(sec) or '')}</p>"]
    if sec.divergence:
        out += ["<h3>Divergence KL(baseline‖compressed), nats</h3>"]
        if sec.kl_method:
            out += [f"<p class=\"note\">KL: {escape(sec.kl_method, quote=True)}</p>"]
        header, rows, caption = divergence_table(sec)
        out += [_table(header, rows)]
        if caption:
            out += [f'<p class="note">{e(caption)}.</p>']
    kinds = sorted({k for d in (*sec.issues.values(), *sec.pair_issues.values()) for k in d})
    if kinds:
        roles = list(sec.issues)
        out += ["<h3>Degradation kinds named by the judge (single / pairwise)</h3>", _table(
            ["kind", *roles], [[k, *[f"{sec.issues.get(r, {}).get(k, 0)} / "
                                     f"{sec.pair_issues.get(r, {}).get(k, 0)}" for r in roles]]
                               for k in kinds])]
    return "".join(out)


def _section(sec: Section, control: Section | None) -> str:
    return (f'<section class="candidate" id="role-{e(sec.role)}"><h2>{e(sec.role)} '
            f'<span class="note">({e(sec.model or "?")})</span> {_status(sec.behaviour.status, "behaviour ")} '
            f'{_status(sec.quality.status, "quality ")}</h2>'
            + (f"<p>{e(sec.verdict.text)}</p>{_cards(sec, control)}" if sec.role == "control"
               else f"<p>{e(sec.verdict.text.removeprefix(sec.verdict.headline).strip())}</p>")
            + f"{_charts(sec)}<details><summary>All numbers</summary>{_tables(sec, control)}"
            "</details></section>")


def _tokens(item: FlaggedItem) -> str:
    if not item.tokens:
        return e(item.baseline_answer or "(no answer)")
    parts: list[str] = []
    quiet: list[str] = []  # a run of uncoloured tokens (KL below KL_LOW_NATS, same top-1): one span

    def flush() -> None:
        if quiet:
            parts.append(f'<span class="tok" title="KL &lt; {KL_LOW_NATS:g} nats">{"".join(quiet)}</span>')
            quiet.clear()

    for span in item.tokens:
        colour = kl_hex(span.kl)
        if colour is None and span.top1 and not math.isnan(span.kl):
            quiet.append(e(span.text))
            continue
        flush()
        style = f' style="background:{colour}"' if colour else ""
        cls = "tok" if span.top1 else "tok miss"
        kl = "n/a" if math.isnan(span.kl) else f"{span.kl:.4f}"
        top = "" if span.top1 else ", top-1 differs"
        parts.append(f'<span class="{cls}"{style} title="KL {kl} nats{top}">{e(span.text)}</span>')
    flush()
    return "".join(parts)


def _side(cls: str, title: str, grade: str, answer_html: str, explanation: str | None,
          issues: list[str]) -> str:
    return (f'<div class="side {cls}"><h4>{e(title)} — {e(grade)}</h4>'
            f'<div class="answer">{answer_html}</div>'
            f'<p class="issues">issues: {e(", ".join(issues) or "none")}</p>'
            f'<p class="expl">{e(explanation or "")}</p></div>')


def _flag(item: FlaggedItem) -> str:
    kinds = sorted(set(item.reasons) | set(item.compressed_issues))
    badges = "".join(f'<span class="badge">{e(r)}</span>' for r in item.reasons)
    kl = f" · KL mean {fmt(item.kl_mean, 4)}, max {fmt(item.kl_max, 3)}" if item.kl_mean is not None else ""
    kl += diverged_text(item)
    games = "".join(f"<li>A = {e(g.a_role)}, B = {e(g.b_role)}: <b>{e(g.label or 'failed')}</b> — "
                    f"{e(g.explanation or '')}</li>" for g in item.games)
    pair = ""
    if item.pair_status not in (None, "ok"):
        pair = f"<p class=\"note\">Pairwise judgment failed ({e(item.pair_status)}).</p>"
    if item.games:
        consistent = "" if item.pair_consistent in (None, True) else " (the two orders disagree)"
        pair = (f"<details><summary>Pairwise: {e(item.pair_winner or 'failed')}{e(consistent)}"
                f'</summary><ul class="games">{games}</ul></details>')
    legend = ""
    if item.tokens:
        legend = ('<p class="legend">Baseline tokens coloured by KL: '
                  f'<span style="background:{kl_hex(0.01)}">0.01</span> '
                  f'<span style="background:{kl_hex(0.1)}">0.1</span> '
                  f'<span style="background:{kl_hex(1.0)}">1</span> '
                  f'<span style="background:{kl_hex(3.0)}">3+ nats</span>; dotted underline: '
                  "the compressed model's top token differs. Hover or tap a token for its KL.</p>")
    question = f'<div class="question">{e(item.question)}</div>' if item.question else ""
    return (f'<article class="flag" id="flag-{item.rank}" data-role="{e(item.role)}" '
            f'data-category="{e(item.category)}" data-kinds="{e(" ".join(kinds))}">'
            f"<header>#{item.rank} {badges}<span class=\"meta\">question {e(item.question_id)}, turn "
            f"{item.turn} · {e(item.category)} · {e(item.role)} · severity {fmt(item.severity, 0)}"
            f"{e(kl)}</span></header>{question}"
            f'<div class="sides">'
            + _side("base", "baseline",
                    grade_label(item.baseline_score, item.baseline_status, item.baseline_correct),
                    _tokens(item), item.baseline_explanation, item.baseline_issues)
            + _side("comp", item.role,
                    grade_label(item.compressed_score, item.compressed_status, item.compressed_correct),
                    e(item.compressed_answer or "(no answer)"), item.compressed_explanation,
                    item.compressed_issues)
            + f"</div>{legend}{pair}</article>")


def _select(name: str, label: str, values: list[str]) -> str:
    opts = "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in values)
    return f'<label>{e(label)} <select name="{e(name)}"><option value="">all</option>{opts}</select></label>'


def _flagged(items: list[FlaggedItem]) -> str:
    if not items:
        return ("<h2>Flagged responses</h2><p>No item regressed by the flagging rules, and no "
                "answer differs from the baseline's.</p>")
    shown = items[:MAX_FLAGGED]
    roles = sorted({i.role for i in shown})
    cats = sorted({i.category for i in shown})
    kinds = sorted({k for i in shown for k in (*i.reasons, *i.compressed_issues)})
    filters = ('<div class="filters">' + (_select("role", "model", roles) if len(roles) > 1 else "")
               + _select("category", "category", cats) + _select("kind", "degradation", kinds)
               + f'<span class="note">showing <b id="flag-count">{len(shown)}</b> of {len(shown)}'
               + (f" (top {len(shown)} of {len(items)}; all in flagged.jsonl)" if len(items) > len(shown) else "")
               + "</span></div>")
    return (f'<section id="flagged"><h2>Flagged responses</h2><p class="note">Items where a compressed '
            "answer regressed (a consistent baseline win, a grade drop of 2 or more, or a "
            "correct→incorrect flip), most severe first, then by KL; then the answers that "
            "diverged most from the baseline's (most KL mass, earliest first difference), "
            "whatever the judge said.</p>"
            f"{filters}{''.join(_flag(i) for i in shown)}</section>")


def _failures_and_provenance(card: Scorecard) -> str:
    p = card.provenance
    fails = (_table(["kind", "role", "status", "count"],
                    [[f.kind, f.role, f.status, f.count] for f in card.failures])
             if card.failures else "<p>None.</p>")
    models = _table(["role", "model", "spec", "config sha256", "tokenizer sha256", "weights (bytes)"],
                    [[m.role, m.name, m.spec, (m.config_sha256 or "")[:12], (m.tokenizer_sha256 or "")[:12],
                      m.weight_bytes or ""] for m in p.models])
    prompts = "; ".join(f"{k}: {', '.join(h[:12] for h in v) or 'n/a'}" for k, v in p.prompts.items())
    left_out = (f" (left out: {p.n_other_judge} judgments by {', '.join(p.other_judges)})"
                if p.other_judges else "")
    facts = [("judge model", (", ".join(p.judges) or "n/a") + left_out),
             ("judge prompts (sha256)", prompts or "n/a"),
             ("question set", f"{p.question_set or '?'} ({p.n_questions or '?'} questions, "
                              f"sha256 {(p.question_set_sha256 or '')[:12]})"),
             ("seeds", f"run {p.run_seed}, bootstrap {p.bootstrap_seed} ({p.n_resamples} resamples, "
                       f"{100 * p.confidence:.0f}% intervals)"),
             ("versions", ", ".join(f"{k} {v}" for k, v in p.versions.items()) or "n/a"),
             ("scorecard", f"judge {p.judge_version}, format {card.format_version}; "
                           f"{card.n_superseded} superseded judgment rows ignored")]
    return (f"<section><h2>Judgments that are not grades</h2>{fails}</section>"
            f"<section><h2>Provenance</h2>{models}{_table([], [list(f) for f in facts], 'facts')}</section>")


def render_html(card: Scorecard, flagged: list[FlaggedItem]) -> str:
    p = card.provenance
    order = ["worse", "mixed", "better", "unknown", "not distinguishable", "insufficient data"]
    first = min((s.quality.status for s in card.sections), key=order.index, default="insufficient data")
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src {script_hash(JS)}; base-uri 'none'; form-action 'none'")
    headline = "".join(f"<h3>{e(s.role)} <span class=\"note\">({e(s.model or '?')})</span></h3>"
                       f"{_axes(s)}{_cards(s, card.control)}" for s in card.sections)
    summary = ""
    if len(card.summary) > 1:
        summary = "<h2>Candidates</h2>" + _table(
            ["role", "grade Δ [95% CI]", "win rate", "% flips", "mean KL", "same top-1", "flagged"],
            [[s.role, ci_cell(s.grade_delta, signed=True), ci_cell(s.win_rate) if s.win_rate else "n/a",
              summary_flips(s), fmt(s.kl_mean, 4), pct(s.same_top1), s.n_flagged]
             for s in card.summary])
    paragraphs = "".join(f"<p>{e(line)}</p>" for line in card.verdict.splitlines() if line.strip())
    sections = "".join(_section(s, card.control) for s in card.sections)
    if card.control is not None:
        sections += _section(card.control, None)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{e(csp)}">'
        f"<title>judge report: {e(p.run)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>judge report <span class="run">{e(p.run)}</span></h1>'
        f'<section class="verdict" style="border-left-color:{STATUS_COLOUR.get(first, "#777")}">'
        f"<h2 style=\"border:0;margin:.2rem 0\">Verdict</h2>{paragraphs}</section>"
        f"{headline}{summary}{sections}"
        f"{_self_test(card.self_test) if card.self_test is not None else ''}"
        f"{_flagged(flagged)}{_failures_and_provenance(card)}"
        f'</main><div id="tip"></div><script>{JS}</script></body></html>\n')
