(function () {
  "use strict";
  const read = (id) => JSON.parse(document.getElementById(id).textContent);
  const figures = read("figure-data");
  const trials = read("trial-data");
  const meta = read("report-data");
  const config = {responsive: true, displaylogo: false, toImageButtonOptions: {format: "png", scale: 2}};
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const kv = (rows, cls) => '<table class="kv">' + rows.map((r) =>
      '<tr class="' + (cls && cls(r) ? "searched" : "") + '"><td>' + esc(r[0]) + "</td><td>" + esc(r[1]) + "</td></tr>").join("") + "</table>";
  let selected = meta.best || null;
  let passing = null;  // trial ids inside the ranges chosen on the parallel coordinates, or null: all

  // --- a trial's images: embedded (by key) or linked from the experiment folder -------------------
  function imageHtml(t, im) {
    const [kind, caption, key, link] = im;
    const src = key ? meta.images[key] : link;
    if (!src) return '<p class="hint" data-kind="' + esc(kind) + '">' + esc(caption) + ": not embedded, in the experiment folder</p>";
    const img = '<img alt="' + esc(caption) + '" src="' + esc(src) + '"' + (key ? "" : ' loading="lazy"') + ">";
    if (kind === "traversals" && t.traversals) {
      const tr = t.traversals;
      const cols = tr.columns.map((c) => "<span>" + esc(c) + "</span>").join("");
      const rows = tr.rows.map((r) => "<span>" + esc(r) + "</span>").join("");
      return '<figure data-kind="traversals" class="traversals"><div class="trav-grid"><span class="trav-corner">z =</span>' +
          '<div class="trav-cols">' + cols + '</div><div class="trav-rows">' + rows + "</div>" + img +
          "</div><figcaption>" + esc(caption) + (key ? "" : " (linked)") + "</figcaption></figure>";
    }
    return '<figure data-kind="' + esc(kind) + '">' + img + "<figcaption>" + esc(caption) + (key ? "" : " (linked)") + "</figcaption></figure>";
  }

  function showTrial(id) {
    const t = trials[id];
    const panel = document.getElementById("selection");
    if (!t || !panel) return;
    selected = id;
    const rank = t.rank === null ? "" : " &middot; Pareto rank " + esc(t.rank) + (t.front ? " (on the front)" : "");
    let h = "<h3>" + esc(t.label) + "</h3><p>outcome: <b>" + esc(t.outcome) + "</b>" + rank + "</p>";
    if (t.objectives.length) h += '<p class="objectives">' + t.objectives.map((m) => esc(m[0]) + " <b>" + esc(m[1]) + "</b>" + (m[2] ? " " + esc(m[2]) : "")).join(" &middot; ") + "</p>";
    h += t.images.length ? t.images.map((im) => imageHtml(t, im)).join("")
        : '<p class="hint">No images for this trial (images are written when a trial completes).</p>';
    if (t.metrics.length) h += "<h4>Final values</h4>" + kv(t.metrics);
    h += "<h4>Run</h4>" + kv(Object.entries(t.facts));
    h += '<h4>Configuration</h4><p class="hint">searched parameters in bold; any other TrainConfig field has its default</p>' + kv(t.config, (r) => r[2]);
    panel.innerHTML = h;
    panel.dataset.trial = id;
    panel.scrollTop = 0;
    document.querySelectorAll("#trials-table tbody tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.trial === id));
    markSelected();
  }
  window.showTrial = showTrial;

  // --- the Pareto chart: the ring on the selected trial, the filter as selected points -----------
  const pareto = () => document.getElementById("chart-pareto");
  const markerTraces = (gd) => gd.data.map((t, i) => [t, i]).filter(([t]) => t.meta === "front" || t.meta === "dominated");

  function markSelected() {
    const gd = pareto();
    if (!gd || !gd.data) return;
    const ring = gd.data.findIndex((t) => t.meta === "selected");
    if (ring < 0) return;
    let x = [], y = [];
    for (const [t] of markerTraces(gd)) {
      const k = (t.customdata || []).indexOf(selected);
      if (k >= 0) { x = [t.x[k]]; y = [t.y[k]]; break; }
    }
    Plotly.restyle(gd, {x: [x], y: [y], customdata: [x.length ? [selected] : []]}, [ring]);
  }

  function filterPareto() {
    const gd = pareto();
    if (!gd || !gd.data) return;
    const traces = markerTraces(gd);
    const points = traces.map(([t]) => passing === null ? null : (t.customdata || []).flatMap((id, k) => passing.has(id) ? [k] : []));
    Plotly.restyle(gd, {selectedpoints: points, "unselected.marker.opacity": traces.map(() => 0.07)}, traces.map(([, i]) => i));
  }

  // --- linked filtering: ranges on the parallel coordinates -> the table and the front ------------
  function inRange(v, range) {
    const ranges = Array.isArray(range[0]) ? range : [range];
    return ranges.some((r) => v >= r[0] && v <= r[1]);
  }

  function applyFilter() {
    const gd = document.getElementById("chart-parallel");
    if (!gd || !gd.data || !gd.data.length) return;
    const ids = (gd.layout.meta && gd.layout.meta.trial_ids) || [];
    const dims = gd.data[0].dimensions.filter((d) => d.constraintrange && d.constraintrange.length);
    passing = dims.length ? new Set(ids.filter((id, k) => dims.every((d) => inRange(d.values[k], d.constraintrange)))) : null;
    document.querySelectorAll("#trials-table tbody tr").forEach((tr) => tr.classList.toggle("filtered", passing !== null && !passing.has(tr.dataset.trial)));
    const bar = document.getElementById("filter-bar");
    if (bar) {
      bar.hidden = passing === null;
      document.getElementById("filter-count").textContent = passing === null ? "" : passing.size + " of " + ids.length;
    }
    filterPareto();
  }

  function clearFilter() {
    const gd = document.getElementById("chart-parallel");
    if (!gd || !gd.data || !gd.data.length) return;
    const update = {};
    gd.data[0].dimensions.forEach((d, k) => { update["dimensions[" + k + "].constraintrange"] = null; });
    Plotly.restyle(gd, update, [0]).then(applyFilter);
  }

  // --- plotting: the trade-off first, the rest one at a time so the page answers at once ---------
  function hook(id) {
    const gd = document.getElementById(id);
    if (id === "chart-parallel") { gd.on("plotly_restyle", applyFilter); return; }
    gd.on("plotly_click", (ev) => {
      const p = ev && ev.points && ev.points.find((q) => typeof q.customdata === "string" && trials[q.customdata]);
      if (!p) return;
      showTrial(p.customdata);
      if (id !== "chart-pareto") document.getElementById("pareto").scrollIntoView({behavior: "smooth", block: "start"});
    });
  }

  // Each chart once: when it comes near the screen, or in page order once the first view is up.
  const plots = {};
  function plot(id) {
    if (!plots[id]) plots[id] = Plotly.newPlot(id, figures[id].data, figures[id].layout, config).then(() => hook(id));
    return plots[id];
  }
  const idle = () => new Promise((resolve) => setTimeout(resolve, 0));

  async function plotAll() {
    const ids = Object.keys(figures).filter((id) => id.startsWith("chart-") && document.getElementById(id));
    if (ids.includes("chart-pareto")) await plot("chart-pareto");
    if (selected) showTrial(selected);
    document.body.dataset.firstView = "true";
    performance.mark("report-first-view");  // the trade-off drawn and the best trial shown
    const rest = ids.filter((id) => id !== "chart-pareto");
    if ("IntersectionObserver" in window) {
      const near = new IntersectionObserver((entries) => entries.forEach((e) => { if (e.isIntersecting) plot(e.target.id); }),
          {rootMargin: "600px 0px"});
      rest.forEach((id) => near.observe(document.getElementById(id)));
    }
    for (const id of rest) { await idle(); await plot(id); }
  }

  const pairs = document.getElementById("pareto-pair");
  if (pairs) {
    pairs.addEventListener("change", () => {
      const fig = figures["pareto-pairs"][Number(pairs.value)];
      Plotly.react("chart-pareto", fig.data, fig.layout, config).then(() => { markSelected(); filterPareto(); });
    });
  }
  const clear = document.getElementById("filter-clear");
  if (clear) clear.addEventListener("click", clearFilter);

  // The images of the best trials: the same figures as the selection panel's.
  document.querySelectorAll(".panel-row").forEach((row) => {
    const t = trials[row.dataset.trial];
    if (t) row.querySelector(".panel-images").innerHTML = t.images.map((im) => imageHtml(t, im)).join("");
  });

  plotAll().then(() => { performance.mark("report-ready"); document.body.dataset.ready = "true"; })
      .catch((err) => { console.error(err); document.body.dataset.ready = "error"; });

  // --- the sortable trials table: numbers as numbers, empty cells last ---------------------------
  const table = document.getElementById("trials-table");
  if (table) {
    table.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
      const dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
      table.querySelectorAll("th").forEach((o) => o.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", dir);
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      const key = (tr) => tr.cells[col] ? tr.cells[col].dataset.sort : "";
      const sign = dir === "ascending" ? 1 : -1;
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        if (x === "" || y === "") return (x === "") - (y === "");
        const nx = Number(x), ny = Number(y);
        const c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y, undefined, {numeric: true});
        return sign * c;
      });
      rows.forEach((r) => body.appendChild(r));
    }));
    table.tBodies[0].addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr");
      if (tr && tr.dataset.trial) {
        showTrial(tr.dataset.trial);
        document.getElementById("selection").scrollIntoView({behavior: "smooth", block: "nearest"});
      }
    });
  }
})();
