// judge serve: the review page. Flagged items of one comparison, side by side, the baseline's
// tokens coloured by KL, the judge's explanations, filters, keyboard navigation (j/k, 1/2/3) and a
// human label per item, posted to /v1/comparisons/ID/labels with the token typed on the page.
// Model text only ever reaches the page through textContent.
"use strict";
(function () {
  const cid = document.body.dataset.cid;
  const api = `/v1/comparisons/${encodeURIComponent(cid)}`;
  const LABELS = [["real_regression", "real regression"], ["judge_wrong", "judge wrong"],
                  ["acceptable", "acceptable"]];
  const $ = (id) => document.getElementById(id);
  const state = { items: [], shown: [], pos: 0, labels: {}, detail: {} };
  const tokenIn = $("token"), reviewerIn = $("reviewer");
  tokenIn.value = localStorage.getItem("judge-token") || "";
  reviewerIn.value = localStorage.getItem("judge-reviewer") || "reviewer";
  tokenIn.addEventListener("change", () => localStorage.setItem("judge-token", tokenIn.value.trim()));
  reviewerIn.addEventListener("change", () => localStorage.setItem("judge-reviewer", reviewerIn.value.trim()));

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  function msg(text) { $("msg").textContent = text; }
  function grade(score, status) {
    if (score === null || score === undefined) return status ? `judgment ${status}` : "not judged";
    return `grade ${score}`;
  }
  function labelOf(key) { return state.labels[key]; }

  async function load() {
    const [fl, lb, sc] = await Promise.all([fetch(`${api}/flagged?limit=1000`), fetch(`${api}/labels`),
                                            fetch(`${api}/scorecard`)]);
    if (!fl.ok) { msg((await fl.json()).detail || "no flagged items"); return; }
    state.items = (await fl.json()).items;
    if (lb.ok) for (const l of (await lb.json()).items) {
      const prev = state.labels[l.item];
      if (!prev || l.t >= prev.t) state.labels[l.item] = l;
    }
    if (sc.ok) showAgreement((await sc.json()).human_agreement);
    fillFilters();
    applyFilters();
  }
  function showAgreement(h) {
    if (!h || !h.n_labelled) { $("agreement").textContent = "No labelled items yet."; return; }
    $("agreement").textContent = `Judge–human agreement: ${h.n_agree} of ${h.n_labelled} labelled ` +
      `items (${Math.round(100 * h.agreement)}%); ${h.confirmed} of ${h.judge_claims} judge-flagged ` +
      `regressions confirmed.`;
  }
  function fillFilters() {
    const sets = { role: new Set(), category: new Set(), turn: new Set(), reason: new Set() };
    for (const it of state.items) {
      sets.role.add(it.role); sets.category.add(it.category); sets.turn.add(String(it.turn));
      for (const r of it.reasons) sets.reason.add(r);
    }
    for (const [k, values] of Object.entries(sets)) {
      const sel = $("f-" + k);
      for (const v of [...values].sort()) { const o = el("option", "", v); o.value = v; sel.appendChild(o); }
      sel.addEventListener("change", applyFilters);
    }
  }
  function applyFilters() {
    const f = (k) => $("f-" + k).value;
    state.shown = state.items.filter((it) => (!f("role") || it.role === f("role")) &&
      (!f("category") || it.category === f("category")) && (!f("turn") || String(it.turn) === f("turn")) &&
      (!f("reason") || it.reasons.includes(f("reason"))));
    state.pos = 0;
    drawList();
    select(0);
  }
  function drawList() {
    const ol = $("items");
    ol.replaceChildren();
    state.shown.forEach((it, i) => {
      const li = el("li", i === state.pos ? "current" : "");
      li.dataset.item = it.item;
      const lab = labelOf(it.item);
      li.appendChild(el("span", "lab", lab ? lab.label.replace("_", " ") : ""));
      li.appendChild(el("b", "", `#${it.rank} `));
      li.appendChild(el("span", "", `${it.role} · q${it.question_id} t${it.turn} · ${it.category}`));
      li.appendChild(el("div", "note", it.reasons.join(", ")));
      li.addEventListener("click", () => select(i));
      ol.appendChild(li);
    });
  }
  async function select(i) {
    if (!state.shown.length) { $("detail").replaceChildren(el("p", "", "No flagged item matches.")); return; }
    state.pos = Math.max(0, Math.min(i, state.shown.length - 1));
    [...$("items").children].forEach((li, j) => li.classList.toggle("current", j === state.pos));
    const cur = $("items").children[state.pos];
    if (cur && cur.scrollIntoView) cur.scrollIntoView({ block: "nearest" });
    const it = state.shown[state.pos];
    let d = state.detail[it.item];
    if (!d) {
      const r = await fetch(`${api}/items/${it.item.split("/").map(encodeURIComponent).join("/")}`);
      d = r.ok ? await r.json() : it;
      state.detail[it.item] = d;
    }
    if (state.shown[state.pos] === it) drawDetail(d);
  }
  function answerWithTokens(d) {
    const box = el("div", "answer");
    if (!d.tokens) { box.textContent = d.baseline_answer || "(no answer)"; return box; }
    for (const t of d.tokens) {
      const s = el("span", t.top1 ? "tok" : "tok miss", t.text);
      if (t.bg) s.style.background = t.bg;
      s.title = `KL ${t.kl === null ? "n/a" : t.kl.toFixed(4)} nats` + (t.top1 ? "" : ", top-1 differs");
      box.appendChild(s);
    }
    return box;
  }
  function side(title, gradeText, answerEl, expl, issues) {
    const s = el("div", "side");
    s.appendChild(el("h4", "", `${title} — ${gradeText}`));
    s.appendChild(answerEl);
    s.appendChild(el("p", "note", `issues: ${(issues || []).join(", ") || "none"}`));
    s.appendChild(el("p", "expl", expl || ""));
    return s;
  }
  function drawDetail(d) {
    const box = $("detail");
    box.replaceChildren();
    const kl = d.kl_mean === null || d.kl_mean === undefined ? "" : ` · KL mean ${d.kl_mean.toFixed(4)}`;
    box.appendChild(el("h3", "", `#${d.rank} ${d.role} · question ${d.question_id}, turn ${d.turn} · ` +
                               `${d.category} · severity ${d.severity}${kl}`));
    box.appendChild(el("p", "note", `reasons: ${d.reasons.join(", ")}`));
    if (d.question) box.appendChild(el("div", "question", d.question));
    const sides = el("div", "sides");
    sides.appendChild(side("baseline", grade(d.baseline_score, d.baseline_status), answerWithTokens(d),
                           d.baseline_explanation, d.baseline_issues));
    const comp = el("div", "answer", d.compressed_answer || "(no answer)");
    sides.appendChild(side(d.role, grade(d.compressed_score, d.compressed_status), comp,
                           d.compressed_explanation, d.compressed_issues));
    box.appendChild(sides);
    if (d.games && d.games.length) {
      const ul = el("ul", "games");
      for (const g of d.games) ul.appendChild(el("li", "", `A = ${g.a_role}, B = ${g.b_role}: ` +
                                                 `${g.label || "failed"} — ${g.explanation || ""}`));
      box.appendChild(ul);
    }
    const lab = labelOf(d.item);
    const labels = el("div", "labels");
    LABELS.forEach(([value, text], i) => {
      const b = el("button", lab && lab.label === value ? "on" : "", `${i + 1} ${text}`);
      b.type = "button";
      b.dataset.label = value;
      b.addEventListener("click", () => save(value));
      labels.appendChild(b);
    });
    box.appendChild(labels);
    const ta = el("textarea");
    ta.id = "comment";
    ta.placeholder = "comment (optional)";
    ta.value = lab ? lab.comment : "";
    box.appendChild(ta);
    box.appendChild(el("p", "note", lab ? `labelled ${lab.label.replace("_", " ")} by ${lab.reviewer}` : "not labelled"));
  }
  async function save(value) {
    const it = state.shown[state.pos];
    if (!it) return;
    const token = tokenIn.value.trim();
    if (!token) { msg("type the server's token first (outputs/service-token on the server)"); tokenIn.focus(); return; }
    localStorage.setItem("judge-token", token);
    const body = { item: it.item, label: value, comment: ($("comment") || {}).value || "",
                   reviewer: reviewerIn.value.trim() || "reviewer" };
    const r = await fetch(`${api}/labels`, { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "Authorization": `Bearer ${token}`,
                 "X-Judge-Client": "review-page" } });
    const data = await r.json();
    if (!r.ok) { msg(`not saved: ${data.detail}`); return; }
    state.labels[it.item] = data;
    msg(`saved: ${it.item} ${value.replace("_", " ")}`);
    drawList();
    drawDetail(state.detail[it.item] || it);
    const sc = await fetch(`${api}/scorecard`);
    if (sc.ok) showAgreement((await sc.json()).human_agreement);
  }
  document.addEventListener("keydown", (ev) => {
    const tag = (ev.target && ev.target.tagName) || "";
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "j") { select(state.pos + 1); ev.preventDefault(); }
    else if (ev.key === "k") { select(state.pos - 1); ev.preventDefault(); }
    else if (["1", "2", "3"].includes(ev.key)) { save(LABELS[Number(ev.key) - 1][0]); ev.preventDefault(); }
  });
  load();
})();
