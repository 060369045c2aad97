/* Every page's header: how many seats wait for the signed-in person, and a notice when one starts waiting.
 *
 * The server sends the list of waiting seats over /ws/seats/ when the socket opens and whenever it changes
 * (a run starts waiting, a seat is decided or changes hands). Without JavaScript, or without a socket, the
 * header's "My seats" link still leads to the list. On that page, the list is drawn again when it changes.
 */
(function () {
  "use strict";
  var notice = document.getElementById("seat-notice");
  var count = document.getElementById("my-seats-count");
  if (!notice || !count || !window.WebSocket) return;
  var known = null;  // the seats of the last message: a seat not among them is new
  var retries = 0;

  function key(seat) { return seat.run + "/" + seat.actor + "/" + seat.turn; }

  // The "My seats" page lists the seats as the server drew them: it is drawn again when they change.
  var listPage = document.getElementById("my-seats-page");

  function show(seats) {
    if (listPage) {
      var drawn = listPage.dataset.seatKeys.trim().split(/\s+/).filter(Boolean).sort().join(" ");
      if (seats.map(key).sort().join(" ") !== drawn) window.location.reload();
    }
    count.textContent = seats.length ? "(" + seats.length + ")" : "";
    count.hidden = !seats.length;
    count.setAttribute("aria-label", seats.length + (seats.length === 1 ? " seat waits" : " seats wait") + " for you");
    var fresh = known === null ? [] : seats.filter(function (seat) { return known.indexOf(key(seat)) < 0; });
    known = seats.map(key);
    if (!fresh.length) return;
    notice.textContent = "";
    fresh.forEach(function (seat) {
      var line = document.createElement("p");
      line.append(seat.name + " waits for your decision in " + seat.title + ", turn " + seat.turn + ". ");
      var link = document.createElement("a");
      link.href = seat.page;
      link.className = "button primary";
      link.textContent = "Decide for " + seat.name;
      line.append(link);
      notice.append(line);
    });
    notice.hidden = false;
    document.dispatchEvent(new CustomEvent("seats:waiting", { detail: { seats: fresh } }));
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + notice.dataset.socket);
    socket.onmessage = function (incoming) {
      retries = 0;
      var message = JSON.parse(incoming.data);
      if (message.type === "seats") show(message.seats);
    };
    socket.onclose = function (closed) {
      if (closed.code === 4403) return;
      window.setTimeout(connect, Math.min(30000, 1000 * Math.pow(2, retries++)));
    };
  }
  connect();
})();
