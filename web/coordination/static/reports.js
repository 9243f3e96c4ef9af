// Draws the report's chart with uPlot from the numbers embedded in the page.
"use strict";
(function () {
  const box = document.getElementById("graphique");
  const data = JSON.parse(document.getElementById("donnees").textContent);
  if (!data.labels.length) {
    box.textContent = "Aucun contact sur la période.";
    return;
  }
  const xs = data.labels.map((_, i) => i);
  const sl = data.service_level.map((v) => (v === null ? null : Math.round(v * 100)));
  const bars = uPlot.paths.bars({ size: [0.6, 40] });
  const opts = {
    width: Math.max(320, box.clientWidth || 800),
    height: 260,
    scales: { x: { time: false }, pct: { range: [0, 100] } },
    axes: [
      { values: (u, splits) => splits.map((i) => data.labels[i] ?? "") },
      { label: "Contacts" },
      { scale: "pct", side: 1, label: "Niveau de service (%)", grid: { show: false } },
    ],
    series: [
      {},
      { label: "Reçus", stroke: "#0b4f9c", fill: "rgba(11,79,156,0.25)", paths: bars, points: { show: false } },
      { label: "Répondus", stroke: "#14622a", width: 2 },
      { label: "Abandons", stroke: "#a0161b", width: 2, dash: [6, 4] },
      { label: "Niveau de service (%)", scale: "pct", stroke: "#7a4a00", width: 2 },
    ],
  };
  new uPlot(opts, [xs, data.offered, data.answered, data.abandoned, sl], box);
})();
