"""`ws /api/runs/{id}/stream`: a run's stored events as JSON for scripts, through the whole ASGI application
(origin check, session and bearer-token auth, routing): who may listen, every event in full and in order, and no
gap or repeat across a reconnect with `after`."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from accounts.services import api_token_create
from runs.execution import executor
from runs.models import RunEvent
from runs.tests.factories import make_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def played():
    owner = User.objects.create_user("owner", password="pw")
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner).pk)
    return owner, run


def stored(run) -> list[dict]:
    return [{"seq": e.seq, "type": e.type, "timestamp": e.timestamp.timestamp(), "data": e.data}
            for e in RunEvent.objects.filter(run=run).order_by("seq")]


async def open_stream(run, *, after: int | None = None, headers: list[tuple[bytes, bytes]] = ()):
    from scenariolab_site.asgi import application

    path = f"/api/runs/{run.pk}/stream" + (f"?after={after}" if after is not None else "")
    communicator = WebsocketCommunicator(application, path, headers=[(b"host", b"localhost:8000"), *headers])
    connected, _ = await communicator.connect()
    return communicator, connected


async def take(communicator, count: int) -> list:
    messages = []
    for _ in range(count):
        message = await communicator.receive_output(timeout=10)
        if message["type"] == "websocket.close":
            messages.append(("closed", message.get("code")))
            break
        messages.append(json.loads(message["text"]))
    return messages


def token_for(user) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {api_token_create(owner=user, name='script')[1]}".encode())]


async def test_a_token_streams_every_stored_event_in_full_and_in_order(played):
    owner, run = played
    expected = await sync_to_async(stored)(run)
    headers = await sync_to_async(token_for)(owner)
    stream, connected = await open_stream(run, headers=headers)  # a script: no Origin, its token
    assert connected
    assert await take(stream, len(expected)) == expected
    assert await stream.receive_nothing(timeout=0.3)
    await stream.disconnect()


async def test_a_reconnect_after_the_last_seq_received_has_no_gap_and_no_repeat(played):
    owner, run = played
    expected = await sync_to_async(stored)(run)
    headers = await sync_to_async(token_for)(owner)
    first, _ = await open_stream(run, headers=headers)
    got = await take(first, 5)
    await first.disconnect()  # the script's connection drops
    second, _ = await open_stream(run, after=got[-1]["seq"], headers=headers)
    got += await take(second, len(expected) - 5)
    assert got == expected
    await second.send_json_to({"after": 2})  # asking again for what came after a seq
    assert [event["seq"] for event in await take(second, len(expected) - 2)] == [e["seq"] for e in expected[2:]]
    await second.disconnect()


async def test_a_signed_in_browser_session_may_stream_its_run(played):
    owner, run = played

    def session() -> str:
        client = Client()
        client.force_login(owner)
        return client.cookies["sessionid"].value

    cookie = await sync_to_async(session)()
    stream, connected = await open_stream(run, after=3, headers=[(b"origin", b"http://localhost:8000"),
                                                                 (b"cookie", f"sessionid={cookie}".encode())])
    assert connected and (await take(stream, 1))[0]["seq"] == 4
    await stream.disconnect()


async def test_others_and_strangers_are_refused(played):
    owner, run = played
    other = await sync_to_async(User.objects.create_user)("other", password="pw")
    staff = await sync_to_async(User.objects.create_user)("staff", password="pw", is_staff=True)
    for headers in (await sync_to_async(token_for)(other), [(b"authorization", b"Bearer slb_nope_nope")]):
        stream, connected = await open_stream(run, headers=headers)
        assert connected and await take(stream, 1) == [("closed", 4403)], "the same answer as for no such run"
    stream, _ = await open_stream(run, headers=await sync_to_async(token_for)(staff))
    assert (await take(stream, 1))[0]["seq"] == 1, "staff see every run, as on the pages"
    await stream.disconnect()
    # Neither an Origin of ours nor a token: a browser page of another site, or nothing a script would send.
    for headers in ([(b"origin", b"https://evil.example")], []):
        _, connected = await open_stream(run, headers=headers)
        assert not connected
