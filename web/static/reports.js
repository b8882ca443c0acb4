// The reports page's two charts (Chart.js, vendored under static/vendor/chart.js), drawn from
// the rows the server already rendered into #report-data. Nothing here reads customer text.
"use strict";
(function () {
  var data = document.getElementById("report-data");
  var box = document.getElementById("report-charts");
  if (!data || !box || typeof Chart === "undefined") return;
  var report = JSON.parse(data.textContent);
  var labels = report.labels;
  var keys = report.rows.map(function (r) {
    return r.key === "none" ? labels.none : (report.names[r.key] || r.key);
  });
  function series(name, color) {
    return { label: labels[name], backgroundColor: color, borderColor: color,
             data: report.rows.map(function (r) { return r[name]; }) };
  }
  function minutes(name, color) {
    var s = series(name, color);
    s.data = s.data.map(function (v) { return v === null ? null : Math.round(v / 6) / 10; });
    s.spanGaps = true;
    return s;
  }
  var common = { responsive: true, maintainAspectRatio: false, animation: false };
  window.reportCharts = [
    new Chart(document.getElementById("chart-volume"), {
      type: "bar", options: common,
      data: { labels: keys, datasets: [series("opened", "#3b6fd8"),
                                       series("resolved", "#2e9d6a"),
                                       series("reopened", "#d8893b")] } }),
    new Chart(document.getElementById("chart-times"), {
      type: "line", options: common,
      data: { labels: keys, datasets: [minutes("first_response_p50_s", "#3b6fd8"),
                                       minutes("first_response_p90_s", "#8a5cd8"),
                                       minutes("resolution_p50_s", "#2e9d6a")] } })
  ];
  box.setAttribute("data-drawn", "true");
})();
