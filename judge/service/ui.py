"""The web pages of `judge serve`: leaderboard, comparison (live progress, then the report) and
review (flagged items side by side, human labels), plus their self-contained assets.

Pages are HTML with every value passed through `html.escape`; the scripts in ``static/`` build
the dynamic parts with ``textContent`` only, never markup from data. A Content-Security-Policy
allows only this server's own scripts and styles, so nothing loads from elsewhere (no CDN) and
injected markup could not run. The report is the run's ``report.html`` (`judge.report`), shown in a
sandboxed frame.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).with_name("static")
ASSETS = {"app.css": "text/css", "compare.js": "text/javascript", "review.js": "text/javascript"}
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, scripts: tuple[str, ...] = (), data: dict[str, str] | None = None
         ) -> HTMLResponse:
    attrs = "".join(f' data-{k}="{e(v)}"' for k, v in (data or {}).items())
    tags = "".join(f'<script src="/static/{s}" defer></script>' for s in scripts)
    html = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(title)}</title><link rel="stylesheet" href="/static/app.css">{tags}</head>'
            f'<body{attrs}><nav><a href="/">judge</a> · <a href="/">leaderboard</a> · '
            f'<a href="/docs">API</a></nav><main>{body}</main></body></html>\n')
    return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_CSP,
                                       "X-Content-Type-Options": "nosniff",
                                       "Referrer-Policy": "no-referrer"})


def _ci(ci: dict | None, signed: bool = False, pct: bool = False) -> str:
    if not ci or ci.get("estimate") is None:
        return "n/a"
    f = (lambda x: f"{100 * x:.0f}%") if pct else (lambda x: f"{x:+.2f}" if signed else f"{x:.2f}")
    text = f(ci["estimate"])
    if ci.get("low") is not None and ci.get("high") is not None and not ci.get("note"):
        text += f" [{f(ci['low'])}, {f(ci['high'])}]"
    return text


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, "no such asset")
    return FileResponse(STATIC / name, media_type=ASSETS[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/", response_class=HTMLResponse)
def leaderboard_page(request: Request) -> HTMLResponse:
    c = request.app.state.ctx
    parts = ["<h1>Leaderboard</h1><p class=\"note\">Candidates of completed comparisons, per "
             "baseline, ranked by grade Δ (compressed − baseline, 95% CI), then win rate.</p>"]
    boards = c.views.leaderboard()
    if not boards:
        parts.append("<p>No completed comparison yet. Submit one with <code>judge submit run.toml"
                     "</code>.</p>")
    for board in boards:
        rows = "".join(
            f"<tr><td>{i}</td><td><a href=\"/c/{e(r['comparison'])}\">{e(r['model'])}</a>"
            f"<div class=\"note\">{e(r['run'])} · {e(r['role'])}</div></td>"
            f"<td>{e(_ci(r['grade_delta'], signed=True))}</td><td>{e(_ci(r['win_rate'], pct=True))}</td>"
            f"<td>{e(_num(r['kl_mean'], '.4f'))}</td>"
            f"<td>{e(_num(None if r['identical_share'] is None else 100 * r['identical_share'], '.0f'))}%</td>"
            f"<td>{e(_num(r['flip_percent'], '.1f'))}</td>"
            f"<td><span class=\"st st-{e(r['quality'])}\">{e(r['quality'])}</span> / "
            f"{e(r['behaviour'])}</td><td><span class=\"st st-{e(r['gate'])}\">{e(r['gate'] or '—')}"
            f"</span></td><td><a href=\"/c/{e(r['comparison'])}/review\">review</a></td></tr>"
            for i, r in enumerate(board["candidates"], start=1))
        parts.append(
            f"<section><h2>Baseline {e(board['baseline'])}</h2><div class=\"tablewrap\"><table>"
            "<thead><tr><th>#</th><th>candidate</th><th>grade Δ [95% CI]</th><th>win rate</th>"
            "<th>mean KL (nats)</th><th>identical</th><th>% flips</th><th>quality / behaviour</th>"
            f"<th>gate</th><th></th></tr></thead><tbody>{rows}</tbody></table></div></section>")
    recent = c.index.list(limit=30)
    if recent:
        items = "".join(
            f"<tr><td><a href=\"/c/{e(r.id)}\">{e(r.id)}</a></td><td>{e(Path(r.run_dir).name)}</td>"
            f"<td><span class=\"st st-{e(r.status)}\">{e(r.status)}</span></td>"
            f"<td>{e(r.error or '')}</td></tr>" for r in recent)
        parts.append("<section><h2>Recent comparisons</h2><div class=\"tablewrap\"><table><thead><tr>"
                     "<th>id</th><th>run</th><th>status</th><th>error</th></tr></thead>"
                     f"<tbody>{items}</tbody></table></div></section>")
    return page("judge: leaderboard", "".join(parts))


def _row(request: Request, cid: str):
    row = request.app.state.ctx.index.get(cid)
    if row is None:
        raise HTTPException(404, f"no comparison {cid!r}")
    return row


@router.get("/c/{cid}", response_class=HTMLResponse)
def comparison_page(cid: str, request: Request) -> HTMLResponse:
    row = _row(request, cid)
    body = (f"<h1>Comparison {e(row.id)}</h1><p class=\"note\">run {e(Path(row.run_dir).name)}: "
            f"{e(row.baseline)} against {e(', '.join(row.candidates))}</p>"
            f"<p>Status: <span id=\"status\" class=\"st st-{e(row.status)}\">{e(row.status)}</span> "
            f"<span id=\"error\" class=\"error\">{e(row.error or '')}</span></p>"
            "<div id=\"stages\"></div>"
            f"<p><a href=\"/c/{e(row.id)}/review\">review flagged responses</a> · "
            f"<a href=\"/v1/comparisons/{e(row.id)}/scorecard\">scorecard JSON</a> · "
            f"<a href=\"/v1/comparisons/{e(row.id)}/log\">log</a></p>"
            "<p id=\"agreement\" class=\"note\"></p><div id=\"report\"></div>")
    return page(f"judge: comparison {row.id}", body, ("compare.js",), {"cid": row.id})


@router.get("/c/{cid}/report", response_class=HTMLResponse)
def report_frame(cid: str, request: Request) -> Response:
    row = _row(request, cid)
    path = Path(row.run_dir) / "report.html"
    if not path.is_file():
        raise HTTPException(404, "no report yet")
    return HTMLResponse(path.read_text(encoding="utf-8"),
                        headers={"Content-Security-Policy": "sandbox allow-scripts; frame-ancestors 'self'",
                                 "X-Content-Type-Options": "nosniff"})


@router.get("/c/{cid}/review", response_class=HTMLResponse)
def review_page(cid: str, request: Request) -> HTMLResponse:
    row = _row(request, cid)
    body = (f"<h1>Review {e(row.id)} <span class=\"note\">{e(Path(row.run_dir).name)}</span></h1>"
            "<div class=\"bar\"><label>token <input id=\"token\" type=\"password\" size=\"18\" "
            "autocomplete=\"off\"></label> <label>reviewer <input id=\"reviewer\" size=\"12\" "
            "value=\"reviewer\"></label> "
            "<label>candidate <select id=\"f-role\"><option value=\"\">all</option></select></label> "
            "<label>category <select id=\"f-category\"><option value=\"\">all</option></select></label> "
            "<label>turn <select id=\"f-turn\"><option value=\"\">all</option></select></label> "
            "<label>reason <select id=\"f-reason\"><option value=\"\">all</option></select></label> "
            f"<a href=\"/v1/comparisons/{e(row.id)}/labels.jsonl\">export labels</a></div>"
            "<p id=\"agreement\" class=\"note\"></p><p class=\"note\">Keys: j / k next / previous, "
            "1 real regression, 2 judge wrong, 3 acceptable (saves the label with the comment).</p>"
            "<div class=\"review\"><ol id=\"items\"></ol><div id=\"detail\"></div></div>"
            "<p id=\"msg\" class=\"note\" role=\"status\"></p>")
    return page(f"judge: review {row.id}", body, ("review.js",), {"cid": row.id})
