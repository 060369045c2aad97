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
  var PLAYING = ["running", "waiting_for_human"];  // a turn is under way
  var initialStatus = page.dataset.status;

  function byId(id) { return document.getElementById(id); }
  function money(value) { return "$" + value.toFixed(4); }

  // ---- fragments -------------------------------------------------------------------------------------
  function parse(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    var node = template.content.firstElementChild;
    if (node) withToken(node);
    return node;
  }

  // Fragments are rendered without a request, so their forms carry no CSRF token: they get the page's.
  function withToken(node) {
    if (!page.dataset.csrf) return;
    node.querySelectorAll("form[method=post]").forEach(function (form) {
      if (form.querySelector("input[name=csrfmiddlewaretoken]")) return;
      var token = document.createElement("input");
      token.type = "hidden";
      token.name = "csrfmiddlewaretoken";
      token.value = page.dataset.csrf;
      form.prepend(token);
    });
  }

  function applyFragment(fragment) {
    var node = parse(fragment.html);
    if (!node) return;
    var existing = node.id ? byId(node.id) : null;
    if (existing) {
      if (fragment.mode !== "ensure") {
        existing.replaceWith(node);
        filterFeed(node.closest(".turn") || node);
      }
      return;
    }
    var target = document.querySelector(fragment.target);
    if (!target) return;
    // A reply goes under its negotiation: after the opening and the replies already there.
    var thread = node.dataset.thread;
    var members = thread && thread !== node.id.replace(/^message-/, "")
      ? target.querySelectorAll('[data-thread="' + CSS.escape(thread) + '"]') : [];
    if (members.length) members[members.length - 1].after(node);
    else target.appendChild(node);
    filterFeed(node.closest(".turn") || node);
  }

  // ---- one actor, one turn: the feed's filter (also drawn by the server from ?actor= and ?turn=) ---------------
  var filterForm = byId("feed-filter");
  function filterFeed(scope) {
    if (!filterForm) return;
    var actor = filterForm.elements.actor.value;
    var turn = filterForm.elements.turn.value;
    var root = scope || document;
    var turns = root.matches && root.matches(".turn") ? [root] : Array.prototype.slice.call(root.querySelectorAll(".turn"));
    turns.forEach(function (section) { section.hidden = Boolean(turn) && section.dataset.turn !== turn; });
    root.querySelectorAll(".communication").forEach(function (message) {
      message.hidden = Boolean(actor) && (" " + message.dataset.participants + " ").indexOf(" " + actor + " ") < 0;
    });
    root.querySelectorAll(".decision").forEach(function (decision) {
      decision.hidden = Boolean(actor) && decision.dataset.actor !== actor;
    });
  }
  if (filterForm) {
    filterForm.addEventListener("change", function () {
      filterFeed(byId("feed"));
      var query = new URLSearchParams(new FormData(filterForm));
      ["actor", "turn"].forEach(function (name) { if (!query.get(name)) query.delete(name); });
      history.replaceState(null, "", location.pathname + (query.toString() ? "?" + query : "") + location.hash);
    });
  }

  // A panel drawn from the run's stored state (controls, seats, family tree, QA summary), sent with every
  // status: it replaces the page's own when it changed, unless someone is typing in it (the next one will).
  var panels = {};
  function applyPanel(panel) {
    var node = parse(panel.html);
    if (!node || !node.id || panels[node.id] === panel.html) return;
    var existing = byId(node.id);
    if (existing) {
      if (existing.contains(document.activeElement) && document.activeElement !== document.body) return;
      existing.querySelectorAll("details[open][id]").forEach(function (open) {
        var same = node.querySelector("#" + CSS.escape(open.id));
        if (same) same.open = true;
      });
      existing.replaceWith(node);
    }
    panels[node.id] = panel.html;
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
      row.dataset.key = name;
      var head = document.createElement("th");
      head.scope = "row";
      head.textContent = label;
      var cell = document.createElement("td");
      cell.className = "number";
      cell.dataset.value = "0";
      row.append(head, cell);
      // In the order the page is drawn in: by key (an actor's short name, a phase).
      var after = Array.prototype.find.call(table.tBodies[0].rows, function (other) {
        return (other.dataset.key || other.id.slice(("cost-" + key + "-").length)) > name;
      });
      table.tBodies[0].insertBefore(row, after || null);
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
    if (status !== initialStatus) {
      // What the page said of the status it was drawn with ("queued to resume", "pausing…") is past.
      document.querySelectorAll(".run-status-notice").forEach(function (notice) { notice.remove(); });
    }
    if (PLAYING.indexOf(status) < 0) {  // no turn under way: the progress says what is done, as a reload does
      var bar = byId("turn-progress");
      var done = bar ? Number(bar.getAttribute("aria-valuenow")) || 0 : 0;
      setProgress(done, "Turn " + done + " of " + maxTurns + " done");
    }
    var ended = FINAL.indexOf(status) >= 0;
    if (ended && !finished && status !== initialStatus) askForTheEnd();
    finished = ended;
  }

  // ---- charts: a chart per metric over turns (with its thresholds), and cost by turn ------------------------
  // window.runCharts = {metrics: {name: Chart}, cost: Chart}: for other scripts and the browser tests.
  var names = readJSON("actor-names") || {};
  var charts = { metrics: {}, cost: null };
  window.runCharts = charts;
  // Okabe–Ito: told apart with the common kinds of colour blindness. Thresholds have their own dashed colours.
  var PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7a6f00", "#000000"];
  var THRESHOLD_COLOURS = { warning: "#9a6700", critical: "#b42318" };
  function readJSON(id) {
    var element = byId(id);
    return element ? JSON.parse(element.textContent) : null;
  }
  function turnLabels() {
    var labels = [];
    for (var t = 1; t <= maxTurns; t++) labels.push("Turn " + t);
    return labels;
  }
  function actorLabel(actor) { return actor ? (names[actor] || actor) : "the world"; }
  function colour(index) { return PALETTE[index % PALETTE.length]; }

  var captions = 0;
  var definitions = {};
  var definitionOrder = [];
  (readJSON("metric-definitions") || []).forEach(function (definition) {
    definitions[definition.name] = definition;
    if (definition.extraction !== "manual") definitionOrder.push(definition.name);
  });

  function thresholdDatasets(definition) {
    var limits = definition && definition.thresholds;
    if (!limits) return [];
    var sign = limits.direction === "below" ? "≤ " : "≥ ";
    return ["warning", "critical"].filter(function (level) { return limits[level] !== null && limits[level] !== undefined; })
      .map(function (level) {
        return {
          label: level + " " + sign + limits[level], threshold: level, data: new Array(maxTurns).fill(limits[level]),
          borderColor: THRESHOLD_COLOURS[level], backgroundColor: THRESHOLD_COLOURS[level], borderDash: [6, 4],
          borderWidth: 1.5, pointRadius: 0, pointHoverRadius: 0, fill: false,
        };
      });
  }

  function metricChart(name) {
    if (charts.metrics[name] || !window.Chart) return charts.metrics[name] || null;
    var holder = byId("metrics-charts");
    if (!holder) return null;
    var definition = definitions[name] || {};
    var figure = document.createElement("figure");
    figure.className = "chart-figure";
    figure.dataset.metric = name;
    var caption = document.createElement("figcaption");
    caption.id = "metric-caption-" + (++captions);
    var title = document.createElement("strong");
    title.textContent = name;
    caption.appendChild(title);
    var about = [definition.description, definition.unit && "unit: " + definition.unit].filter(Boolean).join("; ");
    if (about) caption.appendChild(document.createTextNode(": " + about));
    var box = document.createElement("div");
    box.className = "chart";
    var canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-labelledby", caption.id);
    box.appendChild(canvas);
    var none = document.createElement("p");
    none.className = "muted chart-empty";
    none.textContent = "No value yet.";
    figure.append(caption, none, box);
    // In the scenario's order, whatever order values arrive in.
    var position = definitionOrder.indexOf(name);
    var before = Array.prototype.find.call(holder.children, function (other) {
      var at = definitionOrder.indexOf(other.dataset.metric);
      return position >= 0 && (at < 0 || at > position);
    });
    holder.insertBefore(figure, before || null);
    charts.metrics[name] = new window.Chart(canvas, {
      type: "line",
      data: { labels: turnLabels(), datasets: thresholdDatasets(definition) },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, spanGaps: true,
        scales: { y: { beginAtZero: true, title: { display: !!definition.unit, text: definition.unit || "" } } },
        plugins: { legend: { labels: { boxHeight: 2 } } },
      },
    });
    return charts.metrics[name];
  }

  function addMetric(point) {
    if (typeof point.value !== "number") return;
    var chart = metricChart(point.name);
    if (!chart) return;
    var label = point.actor ? actorLabel(point.actor) : point.name;
    var dataset = chart.data.datasets.find(function (d) { return !d.threshold && d.label === label; });
    if (!dataset) {
      var series = chart.data.datasets.filter(function (d) { return !d.threshold; }).length;
      dataset = { label: label, actor: point.actor || null, data: new Array(maxTurns).fill(null),
                  borderColor: colour(series), backgroundColor: colour(series), pointRadius: 3 };
      chart.data.datasets.splice(series, 0, dataset);  // series first, thresholds after them in the legend
    }
    dataset.data[point.turn - 1] = point.value;
    var none = chart.canvas.closest("figure").querySelector(".chart-empty");
    if (none) none.hidden = true;
    var empty = byId("metrics-empty");
    if (empty) empty.hidden = true;
  }

  function addMetricCell(point) {
    var table = byId("metrics-table");
    if (!table) return;
    var key = point.actor ? point.name + "|" + point.actor : point.name;
    var columns = Array.prototype.map.call(table.tHead.rows[0].cells, function (cell) { return cell.dataset.series; });
    var column = columns.indexOf(key);
    if (column < 0) return;
    var body = table.tBodies[0];
    var row = Array.prototype.find.call(body.rows, function (r) { return Number(r.dataset.turn) === point.turn; });
    if (!row) {
      row = document.createElement("tr");
      row.dataset.turn = point.turn;
      var head = document.createElement("th");
      head.scope = "row";
      head.textContent = point.turn;
      row.appendChild(head);
      for (var i = 1; i < columns.length; i++) {
        var cell = document.createElement("td");
        cell.className = "number";
        row.appendChild(cell);
      }
      var next = Array.prototype.find.call(body.rows, function (r) { return Number(r.dataset.turn) > point.turn; });
      body.insertBefore(row, next || null);
    }
    row.cells[column].textContent = point.value === null || point.value === undefined ? "" : String(point.value);
  }

  function updateMetricCharts() {
    Object.keys(charts.metrics).forEach(function (name) { charts.metrics[name].update(); });
  }

  // Cost by turn: the ledger summed by turn, actor and phase; the chart stacks it by actor or by phase.
  var costLines = readJSON("cost-lines") || [];
  var costView = { stack: "actor", measure: "cost" };

  function costDatasets() {
    var groups = {};
    var order = [];
    costLines.forEach(function (line) {
      var key = line[costView.stack];
      if (!groups[key]) { groups[key] = new Array(maxTurns).fill(0); order.push(key); }
      if (line.turn >= 1 && line.turn <= maxTurns) groups[key][line.turn - 1] += line[costView.measure];
    });
    order.sort();
    return order.map(function (key, index) {
      return { label: costView.stack === "actor" ? (names[key] || key) : key, data: groups[key],
               backgroundColor: colour(index), borderColor: colour(index), stack: "ledger" };
    });
  }

  function drawCost() {
    var canvas = byId("cost-chart");
    if (!canvas || !window.Chart) return;
    var datasets = costDatasets();
    if (!charts.cost) {
      charts.cost = new window.Chart(canvas, {
        type: "bar",
        data: { labels: turnLabels(), datasets: datasets },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
        },
      });
    } else {
      charts.cost.data.datasets = datasets;
    }
    charts.cost.options.scales.y.title = { display: true, text: costView.measure === "cost" ? "USD" : "tokens" };
    charts.cost.update();
    document.querySelectorAll("#cost-chart-caption [data-caption]").forEach(function (span) {
      span.textContent = span.dataset.caption === "stack" ? costView.stack : (costView.measure === "cost" ? "USD" : "tokens");
    });
  }

  function addCostLine(data) {
    var line = costLines.find(function (l) { return l.turn === data.turn && l.actor === data.actor && l.phase === data.phase; });
    if (!line) {
      line = { turn: data.turn, actor: data.actor, phase: data.phase, cost: 0, tokens: 0, calls: 0 };
      costLines.push(line);
    }
    line.cost += data.cost;
    line.tokens += data.tokens;
    line.calls += 1;
    var table = byId("cost-by-turn");
    if (!table) return;
    var row = byId("cost-turn-" + data.turn);
    if (!row) {
      row = document.createElement("tr");
      row.id = "cost-turn-" + data.turn;
      var head = document.createElement("th");
      head.scope = "row";
      head.textContent = data.turn;
      row.appendChild(head);
      ["0", "0"].forEach(function (zero) {
        var cell = document.createElement("td");
        cell.className = "number";
        cell.dataset.value = zero;
        row.appendChild(cell);
      });
      table.tBodies[0].appendChild(row);
    }
    row.cells[1].textContent = addTo(row.cells[1], data.cost).toFixed(4);
    row.cells[2].textContent = addTo(row.cells[2], data.tokens);
  }

  var controls = byId("cost-chart-controls");
  if (controls && window.Chart) {
    controls.hidden = false;
    controls.addEventListener("change", function (changed) {
      var input = changed.target;
      costView[input.name === "cost-stack" ? "stack" : "measure"] = input.value;
      drawCost();
    });
    var checked = controls.querySelector("input[name=cost-measure]:checked");
    if (checked) costView.measure = checked.value;
  }

  definitionOrder.forEach(metricChart);
  (readJSON("metrics-data") || []).forEach(addMetric);
  updateMetricCharts();
  drawCost();

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
      case "cost_incurred": onCost(data); addCostLine(data); drawCost(); break;
      case "metric_recorded": addMetric(data); addMetricCell(data); updateMetricCharts(); break;
      default: if (data.status) setStatus(data.status, data.reason);
    }
  }

  // The run's last save (its QA results, the family's statuses) lands just after its last event: a page that saw
  // the run end asks for the stored status again a moment later, so it ends as a reload would show it.
  var END_SETTLE_MS = 1500;
  function askForTheEnd() {
    window.setTimeout(function () {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ after: lastSeq }));
      else if (page.dataset.poll) fetchEvents();  // not poll(): one already in flight may predate the last save
    }, END_SETTLE_MS);
  }

  function indicate(text) {
    var element = byId("live-indicator");
    if (element) element.textContent = text;
  }

  // One message from the server, over the socket or polled: the stored status, or an event (in seq order).
  // Returns false for an event after a gap (never expected from the server), which the caller asks for again.
  function receive(message) {
    if (message.type === "status") {  // the stored status, sent with every re-sync: not an event
      if (message.data.status !== page.dataset.status) setStatus(message.data.status, message.data.reason);
      (message.data.panels || []).forEach(applyPanel);
      return true;
    }
    if (message.seq <= lastSeq) return true;
    if (message.seq > lastSeq + 1) return false;
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
    return true;
  }

  // Without a socket (the server's channel layer is down, or a proxy does not pass WebSockets) the page asks
  // for the stored events after its last seq every few seconds, and tries the socket again now and then.
  var POLL_MS = 3000;
  var SOCKET_RETRY_MS = 30000;
  var LIVE_UNAVAILABLE = 4503;
  var polling = null;
  var pollInFlight = false;

  // The stored events after the last seq and the stored status; resolves to whether the server answered.
  function fetchEvents() {
    return fetch(page.dataset.poll + "?after=" + lastSeq, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (body) {
        body.events.forEach(receive);
        receive({ type: "status", data: body.status });
        return true;
      })
      .catch(function () { return false; });
  }

  function poll() {
    if (pollInFlight || !page.dataset.poll) return;
    pollInFlight = true;
    fetchEvents().then(function () { pollInFlight = false; });  // a failed poll: the next one asks again
  }

  function startPolling() {
    if (polling !== null) return;
    indicate("live updates unavailable: checking every " + POLL_MS / 1000 + " s");
    poll();
    polling = window.setInterval(function () { if (!finished) poll(); }, POLL_MS);
  }

  function stopPolling() {
    if (polling === null) return;
    window.clearInterval(polling);
    polling = null;
  }

  // A channel layer may drop a relayed event; the next one reveals the gap and the server fills it, but
  // nothing follows a run's last events. So a quiet page asks for anything after its last seq now and then.
  var QUIET_MS = 3000;
  var lastHeard = Date.now();
  var fruitless = 0;  // sockets in a row that closed before a single message while the server answered

  function reconnect() {
    window.setTimeout(connect, Math.min(10000, 500 * Math.pow(2, retries++)));
  }

  function pollInstead() {
    startPolling();
    if (!finished) window.setTimeout(connect, SOCKET_RETRY_MS);
  }

  var socket = null;  // the newest socket

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + page.dataset.socket + "?after=" + lastSeq);
    socket = ws;
    var heard = false;
    var resync = window.setInterval(function () {
      if (!finished && ws.readyState === WebSocket.OPEN && Date.now() - lastHeard >= QUIET_MS) {
        ws.send(JSON.stringify({ after: lastSeq }));
        lastHeard = Date.now();
      }
    }, QUIET_MS);
    ws.onopen = function () { if (polling === null) indicate("live"); };
    ws.onmessage = function (incoming) {
      lastHeard = Date.now();
      if (!heard) {
        heard = true;
        retries = 0;
        fruitless = 0;
        stopPolling();
        indicate("live");
      }
      if (!receive(JSON.parse(incoming.data))) ws.send(JSON.stringify({ after: lastSeq }));
    };
    ws.onclose = function (closed) {
      window.clearInterval(resync);
      if (closed.code === 4403) { indicate("not allowed to follow this run"); return; }
      if (closed.code === LIVE_UNAVAILABLE) { pollInstead(); return; }
      indicate(finished ? "" : "reconnecting…");
      if (heard || !page.dataset.poll) { reconnect(); return; }
      // A socket that closed before any message: either the server is down (a restart: keep trying, the
      // sockets will work again) or it answers but its sockets do not (a proxy without WebSockets: poll).
      // Asking for the stored events tells the two apart, and catches the page up meanwhile.
      fetchEvents().then(function (answered) {
        if (answered && ++fruitless >= 3) pollInstead();
        else reconnect();
      });
    };
  }
  setStatus(page.dataset.status, byId("run-reason") ? byId("run-reason").textContent.trim() : "");
  connect();
})();
