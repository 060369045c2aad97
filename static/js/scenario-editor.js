/* Scenario editor: checks the scenario as it is typed. A pause in typing sends the form (nothing is saved) to
 * the check address, which answers each problem and warning with the field, part or file it belongs to, and the
 * estimate; they replace the ones shown. Without JavaScript the same checks come with every button.
 */
(function () {
  "use strict";
  var form = document.getElementById("scenario-editor");
  if (!form || !window.fetch || !window.FormData) return;
  var url = form.dataset.checkUrl;
  var status = document.getElementById("editor-status");
  var estimate = document.getElementById("editor-estimate");
  var unplaced = document.getElementById("editor-unplaced");
  var timer = null;
  var asked = 0;

  function find(attribute, value) {
    if (!value) return null;
    var found = null;
    form.querySelectorAll("[" + attribute + "]").forEach(function (node) {
      if (!found && node.getAttribute(attribute) === value) found = node;
    });
    return found;
  }

  function note(level, text) {
    var p = document.createElement("p");
    p.className = "problem-note " + level;
    p.textContent = text;
    return p;
  }

  function show(list, level) {
    list.forEach(function (problem) {
      var place = find("data-field", problem.field) || find("data-item", problem.item) ||
        find("data-section", problem.section);
      var text = problem.text;
      if (!place && form.dataset.mode === "yaml") place = find("data-file", problem.file);
      if (place && form.dataset.mode === "yaml" && problem.line) text = "line " + problem.line + ": " + text;
      if (!place) {
        place = unplaced;
        if (problem.file) text = problem.file + (problem.line ? ":" + problem.line : "") + ": " + text;
      }
      place.appendChild(note(level, text));
      if (level === "problem" && place.dataset.field !== undefined) {
        place.classList.add("has-error");
        place.querySelectorAll("input, textarea, select").forEach(function (input) {
          if (input.type !== "hidden") input.setAttribute("aria-invalid", "true");
        });
      }
    });
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  function render(answer) {
    form.querySelectorAll(".problem-note").forEach(function (node) { node.remove(); });
    form.querySelectorAll(".has-error").forEach(function (node) { node.classList.remove("has-error"); });
    form.querySelectorAll("[aria-invalid]").forEach(function (node) { node.removeAttribute("aria-invalid"); });
    show(answer.problems, "problem");
    show(answer.warnings, "warning");
    var problems = answer.problems.length;
    var warnings = answer.warnings.length;
    status.textContent = problems
      ? plural(problems, "problem") + " to correct" + (warnings ? ", " + plural(warnings, "warning") : "") + "."
      : "No problems" + (warnings ? "; " + plural(warnings, "warning") : "") + ".";
    status.className = problems ? "status-bad" : "status-good";
    if (answer.estimate) {
      estimate.innerHTML = "";
      var line = document.createElement("p");
      var strong = document.createElement("strong");
      strong.textContent = "Estimated cost of a run:";
      line.appendChild(strong);
      line.appendChild(document.createTextNode(
        " $" + answer.estimate.low.toFixed(4) + " to $" + answer.estimate.high.toFixed(4) + " at list prices, " +
        answer.estimate.calls + " model calls at most over " + plural(answer.estimate.turns, "turn") + "."));
      estimate.appendChild(line);
    } else {
      estimate.innerHTML = '<p class="muted">The estimate appears once the scenario has no problems.</p>';
    }
  }

  function check() {
    var data = new FormData(form);
    data.set("step", "check");
    data.delete("change");
    var mine = ++asked;
    status.textContent = "Checking…";
    fetch(url, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (answer) { if (mine === asked) render(answer); })
      .catch(function () { if (mine === asked) status.textContent = "Could not check just now; saving checks too."; });
  }

  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 400);
  }
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
})();
