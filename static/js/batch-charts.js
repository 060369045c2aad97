/* Batch page: a chart per metric of its distribution in each variation (min to max of the completed runs'
 * final values, the 95 % confidence interval of the mean, the mean), read from the statistics tables the page
 * shows: the tables are the charts' text alternative and their only data. `drawBatchCharts(root)` draws or
 * updates them; the page calls it again whenever its live fragment is swapped in.
 */
(function () {
  "use strict";
  var charts = {};  // metric name -> Chart; also window.batchCharts, for the screenshot script and tests
  window.batchCharts = charts;
  var RANGE = "rgba(0, 114, 178, 0.35)", CI = "#D55E00", CI_FILL = "rgba(213, 94, 0, 0.12)", MEAN = "#1b1f24";

  function number(element, key) {
    var value = element.dataset[key];
    return value === undefined || value === "" ? null : Number(value);
  }

  function collect(root) {
    var metrics = {}, order = [];
    root.querySelectorAll("tr[data-metric]").forEach(function (row) {
      var name = row.dataset.metric;
      if (!metrics[name]) { metrics[name] = []; order.push(name); }
      metrics[name].push({
        variation: row.dataset.variation, description: row.dataset.description || "", n: number(row, "n"),
        mean: number(row, "mean"), min: number(row, "min"), max: number(row, "max"),
        ciLow: number(row, "ciLow"), ciHigh: number(row, "ciHigh"),
      });
    });
    return { metrics: metrics, order: order };
  }

  function label(entry) {
    var text = entry.description.length > 28 ? entry.description.slice(0, 27) + "…" : entry.description;
    return text ? [entry.variation, text] : entry.variation;
  }

  function datasets(entries) {
    return [
      { type: "line", label: "mean", data: entries.map(function (e) { return e.mean; }), showLine: false,
        order: 0, pointStyle: "rectRot", pointRadius: 6, pointHoverRadius: 7, borderColor: MEAN, backgroundColor: MEAN },
      { type: "bar", label: "95 % CI of the mean", grouped: false, order: 1, barPercentage: 0.35, backgroundColor: CI_FILL,
        borderColor: CI, borderWidth: 2, borderSkipped: false,
        data: entries.map(function (e) { return e.ciLow === null ? null : [e.ciLow, e.ciHigh]; }) },
      { type: "bar", label: "min – max", grouped: false, barPercentage: 0.7, backgroundColor: RANGE,
        order: 2, data: entries.map(function (e) { return [e.min, e.max]; }) },
    ];
  }

  function figure(holder, name, index) {
    var element = document.createElement("figure");
    element.className = "chart-figure";
    element.dataset.metric = name;
    var caption = document.createElement("figcaption");
    caption.id = "batch-chart-caption-" + index;
    var title = document.createElement("strong");
    title.textContent = name;
    caption.append(title, document.createTextNode(": per variation, min to max, 95 % CI of the mean and the mean"));
    var box = document.createElement("div");
    box.className = "chart";
    var canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-labelledby", caption.id);
    box.appendChild(canvas);
    element.append(caption, box);
    holder.appendChild(element);
    return canvas;
  }

  function draw(root) {
    var holder = (root || document).querySelector("#batch-charts");
    if (!holder || !window.Chart) return;
    var found = collect(root || document);
    Object.keys(charts).forEach(function (name) {
      if (!found.metrics[name] || !holder.contains(charts[name].canvas)) {
        charts[name].destroy();
        var gone = charts[name].canvas.closest("figure");
        if (gone) gone.remove();
        delete charts[name];
      }
    });
    found.order.forEach(function (name, index) {
      var entries = found.metrics[name];
      var chart = charts[name];
      if (chart) {
        chart.data.labels = entries.map(label);
        chart.data.datasets = datasets(entries);
        chart.$entries = entries;
        chart.update();
        return;
      }
      chart = new window.Chart(figure(holder, name, index), {
        data: { labels: entries.map(label), datasets: datasets(entries) },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { x: { stacked: false }, y: { beginAtZero: true } },
          plugins: {
            tooltip: {
              callbacks: {
                footer: function (items) {
                  var entry = items.length ? items[0].chart.$entries[items[0].dataIndex] : null;
                  return entry ? entry.n + " completed run" + (entry.n === 1 ? "" : "s") : "";
                },
              },
            },
          },
        },
      });
      chart.$entries = entries;
      charts[name] = chart;
    });
  }

  window.drawBatchCharts = draw;
  draw(document);
})();
