"""The HTML report's inline stylesheet and script (no external files, no network).

The script only filters the flagged responses (also from the URL: ``#category=math&kind=grade_drop``)
and shows a token's KL on tap (phones have no hover); when done it marks ``<html data-ready="1">``.
It is allowed by its sha256 in the page's Content-Security-Policy; nothing else may run.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root { --fg:#1f2328; --muted:#6b7280; --line:#e3e6ea; --bg:#fff; --soft:#f6f8fa;
        --base:#5b8def; --comp:#f08a24; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
       background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:16px; }
h1 { font-size:1.5rem; margin:.2rem 0 1rem; } h1 .run { color:var(--muted); font-weight:400; }
h2 { font-size:1.2rem; margin:2rem 0 .6rem; border-bottom:1px solid var(--line); padding-bottom:.3rem; }
h3 { font-size:1rem; margin:1.2rem 0 .4rem; }
.verdict { border-left:6px solid var(--muted); background:var(--soft); padding:.6rem 1rem; margin:0 0 1rem;
           border-radius:4px; }
.verdict p { margin:.3rem 0; }
.status { display:inline-block; padding:.05rem .5rem; border-radius:999px; color:#fff; font-size:.8rem;
          font-weight:600; vertical-align:middle; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:10px; margin:.6rem 0; }
.card { border:1px solid var(--line); border-radius:6px; padding:.5rem .7rem; background:#fff; }
.card .k { color:var(--muted); font-size:.8rem; } .card .v { font-size:1.25rem; font-weight:600; }
.card .s { color:var(--muted); font-size:.78rem; }
.charts { display:grid; grid-template-columns:repeat(auto-fill,minmax(440px,1fr)); gap:14px; margin-top:.6rem; }
figure { margin:0; border:1px solid var(--line); border-radius:6px; padding:.5rem; background:#fff; }
figcaption { font-weight:600; font-size:.9rem; margin-bottom:.3rem; }
svg.chart { width:100%; height:auto; display:block; }
.tablewrap { overflow-x:auto; }
table { border-collapse:collapse; font-size:.88rem; margin:.3rem 0 .8rem; }
th, td { border-bottom:1px solid var(--line); padding:.25rem .6rem; text-align:right; white-space:nowrap; }
th:first-child, td:first-child { text-align:left; }
th { background:var(--soft); }
table.facts td { text-align:left; white-space:normal; }
.note { color:var(--muted); font-size:.85rem; }
.filters { display:flex; flex-wrap:wrap; gap:.6rem; align-items:center; background:var(--soft);
           padding:.5rem .7rem; border-radius:6px; position:sticky; top:0; z-index:2; }
.filters select { font:inherit; padding:.15rem .3rem; }
.flag { border:1px solid var(--line); border-radius:8px; margin:1rem 0; padding:.7rem .9rem; }
.flag > header { font-weight:600; }
.flag .meta { color:var(--muted); font-weight:400; font-size:.85rem; }
.badge { display:inline-block; background:#fde2df; color:#8a1c12; border-radius:4px; padding:0 .35rem;
         font-size:.78rem; margin-right:.25rem; font-weight:600; }
.question { background:var(--soft); border-radius:6px; padding:.4rem .6rem; white-space:pre-wrap; }
.sides { display:grid; grid-template-columns:1fr 1fr; gap:12px; margin-top:.6rem; }
.side { min-width:0; }
.side h4 { margin:.2rem 0; font-size:.92rem; }
.side.base h4 { color:var(--base); } .side.comp h4 { color:var(--comp); }
.answer { white-space:pre-wrap; overflow-wrap:anywhere; border:1px solid var(--line); border-radius:6px;
          padding:.5rem; font-size:.9rem; max-height:28rem; overflow-y:auto; }
.expl { font-size:.86rem; color:#374151; white-space:pre-wrap; overflow-wrap:anywhere; }
.issues { font-size:.8rem; color:var(--muted); }
.tok { border-radius:2px; cursor:help; } .tok.miss { text-decoration:underline dotted; }
#tip { position:fixed; display:none; background:#111827; color:#fff; font-size:.8rem; padding:.2rem .45rem;
       border-radius:4px; pointer-events:none; z-index:5; }
.legend { font-size:.8rem; color:var(--muted); }
.legend span { padding:0 .35rem; border-radius:2px; color:#111; white-space:nowrap; }
details summary { cursor:pointer; font-size:.9rem; }
ul.games { margin:.3rem 0; padding-left:1.1rem; font-size:.86rem; }
ul.games li { white-space:pre-wrap; overflow-wrap:anywhere; }
@media (max-width: 720px) {
  main { padding:10px; } .sides { grid-template-columns:1fr; } .charts { grid-template-columns:1fr; }
  body { font-size:14px; }
}
"""

JS = """
(function () {
  var sel = document.querySelectorAll('.filters select');
  var items = document.querySelectorAll('article.flag');
  var count = document.getElementById('flag-count');
  function apply() {
    var want = {};
    sel.forEach(function (s) { want[s.name] = s.value; });
    var shown = 0;
    items.forEach(function (a) {
      var kinds = (a.getAttribute('data-kinds') || '').split(' ');
      var ok = (!want.role || a.getAttribute('data-role') === want.role) &&
               (!want.category || a.getAttribute('data-category') === want.category) &&
               (!want.kind || kinds.indexOf(want.kind) >= 0);
      a.hidden = !ok;
      if (ok) { shown += 1; }
    });
    if (count) { count.textContent = String(shown); }
  }
  // a link may preselect filters: report.html#category=math&kind=grade_drop
  location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
    var p = kv.split('=');
    sel.forEach(function (s) {
      if (s.name === p[0] && p.length === 2) { s.value = decodeURIComponent(p[1]); }
    });
  });
  sel.forEach(function (s) { s.addEventListener('change', apply); });
  var tip = document.getElementById('tip');
  document.addEventListener('click', function (e) {
    var t = e.target.closest ? e.target.closest('.tok') : null;
    if (!t || !tip) { if (tip) { tip.style.display = 'none'; } return; }
    tip.textContent = t.getAttribute('title');
    tip.style.left = Math.min(e.clientX + 8, window.innerWidth - 160) + 'px';
    tip.style.top = (e.clientY + 12) + 'px';
    tip.style.display = 'block';
  });
  apply();
  document.documentElement.setAttribute('data-ready', '1');
})();
"""


def script_hash(script: str = JS) -> str:
    """The CSP source that allows exactly this script: ``'sha256-<base64>'``."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
