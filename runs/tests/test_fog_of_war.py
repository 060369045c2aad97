"""Each reader sees only what their part lets them know, on every surface: the API's records, events and zip,
the run page, its polled events, its downloads, the comparison, and both sockets.

The run is a played ai-summit turn. The secrets: Meridian's private information and reasoning, and a bilateral
message between two actors neither player plays. Norvale's player must not meet them anywhere, nor may an
observer with the public view; the facilitator and an observer with the full view meet them all.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.test import Client
from ninja.testing import TestClient

from runs.execution import executor
from runs.models import Communication, Decision, Run, RunEvent, RunRole
from runs.routing import websocket_urlpatterns
from runs.tests.factories import make_run, summit_config
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db(transaction=True)
api_client = TestClient(api)
READERS = ("facilitator", "norvale_player", "public_observer", "full_observer")
SEES_ALL = {"facilitator", "full_observer"}
MERIDIAN_REASONING = "Meridian will walk out if pressed on training data"
NORVALE_REASONING = "Norvale needs a communique by Friday"
WHISPER = "Continental Union and Safeguard Alliance agree to isolate Meridian"
PUBLIC_STATEMENT = "We welcome every delegation to the summit"


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def _plain(text: str) -> str:
    """The longest run of letters, digits and spaces in `text`: it reads the same in JSON, HTML and Markdown."""
    return max(re.findall(r"[A-Za-z0-9 ]+", text), key=len).strip()


def _mark(run: Run, row, field: str, event_type: str, event_key: str, event_value: str, marker: str) -> None:
    """Add `marker` to a stored record and to the event that announced it, as if the model had written it."""
    setattr(row, field, f"{getattr(row, field)} {marker}")
    row.save(update_fields=[field])
    for event in RunEvent.objects.filter(run=run, type=event_type):
        if event.data.get(event_key) == event_value:
            event.data = {**event.data, field: f"{event.data[field]} {marker}"}
            event.save(update_fields=["data"])


class Game:
    def __init__(self) -> None:
        owner = User.objects.create_user("owner", password="pw")
        self.people = {name: User.objects.create_user(name, password="pw") for name in (*READERS, "stranger")}
        self.people["owner"] = owner
        self.runs = [executor.run_execute(run_id=make_run(turns=1, owner=owner).pk) for _ in range(2)]
        for run in self.runs:
            # Roles given after the run was played: reading is what is tested, so the seats stay the models'.
            RunRole.objects.create(run=run, user=self.people["facilitator"], role="facilitator")
            RunRole.objects.create(run=run, user=self.people["norvale_player"], role="player", seats=["norvale"])
            RunRole.objects.create(run=run, user=self.people["public_observer"], role="observer", view="public")
            RunRole.objects.create(run=run, user=self.people["full_observer"], role="observer", view="full")
        self.run = self.runs[0]
        actors = {actor.short_name: actor for actor in summit_config().actors}
        for run in self.runs:
            decisions = {d.actor: d for d in Decision.objects.filter(run=run)}
            _mark(run, decisions["meridian"], "reasoning", "actor_decision_completed", "actor", "meridian", MERIDIAN_REASONING)
            _mark(run, decisions["norvale"], "reasoning", "actor_decision_completed", "actor", "norvale", NORVALE_REASONING)
            messages = Communication.objects.filter(run=run)
            whisper = next(m for m in messages if m.kind == "bilateral" and not {"norvale", "meridian"} & {m.sender, *m.recipients})
            _mark(run, whisper, "content", "communication_sent", "id", whisper.message_id, WHISPER)
            public = next(m for m in messages if m.kind == "public")
            _mark(run, public, "content", "communication_sent", "id", public.message_id, PUBLIC_STATEMENT)
        self.secrets = {
            "meridian's private information": _plain(actors["meridian"].private_information[0]),
            "meridian's reasoning": MERIDIAN_REASONING,
            "a bilateral message norvale is not part of": WHISPER,
        }
        self.norvale_reasoning = NORVALE_REASONING
        self.public = PUBLIC_STATEMENT

    def check(self, reader: str, text: str, where: str) -> None:
        """`text` holds no secret for a player or a public observer, and the secrets a run's records carry for a
        reader who sees all (private information is the prompts' and the seat pages', never a run record's);
        everyone gets the public statement, and norvale's player their own actor's reasoning."""
        found = {name for name, secret in self.secrets.items() if secret in text}
        if reader in SEES_ALL:
            carried = {name for name in self.secrets if "private" not in name}
            assert carried <= found, f"{where} as {reader} lacks {carried - found}"
        else:
            assert not found, f"{where} shows {reader} {found}"
        if reader == "norvale_player":
            assert self.norvale_reasoning in text, f"{where} hides from norvale's player their own reasoning"
        assert self.public in text, f"{where} hides a public statement from {reader}"


@pytest.fixture
def game() -> Game:
    return Game()


def _unzipped(content: bytes) -> str:
    archive = zipfile.ZipFile(io.BytesIO(content))
    return "\n".join(archive.read(name).decode() for name in archive.namelist())


@pytest.mark.both_profiles
@pytest.mark.parametrize("reader", READERS)
def test_the_api_answers_each_reader_with_their_view(game, reader):
    user, run = game.people[reader], game.run
    records = "\n".join(api_client.get(f"/runs/{run.pk}/{what}", user=user).content.decode()
                        for what in ("decisions", "communications", "validations"))
    game.check(reader, records, "the API's records")
    events = api_client.get(f"/runs/{run.pk}/events?limit=1000", user=user).json()
    game.check(reader, json.dumps(events, ensure_ascii=False), "the API's events")
    assert [e["seq"] for e in events["events"]] == list(range(1, len(events["events"]) + 1)), "no gap: hidden events keep their seq"
    hidden = [e for e in events["events"] if e["type"] == "hidden"]
    assert bool(hidden) == (reader not in SEES_ALL) and all(e["data"] == {} for e in hidden)
    export = api_client.get(f"/runs/{run.pk}/export", user=user)
    game.check(reader, _unzipped(export.content), "the API's zip")
    compared = api_client.get(f"/runs/compare?ids={game.runs[0].pk}&ids={game.runs[1].pk}&turn=1", user=user)
    assert compared.status_code == 200
    reasoning = {cell["reasoning"] for row in compared.json()["decisions"] for cell in row["decisions"] if cell}
    meridian = game.secrets["meridian's reasoning"]
    assert any(meridian in text for text in reasoning) == (reader in SEES_ALL), "the comparison's decisions"


@pytest.mark.parametrize("reader", READERS)
def test_pages_and_downloads_show_each_reader_their_view(game, reader):
    client = Client()
    client.force_login(game.people[reader])
    run = game.run
    page = client.get(f"/runs/{run.pk}/").content.decode()
    game.check(reader, page, "the run page")
    polled = client.get(f"/runs/{run.pk}/events/?after=0").content.decode()
    game.check(reader, json.dumps(json.loads(polled), ensure_ascii=False), "the polled events")
    game.check(reader, client.get(f"/runs/{run.pk}/state.json").content.decode(), "state.json")
    game.check(reader, _unzipped(client.get(f"/runs/{run.pk}/markdown.zip").content), "markdown.zip")
    compared = client.get(f"/runs/compare/?ids={game.runs[0].pk}&ids={game.runs[1].pk}&turn=1").content.decode()
    assert (game.secrets["meridian's reasoning"] in compared) == (reader in SEES_ALL), "the comparison page"
    steers = reader == "facilitator"
    assert ('class="card run-controls"' in page) == steers, "controls only for whoever steers"


async def _socket_text(path: str, user, *, page: bool) -> tuple[list[dict], bool]:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    got = []
    while True:
        message = await communicator.receive_output(timeout=10)
        if message["type"] == "websocket.close":
            return got, False
        got.append(json.loads(message["text"]))
        if await communicator.receive_nothing(timeout=0.5):
            await communicator.disconnect()
            return got, True


@pytest.mark.parametrize("reader", [*READERS, "stranger", "anonymous"])
@pytest.mark.parametrize("socket", ["page", "stream"])
async def test_sockets_send_each_reader_their_view(game, reader, socket):
    run = game.run
    user = AnonymousUser() if reader == "anonymous" else game.people[reader]
    path = f"/ws/runs/{run.pk}/" if socket == "page" else f"/api/runs/{run.pk}/stream"
    got, open_ = await _socket_text(path, user, page=socket == "page")
    if reader in ("stranger", "anonymous"):
        assert (got, open_) == ([], False), "refused, as a run that does not exist"
        return
    stored = await sync_to_async(lambda: Run.objects.get(pk=run.pk).last_seq)()
    assert [m["seq"] for m in got] == list(range(1, stored + 1)), "every seq once, hidden ones included"
    await sync_to_async(game.check)(reader, json.dumps(got, ensure_ascii=False), f"the {socket} socket")


async def test_a_socket_reads_its_persons_part_again_when_parts_change(game):
    """A part taken back closes its person's open socket; a player made an observer of the public view reads
    what is public from then on."""
    from runs import seats
    from runs.roles import RoleGrant

    run = game.run
    observer = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runs/{run.pk}/")
    observer.scope["user"] = game.people["full_observer"]
    assert (await observer.connect())[0]
    await observer.receive_json_from(timeout=10)
    while not await observer.receive_nothing(timeout=0.3):
        await observer.receive_output()
    part = await sync_to_async(RunRole.objects.get)(run=run, user=game.people["full_observer"])
    await sync_to_async(seats.run_role_withdraw)(part=part)
    assert await observer.receive_output(timeout=10) == {"type": "websocket.close", "code": 4403}

    player = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/api/runs/{run.pk}/stream")
    player.scope["user"] = game.people["norvale_player"]
    assert (await player.connect())[0]
    first = await player.receive_json_from(timeout=10)
    while not await player.receive_nothing(timeout=0.3):
        await player.receive_output()  # the rest of the catch-up, read as a player
    demoted = RoleGrant("observer", user=game.people["norvale_player"], view="public")
    await sync_to_async(seats.run_role_grant)(run=run, grant=demoted)
    await player.receive_nothing(timeout=0.5)  # the socket reads the new part
    await player.send_json_to({"after": first["seq"]})  # everything again, as the person may now know it
    again = [await player.receive_json_from(timeout=10)]
    while not await player.receive_nothing(timeout=0.5):
        again.append(await player.receive_json_from())
    text = json.dumps(again, ensure_ascii=False)
    assert NORVALE_REASONING not in text and PUBLIC_STATEMENT in text, "now an observer of the public view"
    await player.disconnect()
