// judge serve: the comparison page. Follows /v1/comparisons/ID/events (SSE) and draws one bar per
// stage; when the comparison is completed, shows the run's report in a sandboxed frame.
// Every value is set with textContent.
"use strict";
(function () {
  const cid = document.body.dataset.cid;
  const stagesEl = document.getElementById("stages");
  const statusEl = document.getElementById("status");
  const errorEl = document.getElementById("error");
  const reportEl = document.getElementById("report");

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function fmtEta(s) {
    if (s === null || s === undefined) return "";
    return s >= 90 ? `eta ${Math.round(s / 60)} min` : `eta ${Math.round(s)} s`;
  }
  function drawStatus(st) {
    statusEl.textContent = st.status;
    statusEl.className = "st st-" + st.status;
    errorEl.textContent = st.error || "";
    stagesEl.replaceChildren();
    if (st.queue_position) stagesEl.appendChild(el("p", "note", `queued, position ${st.queue_position}`));
    for (const s of st.stages || []) {
      const row = el("div", "stage");
      row.appendChild(el("span", "", s.stage + " "));
      const bar = el("progress");
      bar.max = Math.max(1, s.total);
      bar.value = s.done;
      row.appendChild(bar);
      const rate = s.rate_per_s ? `${s.rate_per_s.toFixed(2)}/s` : "";
      row.appendChild(el("span", "note", ` ${s.done}/${s.total} ${rate} ${fmtEta(s.eta_s)} ${s.state}`));
      stagesEl.appendChild(row);
    }
  }
  async function showAgreement() {
    const r = await fetch(`/v1/comparisons/${encodeURIComponent(cid)}/scorecard`);
    if (!r.ok) return;
    const h = (await r.json()).human_agreement;
    document.getElementById("agreement").textContent = !h || !h.n_labelled
      ? "Judge–human agreement: no labelled items yet (review page)."
      : `Judge–human agreement: ${h.n_agree} of ${h.n_labelled} labelled items ` +
        `(${Math.round(100 * h.agreement)}%); ${h.confirmed} of ${h.judge_claims} judge-flagged ` +
        `regressions confirmed.`;
  }
  function showReport() {
    if (reportEl.firstChild) return;
    showAgreement();
    const f = el("iframe", "report");
    f.setAttribute("sandbox", "allow-scripts");
    f.src = `/c/${encodeURIComponent(cid)}/report`;
    f.title = "report";
    reportEl.appendChild(f);
  }
  async function refresh() {
    const r = await fetch(`/v1/comparisons/${encodeURIComponent(cid)}/status`);
    if (r.ok) {
      const st = await r.json();
      drawStatus(st);
      if (st.status === "completed") showReport();
    }
  }
  refresh().then(() => {
    if (["completed", "failed", "cancelled"].includes(statusEl.textContent)) return;
    const es = new EventSource(`/v1/comparisons/${encodeURIComponent(cid)}/events`);
    es.addEventListener("status", (ev) => drawStatus(JSON.parse(ev.data)));
    es.addEventListener("progress", () => { /* the next status event redraws */ });
    es.addEventListener("end", () => { es.close(); refresh(); });
    setInterval(() => { if (es.readyState !== 2) refresh(); }, 2000);
  });
})();
