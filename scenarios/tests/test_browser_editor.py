"""The scenario editor in a real browser (Debian's Chromium through Playwright, a live daphne server and a Huey
worker, `runs.tests.browser`): a scenario made from scratch, checked as it is typed, switched to YAML and back,
previewed, tried live, edited again and compared with its first version; and the same editor without JavaScript.
"""

from django.contrib.auth.models import Permission, User

from runs.models import Run
from runs.tests.browser import ARTIFACTS, BrowserTestCase
from scenarios.models import Scenario

# Every named field of the editor's form with its value (ticked or not for a checkbox), in page order.
FORM_VALUES = """() => Array.from(document.querySelectorAll('#scenario-editor [name]'))
  .filter(e => !['base', 'csrfmiddlewaretoken', 'step', 'change'].includes(e.name) && e.type !== 'hidden')
  .map(e => [e.name, e.type === 'checkbox' ? e.checked : e.value])"""


def field(page, name: str):
    return page.locator(f'[data-field="{name}"]')


class EditorInABrowser(BrowserTestCase):
    def setUp(self):
        user = User.objects.create_user("author", password="a long test password")
        user.user_permissions.add(*Permission.objects.filter(codename__in=["add_scenario", "change_scenario"]))
        self.console: list[str] = []

    def open_signed_in(self, **context_options):
        context = self.browser.new_context(viewport={"width": 1280, "height": 900}, **context_options)
        self.addCleanup(context.close)
        page = self.open_page(context)
        self.sign_in_as(page, "author", "a long test password")
        return page

    def submit(self, page, button: str) -> None:
        with page.expect_navigation():
            page.get_by_role("button", name=button, exact=True).click()

    def test_make_a_scenario_check_it_as_typed_preview_try_and_compare_versions(self):
        page = self.open_signed_in()
        page.goto(f"{self.live_server_url}/scenarios/")
        page.get_by_role("link", name="New scenario").click()
        page.wait_for_url(lambda url: url.endswith("/scenarios/new/"))

        page.get_by_label("Name", exact=True).first.fill("Harbour Dispute")
        page.get_by_label("The world at the start").fill("## The bay\n\nThe harbour is silted up; the fee is 40.")
        page.get_by_label("Length").fill("2")
        actor = 'actors/actor-1.yaml::'
        page.locator(f'[name="{actor}name"]').fill("Fishers' Guild")
        page.locator(f'[name="{actor}short_name"]').fill("fishers")
        page.locator(f'[name="{actor}goals"]').fill("Keep the harbour open\nLower the dredging fee")
        self.submit(page, "Add an actor")
        assert page.evaluate("window.scrollY") > 0, "the page opens where the new actor is, not at its top"
        other = 'actors/actor-2.yaml::'
        # The first actor's file now follows its short name; what was typed is all there.
        assert page.locator('[name="actors/fishers.yaml::goals"]').input_value() == \
            "Keep the harbour open\nLower the dredging fee"
        assert page.get_by_label("Length").input_value() == "2"
        page.locator(f'[name="{other}name"]').fill("Port Authority")
        page.locator(f'[name="{other}short_name"]').fill("port")
        page.locator(f'[name="{other}goals"]').fill("Dredge the harbour\nRaise the fee to pay for it")

        # Checked as it is typed, before any save: a mistyped model at its field with the closest known name,
        # an impossible length at its own.
        page.locator(f'[name="{other}llm_model"]').fill("openai/gpt-4o-mnii")
        field(page, f"{other}llm_model").get_by_text("Did you mean 'openai/gpt-4o-mini'?").wait_for()
        page.get_by_label("Length").fill("0")
        field(page, "scenario.yaml::turns").get_by_text("at least 1").wait_for()
        assert "1 problem to correct" in page.locator("#editor-status").text_content()
        page.screenshot(path=ARTIFACTS / "editor-typo-flagged.png", full_page=True)
        page.get_by_label("Length").fill("2")
        page.locator(f'[name="{other}llm_model"]').fill("openai/gpt-4o-mini")
        page.wait_for_function("document.getElementById('editor-status').textContent.trim() === 'No problems.'")
        assert not Scenario.objects.exists(), "nothing is stored while checking"

        # Turn 1 as each model reads it, beside the editor, with the estimate.
        self.submit(page, "Preview turn 1")
        preview = page.locator("#editor-preview")
        for who in ("Fishers' Guild", "Port Authority", "the world model"):
            assert preview.get_by_text(who).count() >= 1, who
        assert "tokens" in preview.text_content() and "Estimated cost of a run" in page.locator("#editor-estimate").text_content()
        assert page.locator('[name="actors/port.yaml::name"]').count() == 1, "a new actor's file follows its short name"

        # To YAML and back: every field as it was.
        before = page.evaluate(FORM_VALUES)
        self.submit(page, "YAML")
        yaml_text = page.locator('textarea[name="file:actors/fishers.yaml"]').input_value()
        assert "- Keep the harbour open\n" in yaml_text and "- Lower the dredging fee\n" in yaml_text
        self.submit(page, "Form")
        assert page.evaluate(FORM_VALUES) == before

        # Try it: saved, then one offline turn, watched on its live page until it completes.
        self.submit(page, "Save and try it: one turn, offline")
        page.wait_for_selector("#run-status.status-completed")
        run = Run.objects.get()
        scenario = Scenario.objects.get()
        assert run.max_turns == 1 and run.offline and run.scenario_version == 1 and scenario.slug == "harbour-dispute"
        assert [a.goals for a in scenario.actors.order_by("position")] == [
            ["Keep the harbour open", "Lower the dredging fee"], ["Dredge the harbour", "Raise the fee to pay for it"]]

        # Edited again: the versions page shows what changed.
        page.goto(f"{self.live_server_url}/scenarios/harbour-dispute/edit/")
        page.locator('[name="actors/port.yaml::goals"]').fill("Dredge the harbour\nShare the cost with the town")
        self.submit(page, "Save as a new version")
        page.wait_for_url(lambda url: url.endswith("/scenarios/harbour-dispute/versions/"))
        diff = page.locator("main").text_content()
        assert "-  - Raise the fee to pay for it" in diff and "+  - Share the cost with the town" in diff
        page.screenshot(path=ARTIFACTS / "editor-version-diff.png", full_page=True)
        assert [line for line in self.console if line.startswith("pageerror")] == [], self.console

        # On a phone, as staff (the longest menu): nothing wider than the screen.
        User.objects.filter(username="author").update(is_staff=True)
        page.set_viewport_size({"width": 375, "height": 800})
        page.goto(f"{self.live_server_url}/scenarios/harbour-dispute/edit/")
        page.wait_for_function("document.documentElement.clientWidth <= 375")
        wide = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=ARTIFACTS / "editor-375px.png")
        assert wide <= 375, f"the editor is {wide} px wide on a 375 px screen"

    def test_the_editor_works_without_javascript(self):
        page = self.open_signed_in(java_script_enabled=False)
        page.goto(f"{self.live_server_url}/scenarios/new/")
        page.locator('[name="scenario.yaml::name"]').fill("Quiet Harbour")
        page.locator('[name="scenario.yaml::initial_world_state"]').fill("Calm water.")
        page.locator('[name="actors/actor-1.yaml::name"]').fill("Fishers")
        page.locator('[name="actors/actor-1.yaml::goals"]').fill("Fish\nSell")
        page.locator('[name="scenario.yaml::turns"]').fill("zero")
        self.submit(page, "Create the scenario")
        assert "Not saved: 1 problem" in page.locator("#editor-status").text_content()
        assert "expected a whole number" in field(page, "scenario.yaml::turns").text_content()
        page.locator('[name="scenario.yaml::turns"]').fill("1")
        self.submit(page, "Add an actor")
        page.locator('[name="actors/actor-2.yaml::name"]').fill("Port")
        page.locator('[name="actors/actor-2.yaml::short_name"]').fill("port")
        self.submit(page, "Preview turn 1")
        assert "Port, deciding" in page.locator("#editor-preview").text_content()
        self.submit(page, "YAML")
        assert "- Fish\n- Sell" in page.locator('textarea[name="file:actors/actor-1.yaml"]').input_value().replace("  ", "")
        self.submit(page, "Form")
        assert page.locator('[name="actors/actor-1.yaml::goals"]').input_value() == "Fish\nSell"
        self.submit(page, "Create the scenario")
        page.wait_for_url(lambda url: url.endswith("/scenarios/quiet-harbour/"))
        stored = Scenario.objects.get()
        assert [(a.short_name, a.goals) for a in stored.actors.order_by("position")] == [
            ("actor-1", ["Fish", "Sell"]), ("port", [])]

