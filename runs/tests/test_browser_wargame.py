"""A wargame in the browser: a facilitator, two players and an observer, each in a browser context of their own.

The facilitator starts ai-summit with Norvale assigned to one player and Meridian to the other; each player is
notified (one on their "My seats" page, which lists the seat as it starts waiting, the other elsewhere on the
site by their page's header), decides on their own seat page (both at once), and the run goes on to the end
while the observer follows it live. Neither player ever meets, in their page, their socket or their API
answers, the other player's private facts and reasoning, or a bilateral message they were not part of.
"""

import io
import re
import zipfile

import pytest
from django.contrib.auth.models import User

from runs.models import Communication, Decision, Run, RunStatus
from runs.tests.browser import ARTIFACTS, BrowserTestCase, sync_api
from runs.tests.factories import summit_config
from scenarios.services import scenario_import_library

PASSWORD = "a long test password"
REASONING = {"norvale": "Norvale keeps the chair neutral until Friday", "meridian": "Meridian quietly blocks the annex"}


def _shows(text: str, message_id: str) -> bool:
    """Does `text` name the message (its id, whole: not the start of a longer one)?"""
    return re.search(re.escape(message_id) + r"(?![\w-])", text) is not None


def _unzipped(content: bytes) -> str:
    archive = zipfile.ZipFile(io.BytesIO(content))
    return "\n".join(archive.read(name).decode() for name in archive.namelist())


