// The report's timeline: every operation, a page at a time, filterable by
// process, key, function and outcome. Data from the JSON element #tl-data
// (see reports/src/timeline.rs). Text goes in with textContent only, so a
// value from the history can never become markup. Filters live in the
// address's fragment (#p=3&f=read&k=x&o=info&page=2, or #op=ID for one
// operation), so a link shows the same rows.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("tl-data").textContent);
  var PAGE = 200;
  var n = D.n;
  var call = new Float64Array(n);
  var acc = 0;
  for (var i = 0; i < n; i++) { acc += D.t[i]; call[i] = acc; }
  var KINDS = ["ok", "fail", "info"];
  var el = function (id) { return document.getElementById(id); };
  var body = el("tl-body"), note = el("tl-note");
  var sel = { p: el("tl-p"), f: el("tl-f"), o: el("tl-o") };
  var keyIn = el("tl-k");

  function option(select, value, label) {
    var o = document.createElement("option");
    o.value = value; o.textContent = label;
    select.appendChild(o);
  }
  option(sel.p, "", "every process");
  D.procs.forEach(function (p) { option(sel.p, p, "process " + p); });
  option(sel.f, "", "every f");
  D.fs.forEach(function (f) { option(sel.f, f, f); });
  option(sel.o, "", "every outcome");
  KINDS.forEach(function (k) { option(sel.o, k, k); });
  var list = el("tl-keys");
  D.keys.slice(0, 1000).forEach(function (k) { option(list, k, k); });

  if (!D.clock) {
    el("tl-th-t").textContent = "invoked (event)";
    el("tl-th-d").textContent = "events";
  }
  function fmtTime(u) { return D.clock ? (u / 1e4).toFixed(4) : String(u); }

  var state = { p: "", f: "", k: "", o: "", page: 0, op: -1 };
  var rows = null;

  function filter() {
    var p = D.procs.indexOf(state.p), f = D.fs.indexOf(state.f);
    var k = D.keys.indexOf(state.k) + 1, o = KINDS.indexOf(state.o);
    var out = [];
    for (var i = 0; i < n; i++) {
      if ((state.p && D.p[i] !== p) || (state.f && D.f[i] !== f) ||
          (state.k && D.k[i] !== k) || (state.o && D.o[i] !== o)) continue;
      out.push(i);
    }
    return out;
  }

  function cell(tr, s, cls) {
    var td = document.createElement("td");
    td.textContent = s;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function render() {
    if (rows === null) rows = filter();
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    if (state.op >= 0) {
      var at = rows.indexOf(state.op);
      if (at >= 0) state.page = Math.floor(at / PAGE);
    }
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    while (body.firstChild) body.removeChild(body.firstChild);
    var from = state.page * PAGE, to = Math.min(rows.length, from + PAGE);
    for (var r = from; r < to; r++) {
      var i = rows[r], tr = document.createElement("tr");
      tr.id = "op-" + i;
      if (i === state.op) tr.className = "hit";
      cell(tr, String(i));
      cell(tr, fmtTime(call[i]));
      cell(tr, D.d[i] < 0 ? "" : (D.clock ? (D.d[i] / 10).toFixed(1) : String(D.d[i])));
      cell(tr, D.procs[D.p[i]]);
      cell(tr, KINDS[D.o[i]], "k-" + KINDS[D.o[i]]);
      cell(tr, D.fs[D.f[i]]);
      cell(tr, D.k[i] ? D.keys[D.k[i] - 1] : "");
      cell(tr, D.v[i]);
      cell(tr, D.nd[i] ? D.nodes[D.nd[i] - 1] : "");
      cell(tr, D.er[i] ? D.errors[D.er[i] - 1] : "");
      body.appendChild(tr);
    }
    note.textContent = rows.length === 0 ? "No operation matches." :
      "Operations " + (from + 1) + "–" + to + " of " + rows.length +
      (rows.length < n ? " matching (" + n + " in all)" : "") +
      "; page " + (state.page + 1) + " of " + pages + ".";
    el("tl-prev").disabled = state.page === 0;
    el("tl-next").disabled = state.page >= pages - 1;
    var hit = document.getElementById("op-" + state.op);
    if (hit && location.hash.indexOf("op=") >= 0) hit.scrollIntoView();
  }

  function toHash() {
    var parts = [];
    ["p", "f", "k", "o"].forEach(function (k) {
      if (state[k]) parts.push(k + "=" + encodeURIComponent(state[k]));
    });
    if (state.page) parts.push("page=" + (state.page + 1));
    history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname);
  }

  function fromHash() {
    state = { p: "", f: "", k: "", o: "", page: 0, op: -1 };
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var m = kv.split("="), k = m[0], v;
      // A malformed escape (#p=%E0%A4%A) is ignored, not fatal to the page.
      try { v = decodeURIComponent(m[1] || ""); } catch (e) { return; }
      if (k === "page") state.page = (parseInt(v, 10) || 1) - 1;
      else if (k === "op") state.op = parseInt(v, 10);
      else if (k in state) state[k] = v;
    });
    sel.p.value = state.p; sel.f.value = state.f; sel.o.value = state.o;
    keyIn.value = state.k;
    rows = null;
    if (state.op >= 0) el("tl").open = true;
    render();
  }

  function changed() {
    state.p = sel.p.value; state.f = sel.f.value; state.o = sel.o.value;
    state.k = keyIn.value; state.page = 0; state.op = -1;
    rows = null; render(); toHash();
  }
  [sel.p, sel.f, sel.o, keyIn].forEach(function (s) { s.addEventListener("change", changed); });
  el("tl-prev").addEventListener("click", function () { state.page--; state.op = -1; render(); toHash(); });
  el("tl-next").addEventListener("click", function () { state.page++; state.op = -1; render(); toHash(); });
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
