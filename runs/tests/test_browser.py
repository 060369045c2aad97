"""The run page in a real browser (Debian's Chromium driven by Playwright), against a live daphne server and a
real Huey worker process, with a loopback model server whose answers carry hostile HTML (`runs.tests.browser`).
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.models import User

from runs.branching import run_branch
from runs.models import Communication, Decision, MetricRecord, ModelCall, Run
from runs.tests.browser import ARTIFACTS, BrowserTestCase, panels_differing, sync_api
from scenarios.services import scenario_import_library

TURNS = 4
# What window.runCharts (static/js/run-live.js) holds: per metric and series the turns with a point, its values,
# the thresholds drawn, the turns with a cost bar, and the completed turns the progress bar shows.
CHARTS = """() => {
  const charts = window.runCharts, metrics = {}, values = {}, thresholds = {};
  for (const [name, chart] of Object.entries(charts.metrics)) {
    metrics[name] = {};
    thresholds[name] = [];
    for (const d of chart.data.datasets) {
      if (d.threshold) { thresholds[name].push([d.threshold, d.data[0]]); continue; }
      metrics[name][d.actor || "world"] = d.data.flatMap((v, i) => v === null ? [] : [i + 1]);
      if (!d.actor) values[name] = d.data.slice();
    }
  }
  const costTurns = charts.cost.data.labels.flatMap((_, i) => charts.cost.data.datasets.some(d => d.data[i] > 0) ? [i + 1] : []);
  const done = Number(document.getElementById("turn-progress").getAttribute("aria-valuenow"));
  return {done, metrics, values, thresholds, cost_turns: costTurns};
}"""
# The elements that reach past the screen's right edge (innermost first): what makes a page scroll sideways.
TOO_WIDE = """() => {
  const edge = document.documentElement.clientWidth + 1;
  const clipped = (e) => { for (let a = e.parentElement; a; a = a.parentElement) {
    if (["auto", "scroll", "hidden"].includes(getComputedStyle(a).overflowX)) return true; } return false; };
  return Array.from(document.querySelectorAll("body *"))
    .filter(e => e.getBoundingClientRect().right > edge && !clipped(e))
    .slice(0, 8).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + String(e.className).split(" ")[0] : ""));
}"""
CHARTS_WHEN_DONE = f"(done) => {{ const now = ({CHARTS})(); return now.done === done ? now : null; }}"




@pytest.mark.both_profiles
class RunPageInABrowser(BrowserTestCase):
    def setUp(self):
        User.objects.create_user("researcher", password="a long test password")
        scenario_import_library()
        self.console: list[str] = []  # the page's own errors, reported when a wait fails
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.open_page(self.context)

    def tearDown(self):
        self.context.close()

    def sign_in(self):
        self.sign_in_as(self.page, "researcher", "a long test password")

    def start_run(self, turns: int = TURNS) -> Run:
        self.page.goto(f"{self.live_server_url}/scenarios/ai-summit/")
        assert "Estimated cost" in self.page.content(), "the estimate is shown before starting"
        self.page.fill("input[name=turns]", str(turns))
        self.page.click("button[name=start]")
        self.page.wait_for_url(lambda url: "/runs/" in url)
        return Run.objects.get()

    def status(self) -> str:
        return self.page.locator("#run-status").text_content().strip()

    def wait_for_status(self, status: str) -> None:
        try:
            self.page.wait_for_selector(f"#run-status.status-{status}")
        except sync_api.TimeoutError:
            self.page.screenshot(path=ARTIFACTS / f"timeout-waiting-for-{status}.png", full_page=True)
            run = Run.objects.get()
            indicator = self.page.locator("#live-indicator").text_content()
            last_seq = self.page.locator("#run-page").get_attribute("data-last-seq")
            raise AssertionError(f"the page shows {self.status()!r} ({indicator!r}, last seq {last_seq}), the run is "
                                 f"{run.status} at turn {run.turn} ({run.halt_reason or run.error or 'no reason'}, "
                                 f"{run.events.count()} events stored), waiting for {status!r}; console: {self.console}") from None

    def test_follow_pause_resume_and_finish_a_run_live(self):
        self.sign_in()
        run = self.start_run()
        assert self.page.locator("#turn-1-decisions .decision").count() == 0, "nothing decided when the page loaded"

        # Turn 1's decisions arrive over the socket: no reload.
        self.page.wait_for_selector("#turn-1-decisions .decision")
        self.page.screenshot(path=ARTIFACTS / "run-page-turn-1.png", full_page=True)

        self.page.click("form[action$='/pause/'] button")
        self.wait_for_status("paused")
        paused_at = Run.objects.get(pk=run.pk).turn
        assert paused_at < TURNS
        self.assert_live_equals_reload()

        self.page.click("form[action$='/resume/'] button")
        self.page.wait_for_selector("#run-status.status-running, #run-status.status-queued")
        self.wait_for_status("completed")
        self.page.screenshot(path=ARTIFACTS / "run-page-completed.png", full_page=True)

        self.assert_page_shows_the_whole_run(run)
        assert self.page.locator("#progress-label").text_content().strip() == f"Turn {TURNS} of {TURNS} done"
        self.assert_live_equals_reload()
        self.page.set_viewport_size({"width": 375, "height": 800})  # a phone: one column, nothing wider than it
        self.page.wait_for_function("document.documentElement.clientWidth <= 375")
        self.page.screenshot(path=ARTIFACTS / "run-page-completed-375px.png", full_page=True)
        wide = self.page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 375, f"the run page is {wide} px wide on a 375 px screen: {self.page.evaluate(TOO_WIDE)}"
        self.page.set_viewport_size({"width": 1280, "height": 900})

        # "show the call" on a decision that came live opens what its model was sent and answered, as stored.
        decision = self.page.locator("#turn-1-decisions .decision").first
        actor = decision.get_attribute("id").split("-", 2)[2]
        decision.locator("a.call-link").click()
        self.page.wait_for_url(lambda url: "/calls/" in url)
        call = ModelCall.objects.get(run=run, turn=1, task="decision", actor=actor, outcome="used")
        shown = [text.strip() for text in self.page.locator(f"#call-{call.seq} pre.call-text").all_inner_texts()]
        assert shown[:-2] == [m["content"].strip() for m in call.messages], "every message, as sent"
        assert shown[-2] == call.answer.strip() and '"action"' in shown[-1], "the answer, then what was read from it"
        self.page.screenshot(path=ARTIFACTS / "run-calls-of-a-decision.png", full_page=True)

        # Its after-action report, saved as a file, opens with nothing else asked for (as offline).
        saved = ARTIFACTS / "after-action-report.html"
        saved.write_text(self.page.request.get(f"{self.live_server_url}/runs/{run.pk}/report.html").text())
        report, asked = self.context.new_page(), []
        report.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                     else (asked.append(route.request.url), route.abort()))
        report.goto(saved.as_uri())
        assert report.locator("#turn-1 .decision").count() == len(run.actors) and not asked, asked
        report.screenshot(path=ARTIFACTS / "after-action-report.png", full_page=True)
        report.close()

        # A branch of it, followed live from its start to its end, reads as a fresh load of it too.
        with ThreadPoolExecutor(1) as thread:  # out of Playwright's event loop: branching stores through async code
            branch = thread.submit(lambda: run_branch(run=Run.objects.get(pk=run.pk), at_turn=TURNS - 1, owner=run.owner)).result()
        self.page.goto(f"{self.live_server_url}/runs/{branch.pk}/")
        self.page.wait_for_selector("#live-indicator:text('live')")
        self.page.click("form[action$='/resume/'] button[type=submit]")  # "Play more turns" is not offered: it is paused
        self.wait_for_status("completed")
        self.assert_live_equals_reload()

    def test_a_reload_mid_run_loses_nothing_and_model_html_stays_inert(self):
        self.sign_in()
        run = self.start_run()
        self.page.wait_for_selector("#turn-2-decisions .decision")
        self.page.reload()  # mid-run: stored state first, then every event after it
        self.wait_for_status("completed")
        self.assert_page_shows_the_whole_run(run)

        assert self.page.evaluate("window.__pwned") is None, "no script from a model answer ran"
        assert self.page.locator("#feed script, #feed img").count() == 0
        assert "<script>window.__pwned = 1</script>" in self.page.locator("#feed").inner_text(), "shown as text"
        self.page.screenshot(path=ARTIFACTS / "run-page-after-reload.png", full_page=True)

    def test_a_human_seat_waits_for_its_decision_on_the_seat_page(self):
        self.sign_in()
        self.page.goto(f"{self.live_server_url}/scenarios/ai-summit/")
        self.page.fill("input[name=turns]", "2")
        self.page.fill("input[name=human_seats]", "norvale")
        self.page.click("button[name=start]")
        self.page.wait_for_url(lambda url: "/runs/" in url)
        run = Run.objects.get()

        for turn in (1, 2):
            self.wait_for_status("waiting_for_human")  # live: the models decided, the run waits, stored
            link = self.page.locator("#waiting-seats a")
            try:
                link.wait_for(timeout=20_000)  # put there by the waiting event, or by the periodic status
            except sync_api.TimeoutError:
                self.page.screenshot(path=ARTIFACTS / f"no-seat-link-turn-{turn}.png", full_page=True)
                last_seq = self.page.locator("#run-page").get_attribute("data-last-seq")
                stored = list(run.events.order_by("seq").values_list("seq", "type"))
                raise AssertionError(f"no link to the seat at turn {turn}: page at seq {last_seq}, "
                                     f"#waiting-seats {self.page.locator('#waiting-seats').evaluate('e => e.outerHTML')!r}, "
                                     f"stored events {stored[-12:]}, console {self.console}") from None
            if turn == 1:
                self.assert_live_equals_reload()  # a run waiting for a person
            link.click()
            try:
                self.page.wait_for_selector("#seat-form", timeout=15_000)
            except sync_api.TimeoutError:
                raise AssertionError(f"no seat form at {self.page.url}: {self.page.locator('main, body').first.inner_text()[:1500]}") from None
            assert f"Turn {turn} of 2" in self.page.locator("#seat-situation").inner_text(), "the seat shows the model's prompt"
            goals = self.page.input_value("#long_term_goals")
            if turn == 1:
                assert goals.strip(), "the goals start as the actor's brief has them"
                self.decide_with_the_keyboard_alone()
            else:
                assert goals == "A credible safety network\nA declaration everyone signs", "as the last decision left them"
                self.page.set_viewport_size({"width": 375, "height": 800})
                assert self.page.input_value("#short_term_priorities") == "Close chapter 3"
                self.page.fill("#action", f"The chair tables compromise text number {turn}.")
                self.page.fill("#reasoning", "The chair must bridge Meridian and the Union.")
                self.page.screenshot(path=ARTIFACTS / f"seat-page-turn-{turn}-375px.png", full_page=True)
                wide = self.page.evaluate("document.documentElement.scrollWidth")
                assert wide <= 375, f"the seat page is {wide} px wide on a 375 px screen"
                self.page.set_viewport_size({"width": 1280, "height": 900})
                self.page.click("#seat-form button[type=submit]")
            self.page.wait_for_url(lambda url: url.rstrip("/").endswith(f"/runs/{run.pk}"))
            said = self.page.locator("ul.messages").all_inner_texts()
            assert any("recorded" in text for text in said), f"the decision of turn {turn} was not taken: {said}"

        self.wait_for_status("completed")
        chair = self.page.locator("#decision-1-norvale")
        assert chair.locator(".human-badge").count() == 1, "the person's decision is shown as human"
        assert "compromise text number 1" in chair.inner_text()
        assert [d.provider for d in Decision.objects.filter(run=run, actor="norvale").order_by("turn")] == ["human", "human"]
        self.page.screenshot(path=ARTIFACTS / "run-page-human-seat.png", full_page=True)

    def test_the_metric_charts_show_a_point_per_completed_turn_and_grow_live(self):
        """window.runCharts: a Chart.js chart per metric (series and dashed thresholds) and the cost chart. Read at
        the moment the page shows turn 1 done, then turn 2, without a reload: a point per completed turn, no more."""
        self.sign_in()
        run = self.start_run(turns=3)
        url = self.page.url
        snapshots = []
        for done in (1, 2):
            try:
                # One evaluation in the page: what the charts hold when it first shows `done` turns completed.
                handle = self.page.wait_for_function(CHARTS_WHEN_DONE, arg=done, polling=25)
            except sync_api.TimeoutError:
                raise AssertionError(f"the page never showed turn {done} done: {self.page.evaluate(CHARTS)}; console {self.console}") from None
            snapshots.append(handle.json_value())
            assert Run.objects.get(pk=run.pk).status == "running", f"turn {done} was charted while the run went on"
        assert self.page.url == url, "no reload: the charts grew from the run's events"

        for done, charts in enumerate(snapshots, start=1):
            assert set(charts["metrics"]) >= {"cooperation_signals", "tension_signals", "declaration_strength"}
            for name in ("cooperation_signals", "tension_signals"):  # keyword counts: a value every turn
                assert charts["metrics"][name]["world"] == list(range(1, done + 1)), (done, charts)
            for name, series in charts["metrics"].items():
                assert all(turn <= done for turns in series.values() for turn in turns), f"{name} has a point past turn {done}"
            assert charts["thresholds"]["tension_signals"] == [["warning", 6], ["critical", 10]]
            assert set(charts["cost_turns"]) >= set(range(1, done + 1)), "every completed turn has its cost bar"

        self.wait_for_status("completed")
        final = self.page.evaluate(CHARTS)
        stored = {(m.name, m.turn): m.value for m in MetricRecord.objects.filter(run=run, actor="")}
        for name, values in final["values"].items():
            assert values == [stored.get((name, turn)) for turn in (1, 2, 3)], f"{name}: the chart shows the stored values"
        self.page.screenshot(path=ARTIFACTS / "run-page-charts.png", full_page=True)

    def decide_with_the_keyboard_alone(self) -> None:
        """From the top of the seat page, with Tab, typing and Enter only: every reply left empty (unanswered),
        goals (filled in from the brief) replaced, then priorities, reasoning and action, then submit."""
        typed = {"long_term_goals": "A credible safety network\nA declaration everyone signs",
                 "short_term_priorities": "Close chapter 3",
                 "reasoning": "The chair must bridge Meridian and the Union.",
                 "action": "The chair tables compromise text number 1."}
        self.page.screenshot(path=ARTIFACTS / "seat-page-turn-1.png", full_page=True)
        self.page.locator("body").focus()
        for _ in range(200):
            self.page.keyboard.press("Tab")
            focused = self.page.evaluate("document.activeElement.id || document.activeElement.type || ''")
            if focused in typed:
                self.page.keyboard.press("Control+A")
                self.page.keyboard.type(typed.pop(focused))
            elif focused == "submit" and not typed:
                self.page.keyboard.press("Enter")
                return
        raise AssertionError(f"the keyboard never reached {sorted(typed) or 'the submit button'}")

    def assert_live_equals_reload(self) -> None:
        """Every part of the page followed live reads as on a fresh load of it (once the run's last save is in)."""
        fresh = self.open_page(self.page.context)  # signed in as the same person
        try:
            differing = {}
            for _ in range(10):  # the page asks for the stored state once more, 1.5 s after the run ended
                fresh.goto(self.page.url)
                differing = panels_differing(self.page, fresh)
                if not differing:
                    return
                self.page.wait_for_timeout(500)
            self.page.screenshot(path=ARTIFACTS / "live-differs-from-reload.png", full_page=True)
            raise AssertionError(f"followed live, the page differs from a fresh load: {differing}")
        finally:
            fresh.close()

    def assert_page_shows_the_whole_run(self, run: Run) -> None:
        """Every decision and message of the run, each exactly once, and the final world."""
        decisions = self.page.locator("#feed .decision")
        ids = [decisions.nth(i).get_attribute("id") for i in range(decisions.count())]
        expected = {f"decision-{d.turn}-{d.actor}" for d in Decision.objects.filter(run=run)}
        assert len(expected) == TURNS * len(run.actors)
        assert sorted(ids) == sorted(expected), "each decision once, none missing"
        messages = self.page.locator("#feed .communication")
        assert messages.count() == Communication.objects.filter(run=run).count()
        assert self.page.locator(f"#world-{TURNS}").count() == 1