@pytest.mark.both_profiles
class WargameInABrowser(BrowserTestCase):
    def setUp(self):
        scenario_import_library()
        for name in ("facilitator", "alice", "bob", "olga"):
            User.objects.create_user(name, password=PASSWORD)
        self.console: list[str] = []
        self.contexts = {name: self.browser.new_context(viewport={"width": 1280, "height": 900}) for name in ("facilitator", "alice", "bob", "olga")}
        self.pages = {name: self.open_page(context) for name, context in self.contexts.items()}
        self.frames = {"alice": [], "bob": []}  # what each player's sockets received
        for name, frames in self.frames.items():
            self.pages[name].on("websocket", lambda socket, frames=frames: socket.on(
                "framereceived", lambda payload, frames=frames: frames.append(payload if isinstance(payload, str) else payload.decode())))
        for name, page in self.pages.items():
            self.sign_in_as(page, name, PASSWORD)

    def tearDown(self):
        for context in self.contexts.values():
            context.close()

    def test_a_facilitator_two_players_and_an_observer_play_ai_summit(self):
        url = self.live_server_url
        alice, bob, olga, facilitator = (self.pages[name] for name in ("alice", "bob", "olga", "facilitator"))
        for page in (alice, bob):
            page.goto(f"{url}/runs/seats/")
            assert "No seat is waiting for you" in page.content()
        bob.goto(f"{url}/runs/")  # elsewhere on the site: the header tells him; alice's list redraws itself

        facilitator.goto(f"{url}/scenarios/ai-summit/")
        facilitator.fill("input[name=turns]", "1")
        # Offline: its talks are the same every time, and they hold a bilateral between two actors nobody plays.
        facilitator.select_option("select[name=provider]", "offline")
        facilitator.fill("input[name=player_norvale]", "alice")
        facilitator.fill("input[name=player_meridian]", "bob")
        facilitator.fill("input[name=observers]", "olga")
        facilitator.select_option("select[name=observer_view]", "public")
        facilitator.click("button[name=start]")
        facilitator.wait_for_url(lambda u: "/runs/" in u)
        run = Run.objects.get()
        olga.goto(f"{url}/runs/{run.pk}/")  # the observer follows the run live from its start

        try:
            alice.wait_for_selector(f"#my-seat-{run.pk}-norvale")
        except sync_api.TimeoutError:
            raise AssertionError(f"alice's My seats page never listed her seat: run {Run.objects.get().status}, console {self.console}") from None
        assert alice.locator("#my-seats tbody tr").count() == 1, "only her own seat"
        alice.wait_for_function("document.getElementById('my-seats-count').textContent === '(1)'")  # once the socket says
        alice.click(f"#my-seat-{run.pk}-norvale a.button")
        alice.wait_for_selector("#seat-form")
        seat_pages = {"norvale": alice}
        for page, actor, name in ((bob, "meridian", "Meridian Federation"),):
            notice = page.locator("#seat-notice a")
            try:
                notice.wait_for()
            except sync_api.TimeoutError:
                raise AssertionError(f"{actor}'s player was not notified: run {Run.objects.get().status}, console {self.console}") from None
            said = page.locator("#seat-notice").inner_text()
            assert name in said and "waits for your decision" in said, said
            assert page.locator("#my-seats-count").inner_text() == "(1)"
            page.screenshot(path=ARTIFACTS / f"wargame-{actor}-notified.png")
            notice.click()
            page.wait_for_selector("#seat-form")
            seat_pages[actor] = page

        facilitator.reload()
        seats = {actor: facilitator.locator(f"#seat-{actor}").inner_text().lower() for actor in ("norvale", "meridian")}
        assert "alice" in seats["norvale"] and "deciding" in seats["norvale"] and "bob" in seats["meridian"], seats
        facilitator.screenshot(path=ARTIFACTS / "wargame-facilitator-seats.png", full_page=True)

        for actor, page in seat_pages.items():
            for reply in page.locator("textarea[name^=reply-]").all():
                reply.fill("We can work with that.")
            page.fill("#long_term_goals", "A declaration we can sign")
            page.fill("#short_term_priorities", "Hold our line this turn")
            page.fill("#reasoning", REASONING[actor])
            page.fill("#action", f"{actor} tables its own text")
        # Both at once: neither waits for the other's answer to be taken.
        for page in seat_pages.values():
            page.click("#seat-form button[type=submit]", no_wait_after=True)
        for page in seat_pages.values():
            page.wait_for_url(lambda u: u.rstrip("/").endswith(f"/runs/{run.pk}"))
            assert "recorded" in " ".join(page.locator("ul.messages").all_inner_texts())

        try:
            olga.wait_for_selector("#run-status.status-completed")
        except sync_api.TimeoutError:
            raise AssertionError(f"the observer's page shows {olga.locator('#run-status').inner_text()!r}, the run is "
                                 f"{Run.objects.get().status}; console {self.console}") from None
        assert Run.objects.get().status == RunStatus.COMPLETED
        assert olga.locator("#turn-1-decisions .decision").count() == len(run.actors), "followed live, no reload"
        olga.screenshot(path=ARTIFACTS / "wargame-observer.png", full_page=True)
        assert {d.actor: d.reasoning for d in Decision.objects.filter(run=run, provider="human")} == REASONING

        self.assert_each_player_sees_their_own_view_only(run)

    def assert_each_player_sees_their_own_view_only(self, run: Run) -> None:
        url = self.live_server_url
        private = {a.short_name: max(re.findall(r"[A-Za-z0-9 ]+", a.private_information[0]), key=len).strip()
                   for a in summit_config().actors}
        messages = list(Communication.objects.filter(run=run))
        for name, mine, theirs in (("alice", "norvale", "meridian"), ("bob", "meridian", "norvale")):
            page = self.pages[name]
            # The messages between two other actors: named by id on every surface that shows a message.
            whispers = [m.message_id for m in messages if m.kind != "public" and mine not in (m.sender, *m.recipients)]
            assert any(m.kind == "bilateral" and not {mine, theirs} & {m.sender, *m.recipients}
                       for m in messages), "a bilateral message between two other actors to keep from them"
            secrets = {f"{theirs}'s private information": private[theirs], f"{theirs}'s reasoning": REASONING[theirs]}
            page.goto(f"{url}/runs/{run.pk}/")
            page.wait_for_selector("#run-status.status-completed")
            page.locator("#live-indicator").wait_for(state="attached")
            page.wait_for_timeout(500)  # the socket's catch-up, counted below
            surfaces = {"page": page.content(), "socket": "\n".join(self.frames[name])}
            for path in ("decisions", "communications", "events?limit=1000", "validations", "export"):
                answer = page.request.get(f"{url}/api/runs/{run.pk}/{path}")
                assert answer.ok, (path, answer.status)
                surfaces[f"api {path}"] = answer.text() if path != "export" else _unzipped(answer.body())
            assert self.frames[name], f"{name}'s page held a socket"
            assert any(_shows(surfaces["api communications"], m.message_id) for m in messages
                       if mine in (m.sender, *m.recipients) and m.kind != "public"), f"{name} sees their own talks"
            for surface, text in surfaces.items():
                leaked = [secret for secret, phrase in secrets.items() if phrase in text]
                leaked += [f"message {whisper}" for whisper in whispers if _shows(text, whisper)]
                assert not leaked, f"{name}'s {surface} shows {leaked}"
            assert REASONING[mine] in surfaces["page"] and REASONING[mine] in surfaces["api decisions"], f"{name} sees their own reasoning"
            page.screenshot(path=ARTIFACTS / f"wargame-{name}-view.png", full_page=True)
