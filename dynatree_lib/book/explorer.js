// The explorer of the static book (dynatree_lib/viz.py: explorer_html fills in the id and the data):
// menus pick one precomputed DynaTree setting and one of its stored iterations (the page opens on
// the selection viz.py marked); the tree is drawn with the page's plotly.js, coloured by log10 p(path).
(function () {
  const data = __DATA__;
  const root = document.getElementById("__ELEMENT_ID__");
  const plot = root.querySelector(".dt-plot");
  const stats = root.querySelector(".dt-stats");
  const value = (key) => root.querySelector('select[data-key="' + key + '"]').value;

  function edges(tree, accepted) {
    const x = [], y = [];
    tree.edges.filter((e) => e[4] === accepted).forEach((e) => {
      x.push(e[0], e[2], null);
      y.push(e[1], e[3], null);
    });
    return {x: x, y: y, mode: "lines", hoverinfo: "skip", showlegend: false,
            line: {color: accepted ? data.colors.accepted : data.colors.edge, width: accepted ? 4 : 1.5}};
  }

  function draw() {
    const s = data.settings[data.keys.map(value).join("|")];
    const iteration = Math.min(Number(value("iteration")), s.trees.length - 1);  // files may store fewer
    const t = s.trees[iteration];
    stats.textContent = "over the run: τ = " + s.tau.toFixed(2) + " tokens per target forward, speedup "
      + s.speedup.toFixed(2) + "x \u00b1 " + s.speedup_std.toFixed(2) + ", acceptance α = "
      + s.acceptance.toFixed(2) + ", " + s.nodes.toFixed(1) + " draft nodes per tree. This tree: "
      + t.nodes + " draft nodes, " + t.accepted_n + " accepted, " + t.committed + " tokens committed.";
    const nodes = {
      x: t.x, y: t.y, mode: "markers+text", text: t.text, textposition: "middle right",
      hovertext: t.hover, hoverinfo: "text", showlegend: false,
      marker: {size: 14, color: t.color, colorscale: "Viridis", cmin: data.cmin, cmax: 0,
               colorbar: data.colorbar,
               line: {width: t.accepted.map((a) => (a ? 3 : 0.5)),
                      color: t.accepted.map((a) => (a ? data.colors.accepted : "#333"))}},
    };
    window.Plotly.react(plot, [edges(t, 0), edges(t, 1), nodes],
      {title: {text: s.label + " \u00b7 iteration " + (iteration + 1)},
       xaxis: {title: {text: "depth"}, dtick: 1}, yaxis: {visible: false},
       margin: {l: 20, r: 20, t: 50, b: 40}, plot_bgcolor: "white", height: 440},
      {displaylogo: false, responsive: true});
  }

  root.querySelectorAll("select").forEach((menu) => menu.addEventListener("change", draw));
  (function start() { if (window.Plotly) { draw(); } else { setTimeout(start, 100); } })();
})();
