/* Live run page: applies the run's events after the seq the page was rendered at.
 *
 * The server renders every fragment (the same partials as the page) and sends events in seq order, once
 * each; this script inserts fragments by element id (so applying an event twice changes nothing), keeps
 * the numbers (progress, costs, metrics chart) current, and on a dropped connection reconnects asking for
 * everything after the last seq it applied. Without JavaScript the page still shows the stored run and its
 * forms still work.
 */
(function () {
  "use strict";
  var page = document.getElementById("run-page");
  if (!page || !window.WebSocket) return;

  var lastSeq = Number(page.dataset.after) || 0;
  // The status the page was rendered with already reflects every lifecycle event up to this seq.
  var statusSeq = Number(page.dataset.statusSeq) || 0;
  var maxTurns = Number(page.dataset.maxTurns) || 0;
  var creditLimit = Number(page.dataset.creditLimit) || 0;
  var retries = 0;
  var finished = false;
  var FINAL = ["completed", "cancelled"];
  var RESUMABLE = ["paused", "halted", "failed", "completed", "crashed"];

  function byId(id) { return document.getElementById(id); }
  function money(value) { return "$" + value.toFixed(4); }

  // ---- fragments -------------------------------------------------------------------------------------
  function applyFragment(fragment) {
    var template = document.createElement("template");
    template.innerHTML = fragment.html.trim();
    var node = template.content.firstElementChild;
    if (!node) return;
    var existing = node.id ? byId(node.id) : null;
    if (existing) {
      if (fragment.mode !== "ensure") existing.replaceWith(node);
      return;
    }
    var target = document.querySelector(fragment.target);
    if (target) target.appendChild(node);
  }

  // ---- numbers -----------------------------------------------------------------------------------------
  function setProgress(done, label) {
    var bar = byId("turn-progress");
    if (bar) {
      bar.setAttribute("aria-valuenow", done);
      bar.firstElementChild.style.width = (maxTurns ? Math.min(100, 100 * done / maxTurns) : 0) + "%";
    }
    var text = byId("progress-label");
    if (text) text.textContent = label;
  }

  function addTo(element, amount) {
    var value = (Number(element.dataset.value) || 0) + amount;
    element.dataset.value = value;
    return value;
  }

  function addCost(key, name, label, cost) {
    var table = byId("cost-by-" + key);
    if (!table) return;
    var row = byId("cost-" + key + "-" + name);
    if (!row) {
      row = document.createElement("tr");
      row.id = "cost-" + key + "-" + name;
      var head = document.createElement("th");
      head.scope = "row";
      head.textContent = label;
      var cell = document.createElement("td");
      cell.className = "number";
      cell.dataset.value = "0";
      row.append(head, cell);
      table.tBodies[0].appendChild(row);
    }
    var td = row.querySelector("td");
    td.textContent = addTo(td, cost).toFixed(4);
  }

  function onCost(data) {
    var total = byId("cost-total");
    if (total) total.textContent = money(addTo(total, data.cost));
    var calls = byId("cost-calls");
    if (calls) calls.textContent = addTo(calls, 1);
    var bar = byId("cost-progress");
    if (bar && creditLimit) {
      var share = Math.min(100, 100 * Number(total.dataset.value) / creditLimit);
      bar.setAttribute("aria-valuenow", Math.round(share));
      bar.firstElementChild.style.width = share + "%";
    }
    addCost("actor", data.actor, names[data.actor] || data.actor, data.cost);
    addCost("phase", data.phase, data.phase, data.cost);
  }

  function setStatus(status, reason) {
    page.dataset.status = status;
    var badge = byId("run-status");
    if (badge) {
      badge.className = "status status-" + status;
      badge.textContent = status;
    }
    var why = byId("run-reason");
    if (why) {
      why.textContent = reason || "";
      why.hidden = !reason;
    }
    document.querySelectorAll("[data-when]").forEach(function (element) {
      var when = element.dataset.when;
      var show = when === "running" ? status === "running"
        : when === "resumable" ? RESUMABLE.indexOf(status) >= 0
        : FINAL.indexOf(status) < 0;
      element.hidden = !show;
    });
    finished = FINAL.indexOf(status) >= 0;
  }

  // ---- metrics chart -------------------------------------------------------------------------------------
  var names = readJSON("actor-names") || {};
  var chart = null;
  function readJSON(id) {
    var element = byId(id);
    return element ? JSON.parse(element.textContent) : null;
  }
  function seriesName(point) { return point.actor ? point.name + " (" + (names[point.actor] || point.actor) + ")" : point.name; }
  function addMetric(point) {
    if (typeof point.value !== "number" || !window.Chart) return;
    var canvas = byId("metrics-chart");
    if (!canvas) return;
    if (!chart) {
      var labels = [];
      for (var t = 1; t <= maxTurns; t++) labels.push("Turn " + t);
      chart = new window.Chart(canvas, {
        type: "line",
        data: { labels: labels, datasets: [] },
        options: { animation: false, responsive: true, maintainAspectRatio: false, spanGaps: true,
                   scales: { y: { beginAtZero: true } } },
      });
    }
    var label = seriesName(point);
    var dataset = chart.data.datasets.find(function (d) { return d.label === label; });
    if (!dataset) {
      dataset = { label: label, data: new Array(maxTurns).fill(null) };
      chart.data.datasets.push(dataset);
    }
    dataset.data[point.turn - 1] = point.value;
    var empty = byId("metrics-empty");
    if (empty) empty.hidden = true;
  }
  (readJSON("metrics-data") || []).forEach(addMetric);
  if (chart) chart.update();

  // ---- events ----------------------------------------------------------------------------------------------
  function apply(message) {
    var data = message.data || {};
    // A replayed lifecycle event older than the rendered status (an earlier pause, an earlier wait for a
    // seat) must not bring back what it showed then.
    if (data.status && message.seq <= statusSeq) return;
    (message.fragments || []).forEach(applyFragment);
    switch (message.type) {
      case "turn_started": setProgress(data.playing - 1, "Playing turn " + data.playing + " of " + maxTurns); break;
      case "turn_completed": setProgress(data.completed, "Turn " + data.completed + " of " + maxTurns + " done"); break;
      case "cost_incurred": onCost(data); break;
      case "metric_recorded": addMetric(data); if (chart) chart.update(); break;
      default: if (data.status) setStatus(data.status, data.reason);
    }
  }

  function indicate(text) {
    var element = byId("live-indicator");
    if (element) element.textContent = text;
  }

  // A channel layer may drop a relayed event; the next one reveals the gap and the server fills it, but
  // nothing follows a run's last events. So a quiet page asks for anything after its last seq now and then.
  var QUIET_MS = 3000;
  var lastHeard = Date.now();

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + page.dataset.socket + "?after=" + lastSeq);
    var resync = window.setInterval(function () {
      if (!finished && socket.readyState === WebSocket.OPEN && Date.now() - lastHeard >= QUIET_MS) {
        socket.send(JSON.stringify({ after: lastSeq }));
        lastHeard = Date.now();
      }
    }, QUIET_MS);
    socket.onopen = function () { retries = 0; indicate("live"); };
    socket.onmessage = function (incoming) {
      lastHeard = Date.now();
      var message = JSON.parse(incoming.data);
      if (message.type === "status") {  // the stored status, sent with every re-sync: not an event
        if (message.data.status !== page.dataset.status) setStatus(message.data.status, message.data.reason);
        (message.data.fragments || []).forEach(applyFragment);  // what goes with the status (waiting seats)
        return;
      }
      if (message.seq <= lastSeq) return;
      if (message.seq > lastSeq + 1) {  // never expected from the server; ask again rather than skip
        socket.send(JSON.stringify({ after: lastSeq }));
        return;
      }
      try {
        apply(message);
      } catch (error) {
        // One event the page cannot show must not stop it from following the run.
        console.error("run page: could not apply event " + message.seq + " (" + message.type + ")", error);
      }
      lastSeq = message.seq;
      page.dataset.lastSeq = String(lastSeq);
      // For other scripts (and the latency benchmark): which event the page now shows, and when it happened.
      document.dispatchEvent(new CustomEvent("run:event", { detail: { seq: message.seq, type: message.type, timestamp: message.timestamp } }));
    };
    socket.onclose = function (closed) {
      window.clearInterval(resync);
      if (closed.code === 4403) { indicate("not allowed to follow this run"); return; }
      indicate(finished ? "" : "reconnecting…");
      var delay = Math.min(10000, 500 * Math.pow(2, retries++));
      window.setTimeout(connect, delay);
    };
  }
  setStatus(page.dataset.status, byId("run-reason") ? byId("run-reason").textContent.trim() : "");
  connect();
})();
