"""The run socket with Channels' WebsocketCommunicator: who may listen, and gap-free, duplicate-free delivery."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User

from runs.reading import EVERYTHING
from runs.execution import executor
from runs.execution.relay import run_group
from runs.models import RunEvent
from runs.routing import websocket_urlpatterns
from runs.tests.factories import make_run

pytestmark = pytest.mark.django_db(transaction=True)
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
real_layers = settings.CHANNEL_LAYERS  # the profile's own, for the test that needs it


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = IN_MEMORY


@pytest.fixture
def played():
    """An owner and a finished one-turn run of theirs, its events stored."""
    owner = User.objects.create_user("owner", password="pw")
    run = make_run(turns=1, owner=owner)
    executor.run_execute(run_id=run.pk)
    return owner, run


async def connect(run, user, after=None):
    path = f"/ws/runs/{run.pk}/" + (f"?after={after}" if after is not None else "")
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, code = await communicator.connect()
    return communicator, connected, code


async def receive_all(communicator, timeout=0.5, first_timeout=10):
    """Every message until `timeout` s of silence. The first may take longer (the consumer's first reads on a
    loaded machine: a clean-clone CI once saw none within 0.5 s), and every caller expects at least one."""
    got = [await communicator.receive_json_from(timeout=first_timeout)]
    while not await communicator.receive_nothing(timeout=timeout):
        got.append(await communicator.receive_json_from())
    return got


@pytest.mark.parametrize("who", ["anonymous", "other"])
async def test_anonymous_and_foreign_users_are_refused(played, who):
    owner, run = played
    user = AnonymousUser() if who == "anonymous" else await sync_to_async(User.objects.create_user)("other", password="pw")
    communicator, connected, _ = await connect(run, user)
    # Accepted, then closed with 4403 at once: a browser sees the code (a refused handshake shows only 1006).
    assert connected
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4403}


@pytest.mark.parametrize("who", ["owner", "staff"])
async def test_owner_and_staff_get_every_stored_event_in_order(played, who):
    owner, run = played
    user = owner if who == "owner" else await sync_to_async(User.objects.create_user)("staff", password="pw", is_staff=True)
    communicator, connected, _ = await connect(run, user)
    assert connected
    got = await receive_all(communicator)
    stored = await sync_to_async(lambda: list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)))()
    assert [m["seq"] for m in got] == stored
    await communicator.disconnect()


async def test_catch_up_after_a_seq_returns_exactly_the_missing_events(played):
    owner, run = played
    stored = await sync_to_async(lambda: list(RunEvent.objects.filter(run=run).values_list("seq", "type")))()
    after = len(stored) // 2
    communicator, connected, _ = await connect(run, owner, after=after)
    got = await receive_all(communicator)
    assert [(m["seq"], m["type"]) for m in got] == [s for s in stored if s[0] > after]
    decision = next(m for m in got if m["type"] == "actor_decision_completed")
    assert any(f["target"].endswith("-decisions") and "decision-1-" in f["html"] for f in decision["fragments"])
    await communicator.disconnect()


async def test_live_events_are_not_repeated_and_a_dropped_one_is_filled_from_the_store(played):
    owner, run = played
    last = await sync_to_async(lambda: RunEvent.objects.filter(run=run).count())()
    communicator, _, _ = await connect(run, owner, after=last)
    assert await communicator.receive_nothing(timeout=0.2)
    layer = get_channel_layer()

    def live(*seqs):
        return {"type": "run.events", "events": [{"seq": seq, "type": "turn_completed", "data": {"turn": 1}} for seq in seqs]}

    async def store(seq):
        await sync_to_async(RunEvent.objects.create)(run=run, seq=seq, type="turn_completed", data={"turn": 1},
                                                     timestamp="2026-01-01T00:00:00Z")

    await store(last + 1)
    await layer.group_send(run_group(run.pk), live(last + 1))
    await layer.group_send(run_group(run.pk), live(last + 1))  # relayed twice
    await store(last + 2)  # stored, but the layer drops it
    await store(last + 3)
    await layer.group_send(run_group(run.pk), live(last + 3))

    got = await receive_all(communicator)
    assert [m["seq"] for m in got] == [last + 1, last + 2, last + 3]
    await communicator.disconnect()


async def test_a_page_may_ask_again_after_its_last_applied_seq(played):
    owner, run = played
    communicator, _, _ = await connect(run, owner)
    first = await receive_all(communicator)
    await communicator.send_json_to({"after": first[-1]["seq"] - 3})
    again = await receive_all(communicator)
    assert [m["seq"] for m in again[:-1]] == [m["seq"] for m in first[-3:]]
    status = again[-1]
    assert status["type"] == "status" and (status["data"]["status"], status["data"]["reason"]) == ("completed", ""), "and the stored status"
    panels = "".join(panel["html"] for panel in status["data"]["panels"])
    assert '<div id="waiting-seats" role="status" hidden></div>' in panels, "no seat waits"
    assert 'id="run-controls"' in panels and "Play more turns" in panels and 'id="checks-summary"' in panels
    await communicator.disconnect()


async def test_a_socket_from_another_site_is_refused(played):
    from scenariolab_site.asgi import application

    owner, run = played
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.both_profiles
@pytest.mark.django_db(transaction=True, databases=["default", "channels"] if "channels" in settings.DATABASES else ["default"])
async def test_a_socket_quiet_for_longer_than_the_layers_blocking_read_still_gets_events(played, settings):
    """The profile's real channel layer (SQLite or Redis): a socket idle for 6 s, then an event. With
    redis-py's default 5 s read timeout racing channels-redis's 5 s blocking read, the consumer used to die."""
    settings.CHANNEL_LAYERS = real_layers
    owner, run = played
    last = await sync_to_async(lambda: RunEvent.objects.filter(run=run).count())()
    communicator, connected, _ = await connect(run, owner, after=last)
    assert connected
    await asyncio.sleep(6)
    await sync_to_async(RunEvent.objects.create)(run=run, seq=last + 1, type="turn_completed", data={"turn": 1},
                                                 timestamp="2026-01-01T00:00:00Z")
    await get_channel_layer().group_send(
        run_group(run.pk), {"type": "run.events", "events": [{"seq": last + 1, "type": "turn_completed", "data": {"turn": 1}}]}
    )
    message = await communicator.receive_json_from(timeout=10)
    assert message["seq"] == last + 1
    await communicator.disconnect()


async def test_pages_of_one_run_share_each_events_rendering(played, monkeypatch):
    """Twenty pages of a run must not render each event twenty times: daphne renders it once, every socket
    gets the same text (200 viewers on 8 runs made page loads and handshakes take seconds)."""
    from runs import live

    owner, run = played
    renders = []
    real = live.event_fragments
    monkeypatch.setattr(live, "event_fragments", lambda event, **kw: renders.append(event["seq"]) or real(event, **kw))
    live._rendered.clear()
    pages = [(await connect(run, owner))[0] for _ in range(3)]
    received = [await receive_all(page) for page in pages]
    stored = await sync_to_async(lambda: list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)))()
    assert [m["seq"] for m in received[0]] == stored
    assert received[1] == received[0] and received[2] == received[0], "every page gets the same messages"
    assert sorted(renders) == stored, "each event rendered once, not once per page"
    for page in pages:
        await page.disconnect()


async def test_a_rendered_event_is_not_taken_for_another_with_the_same_run_and_seq(played):
    """The cache's key: a run id and seq used again (a flushed test database) with another event renders anew."""
    from runs.live import rendered_message

    _, run = played
    first = {"seq": 1, "type": "turn_completed", "data": {"turn": 1}, "timestamp": 1767225600.0}
    other = {"seq": 1, "type": "turn_completed", "data": {"turn": 2}, "timestamp": 1767225601.0}
    assert json.loads(rendered_message(run.pk, first, names={}, max_turns=3, reader=EVERYTHING))["data"]["completed"] == 1
    assert json.loads(rendered_message(run.pk, other, names={}, max_turns=3, reader=EVERYTHING))["data"]["completed"] == 2
    assert json.loads(rendered_message(run.pk, first, names={}, max_turns=5, reader=EVERYTHING))["data"]["max_turns"] == 5, "more turns: anew"


class RefusingLayer:
    """A channel layer that is down (or, embedded, has no table): joining a group fails as channels-lite's does;
    its receive only ever waits (its polling task fails on its own)."""

    extensions: list[str] = []

    async def group_add(self, group, channel):
        raise RuntimeError("no such table: channels_lite_groupmembership")

    async def new_channel(self, prefix="specific."):
        return prefix + "refused"

    async def receive(self, channel):
        await asyncio.Event().wait()


async def test_a_socket_the_channel_layer_refuses_tells_the_page_to_poll(played, monkeypatch):
    """Rather than a socket that dies and a page "reconnecting…" for ever: close code 4503, and the page
    polls (static/js/run-live.js; the production browser test sees it follow a run that way)."""
    from runs import consumers

    owner, run = played
    monkeypatch.setattr("channels.consumer.get_channel_layer", lambda alias="default": RefusingLayer())
    communicator, connected, _ = await connect(run, owner)
    assert connected, "accepted first, so the browser sees the close code"
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": consumers.LIVE_UNAVAILABLE}
