// clustersim timeline renderer: draws the span model embedded in #timeline-data as SVG.
// Hand-written, no dependencies; works from file://. Zoom: wheel or buttons; pan: drag;
// click anything for its details; the legend filters by category.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("timeline-data").textContent);
  var M = DATA.model, META = DATA.meta;
  var CATS = [
    ["stage", "tablet stage", "#1565c0"],
    ["session", "session", "#7b1fa2"],
    ["barrier", "barrier", "#00897b"],
    ["stream", "stream / fragment / cleanup", "#f9a825"],
    ["client", "client op", "#546e7a"],
    ["raft", "group0 / coordinator", "#2e7d32"],
    ["batchlog", "batchlog", "#ef6c00"],
    ["injection", "injection point", "#8d6e63"],
    ["fault", "fault", "#c62828"],
    ["node", "crash / restart / pause", "#d84315"],
    ["rpc", "RPC", "#78909c"],
    ["rpc_raft", "RPC (raft)", "#b0bec5"],
    ["phase", "phase", "#9e9e9e"],
    ["disk", "disk sync", "#a1887f"],
    ["other", "other", "#6d4c41"]
  ];
  var COLOR = {}, CAT_NAME = {};
  CATS.forEach(function (c) { COLOR[c[0]] = c[2]; CAT_NAME[c[0]] = c[1]; });
  var OUTCOME = { ok: "#2e7d32", failed: "#c62828", unknown: "#ef6c00", crashed: "#d84315", open: "#9e9e9e" };
  var ARROW = { ok: "#90a4ae", error: "#e57373", killed: "#c62828", dropped: "#ef6c00", timeout: "#8e24aa", no_handler: "#8e24aa", pending: "#b0bec5" };
  var LABEL_W = 120, AXIS_H = 26, POINT_H = 14, ROW_H = 15, PAD = 5;

  var hidden = {};
  // Many raft RPCs (heartbeats) drown the story: hide them by default when there are lots.
  var raftRpcs = M.arrows.filter(function (a) { return a.cat === "rpc_raft"; }).length;
  if (raftRpcs > 40) hidden.rpc_raft = true;
  hidden.disk = true;
  if (M.arrows.length - raftRpcs > 1500) hidden.rpc = true;
  var end = Math.max(M.end_ns, 1);
  var view = { t0: 0, t1: end * 1.01 };
  var selected = null;
  var related = {}, relatedList = (M.violations[0] && M.violations[0].related) || [];
  relatedList.forEach(function (i) { related[i] = true; });
  var violation = M.violations[0] || null;
  var vAt = violation ? (violation.at_t != null ? violation.at_t : end) : null;
  var pointByI = {};
  M.points.forEach(function (p) { pointByI[p.i] = p; });

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function ms(ns) {
    var v = ns / 1e6;
    return (v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3)) + " ms";
  }

  // ---------------------------------------------------------------- header, toolbar, panes
  var head = document.getElementById("head");
  var h1 = head.querySelector("h1");
  h1.textContent = META.scenario + " — seed " + META.seed + (META.mutants.length ? " — mutant " + META.mutants.join(", ") : "");
  h1.appendChild(el("span", { "class": "verdict " + META.verdict }, META.verdict));
  var meta = el("div", { "class": "meta" });
  meta.innerHTML = META.events + " events · " + (META.sim_time_ns / 1e9).toFixed(3) + " s simulated · digest <code>" +
    esc(META.digest) + "</code> · repro <code>" + esc(META.repro) + "</code>";
  head.appendChild(meta);
  var vl = el("ul", { id: "violations" });
  // One line per distinct (checker, message); repeats are counted, not listed.
  var shown = [], seen = {};
  M.violations.forEach(function (v, k) {
    var key = v.checker + "|" + v.message;
    if (seen[key]) { seen[key].n++; return; }
    seen[key] = { v: v, k: k, n: 1 };
    shown.push(seen[key]);
  });
  shown.slice(0, 3).forEach(function (d) {
    var v = d.v, li = el("li", { "class": v.verdict, title: "click: zoom to it" });
    li.innerHTML = "<b>[" + esc(v.checker) + "] " + esc(v.verdict) + "</b>: " + esc(v.message) +
      (d.n > 1 ? " <b>×" + d.n + "</b>" : "") +
      (v.at_i != null ? " <span class=meta>(event #" + v.at_i + ", " + ms(v.at_t) + ")</span>" : "");
    li.addEventListener("click", function () { focusViolation(d.k); });
    vl.appendChild(li);
  });
  if (shown.length > 3) {
    var more = el("li", { "class": "liveness more" }, "… and " + (shown.length - 3) + " more: " +
      shown.slice(3).map(function (d) { return "[" + d.v.checker + "] " + d.v.message; }).join(" · "));
    vl.appendChild(more);
  }
  head.appendChild(vl);

  var app = document.getElementById("app");
  var bar = el("div", { id: "toolbar" });
  function button(text, title, f) {
    var b = el("button", { title: title }, text);
    b.addEventListener("click", f);
    bar.appendChild(b);
  }
  button("−", "zoom out", function () { zoom(1.6, 0.5); });
  button("+", "zoom in", function () { zoom(1 / 1.6, 0.5); });
  button("fit", "whole run", function () { view = { t0: 0, t1: end * 1.01 }; draw(); });
  if (violation) button("violation", "zoom to the violation", function () { focusViolation(0); });
  bar.appendChild(el("span", { "class": "sep" }));
  var counts = {};
  M.points.forEach(function (p) { counts[p.cat] = (counts[p.cat] || 0) + 1; });
  M.arrows.forEach(function (a) { counts[a.cat] = (counts[a.cat] || 0) + 1; });
  M.spans.forEach(function (s) { counts[s.cat] = (counts[s.cat] || 0) + 0; });
  M.faults.forEach(function () { counts.fault = (counts.fault || 0) + 0; });
  CATS.forEach(function (c) {
    if (counts[c[0]] == null) return;
    var lab = el("label", { title: "show / hide " + c[1] });
    var cb = el("input", { type: "checkbox", "data-cat": c[0] });
    cb.checked = !hidden[c[0]];
    cb.addEventListener("change", function () { hidden[c[0]] = !cb.checked; draw(); });
    lab.appendChild(cb);
    lab.appendChild(el("span", { "class": "sw", style: "background:" + c[2] }));
    lab.appendChild(document.createTextNode(c[1]));
    lab.appendChild(el("span", { "class": "count" }, "" + counts[c[0]]));
    bar.appendChild(lab);
  });
  bar.appendChild(el("span", { "class": "sep" }));
  var keyLegend = el("span", { "class": "meta" });
  keyLegend.innerHTML = "<svg width=14 height=10><rect width=14 height=10 fill='#c62828' opacity=.18 /></svg> fault interval " +
    "<svg width=14 height=10><line x1=0 y1=5 x2=14 y2=5 stroke='#c62828' stroke-width=2 /></svg> killed RPC " +
    "<svg width=12 height=10><text x=1 y=9 fill='#c62828' font-size=11>✕</text></svg> dropped / discarded " +
    "<svg width=14 height=10><circle cx=7 cy=5 r=4 fill=none stroke='#ffb300' stroke-width=2 /></svg> named by the violation";
  bar.appendChild(keyLegend);
  app.appendChild(bar);
  var main = el("div", { id: "main" });
  var chart = el("div", { id: "chart" });
  var detail = el("aside", { id: "detail" });
  detail.innerHTML = "<h2>Details</h2><p class=hint>Click a span, event, arrow or fault. Wheel zooms, drag pans.</p>";
  main.appendChild(chart);
  main.appendChild(detail);
  app.appendChild(main);

  // ---------------------------------------------------------------- layout
  var laneIndex = {};
  M.lanes.forEach(function (l, k) { laneIndex[l.id] = k; });
  function packRows(spans) {
    // Greedy interval packing: each span takes the first row free at its start.
    var rowsEnd = [];
    var minW = (view.t1 - view.t0) / 400; // keep tiny spans from sharing a row visually
    spans.forEach(function (s) {
      var r = 0;
      while (r < rowsEnd.length && rowsEnd[r] > s.t0) r++;
      rowsEnd[r] = Math.max(s.t1, s.t0 + minW);
      s._row = r;
    });
    return rowsEnd.length;
  }
  function layout() {
    var byLane = {};
    M.spans.forEach(function (s) {
      if (hidden[s.cat]) return;
      (byLane[s.lane] = byLane[s.lane] || []).push(s);
    });
    var y = AXIS_H, lanes = [];
    M.lanes.forEach(function (l) {
      var spans = byLane[l.id] || [];
      var rows = packRows(spans);
      var h = POINT_H + Math.max(rows, l.group === "node" ? 1 : 0) * ROW_H + PAD * 2;
      lanes.push({ lane: l, y: y, h: h, spans: spans, py: y + PAD + POINT_H / 2 });
      y += h;
    });
    return { lanes: lanes, height: y + 4 };
  }

  // ---------------------------------------------------------------- drawing
  var W = 800, L = null;
  function x(t) { return LABEL_W + (t - view.t0) / (view.t1 - view.t0) * (W - LABEL_W - 8); }
  function tAt(px) { return view.t0 + (px - LABEL_W) / (W - LABEL_W - 8) * (view.t1 - view.t0); }
  function inView(t0, t1) { return t1 >= view.t0 && t0 <= view.t1; }
  function niceStep(range) {
    var raw = range / 10, p = Math.pow(10, Math.floor(Math.log10(raw))), n = raw / p;
    return (n < 1.5 ? 1 : n < 3.5 ? 2 : n < 7.5 ? 5 : 10) * p;
  }

  function draw() {
    W = Math.max(chart.clientWidth, 400);
    L = layout();
    var laneOf = {};
    L.lanes.forEach(function (ln) { laneOf[ln.lane.id] = ln; });
    var o = [];
    o.push('<svg xmlns="http://www.w3.org/2000/svg" width="' + W + '" height="' + L.height + '">');
    o.push('<defs><clipPath id="plot"><rect x="' + LABEL_W + '" y="0" width="' + (W - LABEL_W) + '" height="' + L.height + '"/></clipPath>' +
      '<marker id="ah" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="context-stroke"/></marker>' +
      '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#c62828" opacity=".10"/><line x1="0" y1="0" x2="0" y2="6" stroke="#c62828" stroke-width="2" opacity=".25"/></pattern>' +
      '<pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><rect width="6" height="6" fill="#424242" opacity=".10"/><line x1="0" y1="0" x2="0" y2="6" stroke="#424242" stroke-width="2" opacity=".3"/></pattern></defs>');
    // Lane backgrounds and labels.
    L.lanes.forEach(function (ln, k) {
      var bg = ln.lane.group === "cluster" ? "#f3f3f3" : ln.lane.group === "tablet" ? "#eef4fb" : ln.lane.group === "shard" ? "#fbfbfb" : (k % 2 ? "#ffffff" : "#f8f8f8");
      o.push('<rect x="0" y="' + ln.y + '" width="' + W + '" height="' + ln.h + '" fill="' + bg + '"/>');
      o.push('<line x1="0" x2="' + W + '" y1="' + (ln.y + ln.h) + '" y2="' + (ln.y + ln.h) + '" stroke="#e3e3e3"/>');
      o.push('<text class="lane-label ' + ln.lane.group + '" x="6" y="' + (ln.y + PAD + 11) + '">' + esc(ln.lane.label) + '</text>');
    });
    o.push('<line x1="' + LABEL_W + '" x2="' + LABEL_W + '" y1="0" y2="' + L.height + '" stroke="#ccc"/>');
    // Time axis.
    var step = niceStep(view.t1 - view.t0);
    o.push('<g class="axis">');
    for (var t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      var px = x(t);
      o.push('<line x1="' + px + '" x2="' + px + '" y1="' + (AXIS_H - 6) + '" y2="' + L.height + '" stroke="#eee"/>');
      o.push('<text x="' + (px + 2) + '" y="' + (AXIS_H - 9) + '">' + ms(t) + '</text>');
    }
    o.push('</g><g clip-path="url(#plot)">');
    // Fault intervals, shaded on the lanes they hit.
    M.faults.forEach(function (f, k) {
      if (hidden[f.what === "fault" ? "fault" : "node"] || !inView(f.t0, f.t1)) return;
      f.lanes.forEach(function (id) {
        var ln = laneOf[id];
        if (!ln) return;
        var x0 = x(f.t0), w = Math.max(x(f.t1) - x0, 2);
        var fill = f.what === "fault" ? "url(#hatch)" : "url(#down)";
        o.push('<rect class="clickable" data-k="f' + k + '" x="' + x0 + '" y="' + ln.y + '" width="' + w + '" height="' + ln.h + '" fill="' + fill + '" stroke="' + (f.what === "fault" ? "#c62828" : "#424242") + '" stroke-opacity=".5"><title>' + esc(f.label) + " " + ms(f.t0) + (f.t1 > f.t0 ? " → " + ms(f.t1) : "") + '</title></rect>');
        if (w > 50) o.push('<text x="' + (x0 + 3) + '" y="' + (ln.y + ln.h - 3) + '" fill="' + (f.what === "fault" ? "#b71c1c" : "#333") + '" font-size="10">' + esc(f.label) + '</text>');
      });
    });
    // Phases.
    M.phases.forEach(function (p) {
      if (hidden.phase || !inView(p[1], p[1])) return;
      var px = x(p[1]);
      o.push('<line x1="' + px + '" x2="' + px + '" y1="' + (AXIS_H - 4) + '" y2="' + L.height + '" stroke="#9e9e9e" stroke-dasharray="4,3"/>');
      o.push('<text x="' + (px + 3) + '" y="' + (AXIS_H - 0) + '" fill="#616161" font-style="italic">' + esc(p[0]) + '</text>');
    });
    // Spans.
    L.lanes.forEach(function (ln) {
      ln.spans.forEach(function (s) {
        if (!inView(s.t0, s.t1)) return;
        var k = M.spans.indexOf(s);
        var x0 = Math.max(x(s.t0), LABEL_W - 2), x1 = Math.min(x(s.t1), W + 2), w = Math.max(x1 - x0, 2);
        var y = ln.y + PAD + POINT_H + s._row * ROW_H;
        var rel = related[s.i0] || (s.i1 != null && related[s.i1]);
        var oc = OUTCOME[s.outcome.split(":")[0]];
        var stroke = rel ? "#ffb300" : oc && s.outcome !== "ok" ? oc : "none";
        o.push('<g class="span clickable" data-k="s' + k + '"><rect x="' + x0 + '" y="' + (y + 1) + '" width="' + w + '" height="' + (ROW_H - 3) + '" rx="2" fill="' + COLOR[s.cat] + '" fill-opacity="' + (s.outcome === "open" ? 0.55 : 0.85) + '" stroke="' + stroke + '" stroke-width="' + (rel ? 2.5 : 1.5) + '"' + (s.outcome === "open" ? ' stroke-dasharray="3,2"' : "") + '/>');
        var text = s.label + (s.outcome && s.outcome !== "ok" && s.outcome !== "open" ? " → " + s.outcome : "");
        if (w > text.length * 5.6 + 6) o.push('<text x="' + (x0 + 3) + '" y="' + (y + ROW_H - 4) + '"' + (s.cat === "stream" ? ' class="dark"' : "") + '>' + esc(text) + '</text>');
        else if (w > 18) o.push('<text x="' + (x0 + 3) + '" y="' + (y + ROW_H - 4) + '"' + (s.cat === "stream" ? ' class="dark"' : "") + '>' + esc(text.slice(0, Math.floor((w - 6) / 5.6))) + '</text>');
        o.push('<title>' + esc(text + " (" + ms(s.t0) + " → " + ms(s.t1) + ")") + '</title></g>');
      });
    });
    // RPC arrows.
    M.arrows.forEach(function (a, k) {
      if (hidden[a.cat] || !inView(a.t0, Math.max(a.t1, a.t_done || 0, a.late_discarded || 0))) return;
      var f = laneOf[a.from], t = laneOf[a.to];
      if (!f || !t) return;
      var c = ARROW[a.status] || "#90a4ae", bad = a.status !== "ok" && a.status !== "pending";
      var x0 = x(a.t0), x1 = x(a.t1), y0 = f.py, y1 = t.py;
      var sw = bad || a.late_discarded != null ? 2 : 1;
      o.push('<g class="clickable" data-k="a' + k + '">');
      o.push('<line x1="' + x0 + '" y1="' + y0 + '" x2="' + x1 + '" y2="' + y1 + '" stroke="' + c + '" stroke-width="' + sw + '"' + (a.status === "pending" ? ' stroke-dasharray="3,3"' : "") + (a.status !== "dropped" ? ' marker-end="url(#ah)"' : "") + ' opacity="' + (bad ? 1 : 0.7) + '"/>');
      o.push('<line x1="' + x0 + '" y1="' + y0 + '" x2="' + x1 + '" y2="' + y1 + '" stroke="transparent" stroke-width="7"/>');
      if (a.status === "dropped") o.push('<text x="' + (x1 - 4) + '" y="' + (y1 + 4) + '" fill="#ef6c00" font-size="12" font-weight="700">✕</text>');
      if (a.status === "killed" && a.t_done != null) o.push('<text x="' + (x(a.t_done) - 4) + '" y="' + (y0 + 4) + '" fill="#c62828" font-size="12" font-weight="700">✕</text>');
      if (a.late_discarded != null) {
        var xl = x(a.late_discarded), ym = (y0 + y1) / 2;
        o.push('<line x1="' + xl + '" y1="' + y1 + '" x2="' + (xl + 10) + '" y2="' + ym + '" stroke="#c62828" stroke-width="2" stroke-dasharray="3,2"/>');
        o.push('<text x="' + (xl + 7) + '" y="' + (ym + 4) + '" fill="#c62828" font-size="12" font-weight="700">✕</text>');
        if (x1 < xl - 40) o.push('<line x1="' + x1 + '" y1="' + y1 + '" x2="' + xl + '" y2="' + y1 + '" stroke="#c62828" stroke-width="2" opacity=".5"/>');
      }
      var tip = a.verb + " " + a.from + "→" + a.to + " " + a.status + (a.late_discarded != null ? ", late response discarded" : "");
      o.push('<title>' + esc(tip) + '</title></g>');
    });
    // Points.
    M.points.forEach(function (p) {
      if (hidden[p.cat] || !inView(p.t, p.t)) return;
      var ln = laneOf[p.lane];
      if (!ln) return;
      var px = x(p.t), isV = violation && violation.at_i === p.i;
      if (related[p.i] && !isV) o.push('<circle cx="' + px + '" cy="' + ln.py + '" r="6.5" fill="none" stroke="#ffb300" stroke-width="2.5"/>');
      o.push('<circle class="clickable" data-k="p' + p.i + '" cx="' + px + '" cy="' + ln.py + '" r="' + (isV ? 5 : 3.2) + '" fill="' + (isV ? "#c62828" : COLOR[p.cat]) + '" stroke="#fff" stroke-width=".8"><title>' + esc("#" + p.i + " " + ms(p.t) + " " + p.label) + '</title></circle>');
    });
    // The violation.
    if (violation && inView(vAt, vAt)) {
      var vx = x(vAt), vl = violation.at_i != null && pointByI[violation.at_i] ? laneOf[pointByI[violation.at_i].lane] : null;
      o.push('<g id="vmark"><line x1="' + vx + '" x2="' + vx + '" y1="' + (AXIS_H - 6) + '" y2="' + L.height + '" stroke="#c62828" stroke-width="2"/>');
      if (vl) o.push('<circle cx="' + vx + '" cy="' + vl.py + '" r="10" fill="none" stroke="#c62828" stroke-width="2.5"/>');
      var vtext = "✖ " + violation.checker + ": " + violation.message;
      if (vtext.length > 90) vtext = vtext.slice(0, 88) + "…";
      var right = vx > W * 0.6;
      var ty = AXIS_H + 12;
      var tw = vtext.length * 5.9 + 8;
      var tx = right ? vx - tw - 6 : vx + 6;
      o.push('<rect x="' + tx + '" y="' + (ty - 11) + '" width="' + tw + '" height="15" rx="3" fill="#c62828"/>');
      o.push('<text x="' + (tx + 4) + '" y="' + ty + '" fill="#fff" font-weight="600">' + esc(vtext) + '</text></g>');
    }
    o.push('</g></svg>');
    chart.innerHTML = o.join("");
    status();
  }

  // ---------------------------------------------------------------- interaction
  function zoom(factor, frac) {
    var span = view.t1 - view.t0, c = view.t0 + span * frac, ns = Math.max(span * factor, 2000);
    view = { t0: c - (c - view.t0) * ns / span, t1: c + (view.t1 - c) * ns / span };
    draw();
  }
  function focusViolation(k) {
    var v = M.violations[k];
    if (!v) return;
    violation = v;
    related = {};
    (v.related || []).forEach(function (i) { related[i] = true; });
    vAt = v.at_t != null ? v.at_t : end;
    var ts = (v.related || []).map(function (i) { return pointByI[i] ? pointByI[i].t : null; }).filter(function (t) { return t != null; });
    ts.push(vAt);
    var lo = Math.min.apply(null, ts), hi = Math.max.apply(null, ts), pad = Math.max((hi - lo) * 0.08, 2e6);
    view = { t0: Math.max(0, lo - pad), t1: hi + pad };
    draw();
    if (v.at_i != null && pointByI[v.at_i]) showPoint(pointByI[v.at_i]);
  }
  chart.addEventListener("wheel", function (e) {
    e.preventDefault();
    var r = chart.getBoundingClientRect(), px = e.clientX - r.left;
    if (px < LABEL_W) return;
    zoom(e.deltaY > 0 ? 1.25 : 0.8, (px - LABEL_W) / (W - LABEL_W - 8));
  }, { passive: false });
  var drag = null;
  chart.addEventListener("mousedown", function (e) { drag = { x: e.clientX, v: view, moved: false }; });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    var dx = e.clientX - drag.x;
    if (Math.abs(dx) > 3) { drag.moved = true; chart.classList.add("dragging"); }
    if (!drag.moved) return;
    var dt = dx / (W - LABEL_W - 8) * (drag.v.t1 - drag.v.t0);
    view = { t0: drag.v.t0 - dt, t1: drag.v.t1 - dt };
    draw();
  });
  window.addEventListener("mouseup", function (e) {
    var d = drag;
    drag = null;
    chart.classList.remove("dragging");
    if (d && !d.moved) click(e);
  });
  window.addEventListener("resize", draw);

  function row(k, v) { return "<tr><td>" + esc(k) + "</td><td>" + v + "</td></tr>"; }
  function eventBlock(i, title) {
    var p = pointByI[i];
    if (!p) return "<p class=hint>" + esc(title) + ": event #" + i + "</p>";
    return "<p><b>" + esc(title) + "</b> #" + p.i + " " + esc(p.kind) + " @ " + ms(p.t) + " on " + esc(p.lane) + "</p><pre>" + esc(JSON.stringify(p.data, null, 1)) + "</pre>";
  }
  function showPoint(p) {
    detail.innerHTML = "<h2>" + esc(p.kind) + "</h2><table>" + row("event", "#" + p.i) + row("time", ms(p.t)) + row("lane", esc(p.lane)) +
      row("category", esc(CAT_NAME[p.cat] || p.cat)) + (related[p.i] ? row("violation", "named by it") : "") +
      (violation && violation.at_i === p.i ? row("violation", "<b style='color:#c62828'>this event</b>") : "") +
      "</table><pre>" + esc(JSON.stringify(p.data, null, 1)) + "</pre>";
  }
  function click(e) {
    var t = e.target;
    while (t && t !== chart && !(t.getAttribute && t.getAttribute("data-k"))) t = t.parentNode;
    if (!t || t === chart || !t.getAttribute) return;
    var k = t.getAttribute("data-k"), kind = k[0], n = +k.slice(1);
    if (kind === "p") showPoint(pointByI[n]);
    if (kind === "s") {
      var s = M.spans[n];
      detail.innerHTML = "<h2>" + esc(s.label) + "</h2><table>" + row("lane", esc(s.lane)) + row("from", ms(s.t0)) + row("to", ms(s.t1) + (s.i1 == null ? " (never ended)" : "")) +
        row("lasted", ms(s.t1 - s.t0)) + row("outcome", esc(s.outcome || "—")) + row("story", esc(s.group)) + "</table>" +
        eventBlock(s.i0, "began") + (s.i1 != null ? eventBlock(s.i1, "ended") : "");
    }
    if (kind === "a") {
      var a = M.arrows[n];
      detail.innerHTML = "<h2>RPC " + esc(a.verb) + "</h2><table>" + row("from → to", esc(a.from + " → " + a.to)) + row("sent", ms(a.t0) + " (#" + a.i0 + ")") +
        row(a.status === "dropped" ? "dropped" : "admitted", ms(a.t1)) + (a.t_done != null ? row("caller done", ms(a.t_done)) : "") +
        row("status", "<b>" + esc(a.status) + "</b>") + (a.late_discarded != null ? row("late response", "discarded at " + ms(a.late_discarded)) : "") +
        row("events", esc([a.i0].concat(a.rest).map(function (i) { return "#" + i; }).join(" "))) + "</table>";
    }
    if (kind === "f") {
      var f = M.faults[n];
      detail.innerHTML = "<h2>" + esc(f.label) + "</h2><table>" + row("kind", esc(f.what)) + row("lanes", esc(f.lanes.join(", "))) + row("from", ms(f.t0)) +
        row("to", ms(f.t1)) + "</table>" + eventBlock(f.i0, "applied") + (f.i1 != null ? eventBlock(f.i1, "ended") : "");
    }
  }

  // ---------------------------------------------------------------- health, for the browser test
  function status() {
    var s = document.getElementById("status");
    var mark = document.getElementById("vmark");
    var visible = 0;
    if (mark) {
      var r = mark.getBoundingClientRect(), c = chart.getBoundingClientRect();
      visible = r.width > 0 && r.right > c.left + LABEL_W - 2 && r.left < c.right ? 1 : 0;
    }
    s.setAttribute("data-violation-visible", String(visible));
    s.setAttribute("data-violations", String(M.violations.length));
    s.setAttribute("data-related", String(relatedList.length));
    s.setAttribute("data-spans", String(M.spans.length));
    s.setAttribute("data-arrows", String(M.arrows.length));
    s.setAttribute("data-lanes", String(M.lanes.length));
    s.setAttribute("data-rendered", "1");
    s.setAttribute("data-errors", String(window.__errors.length));
  }

  document.documentElement.style.setProperty("--top", (document.getElementById("head").offsetHeight + bar.offsetHeight) + "px");
  // Shareable views: #t0=300&t1=450 (ms) zooms, #event=421 selects an event,
  // #focus=violation zooms to the violation.
  var hash = {};
  location.hash.slice(1).split("&").forEach(function (kv) {
    var p = kv.split("=");
    if (p[0]) hash[p[0]] = decodeURIComponent(p[1] || "");
  });
  if (hash.t0 != null && hash.t1 != null && +hash.t1 > +hash.t0) view = { t0: +hash.t0 * 1e6, t1: +hash.t1 * 1e6 };
  draw();
  if (hash.focus === "violation") focusViolation(0);
  if (hash.event != null && pointByI[+hash.event]) showPoint(pointByI[+hash.event]);
})();
