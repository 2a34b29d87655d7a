(function () {
  "use strict";
  const figures = JSON.parse(document.getElementById("figure-data").textContent);
  const trials = JSON.parse(document.getElementById("trial-data").textContent);
  const config = {responsive: true, displaylogo: false, toImageButtonOptions: {format: "png", scale: 2}};
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const kv = (rows, cls) => '<table class="kv">' + rows.map((r) =>
      '<tr class="' + (cls && cls(r) ? "searched" : "") + '"><td>' + esc(r[0]) + "</td><td>" + esc(r[1]) + "</td></tr>").join("") + "</table>";

  function showTrial(id) {
    const t = trials[id];
    const panel = document.getElementById("selection");
    if (!t) return;
    let h = "<h3>" + esc(t.label) + "</h3><p>outcome: <b>" + esc(t.outcome) + "</b>" +
        t.metrics.slice(0, t.n_objectives).map((m) => " &middot; " + esc(m[0]) + " <b>" + esc(m[1]) + "</b>").join("") + "</p>";
    if (t.images.length) {
      h += t.images.map((im) => '<figure data-kind="' + esc(im[0]) + '"><img alt="' + esc(im[1]) + '" src="' + im[2] + '"><figcaption>' + esc(im[1]) + "</figcaption></figure>").join("");
    } else {
      h += '<p class="hint">No images for this trial (images are written when a trial completes).</p>';
    }
    if (t.metrics.length) h += "<h4>Final values</h4>" + kv(t.metrics);
    h += "<h4>Run</h4>" + kv(Object.entries(t.facts));
    h += "<h4>Configuration</h4><p class=\"hint\">searched parameters in bold; any other TrainConfig field has its default</p>" + kv(t.config, (r) => r[2]);
    panel.innerHTML = h;
    panel.dataset.trial = id;
    panel.scrollTop = 0;
    document.querySelectorAll("#trials-table tbody tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.trial === id));
  }
  window.showTrial = showTrial;

  const plotted = Object.entries(figures).map(([id, fig]) => Plotly.newPlot(id, fig.data, fig.layout, config));
  Promise.all(plotted).then(() => {
    const pareto = document.getElementById("chart-pareto");
    if (pareto && pareto.on) {
      const pick = (ev) => {
        const p = ev && ev.points && ev.points.find((q) => q.customdata !== undefined && q.customdata !== null);
        if (p) showTrial(String(p.customdata));
      };
      pareto.on("plotly_click", pick);
      pareto.on("plotly_selected", pick);
    }
    document.body.dataset.ready = "true";
  }).catch((err) => { console.error(err); document.body.dataset.ready = "error"; });

  // Sortable trials table: click a heading; numbers sort as numbers, empty cells last.
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
