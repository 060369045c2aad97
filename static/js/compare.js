/* Compare page: each metric over turns as a line chart, one line per run compared, from the data the page
 * embeds (runs.comparison's metric_charts). Without JavaScript or Chart.js the table under the charts shows
 * the same values.
 */
(function () {
  "use strict";
  var source = document.getElementById("compare-charts-data");
  if (!source || !window.Chart) return;
  var charts = JSON.parse(source.textContent);

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var chart = charts[Number(canvas.dataset.chart)];
    if (!chart) return;
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: chart.turns.map(function (turn) { return "Turn " + turn; }),
        datasets: chart.series.map(function (line) { return { label: line.label, data: line.values }; }),
      },
      options: { animation: false, responsive: true, maintainAspectRatio: false, spanGaps: true,
                 scales: { y: { beginAtZero: true } } },
    });
  });
})();
