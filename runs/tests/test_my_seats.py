"""Seats waiting for people: the notice (email, the header's socket), "My seats" (page and API) with wait and
deadline, and the facilitator's tools (who is deciding, remind, hand a seat to someone else)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.core import mail
from ninja.testing import TestClient

from runs.execution import executor
from runs.models import Run, RunRole, RunStatus
from runs.routing import websocket_urlpatterns
from runs.tests.factories import make_run
from runs.tests.test_roles import grant
from runs.tests.test_seats import decision_for
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db(transaction=True)
api_client = TestClient(api)


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def people() -> dict[str, User]:
    return {name: User.objects.create_user(name, email=f"{name}@example.org", password="pw")
            for name in ("owner", "facilitator", "norvale_player", "meridian_player", "observer", "stranger")}


def announce() -> None:
    """Play the queued notices of waiting seats, as a worker would (a test has none); other tasks stay queued."""
    from huey.contrib.djhuey import HUEY

    others = []
    while (task := HUEY.dequeue()) is not None:
        if task.name.endswith("announce_waiting_seats"):
            HUEY.execute(task)
        else:
            others.append(task)
    for task in others:
        HUEY.enqueue(task)


def _waiting(people, *, timeout: float | None = 30) -> Run:
    run = make_run(turns=1, owner=people["owner"], human_timeout_minutes=timeout)
    grant(run, "player", user=people["norvale_player"], seats=["norvale"])
    grant(run, "player", user=people["meridian_player"], seats=["meridian"])
    grant(run, "facilitator", user=people["facilitator"])
    grant(run, "observer", user=people["observer"])
    run = executor.run_execute(run_id=run.pk)
    assert run.status == RunStatus.WAITING_FOR_HUMAN
    announce()
    return run


def test_each_player_is_emailed_once_when_their_seat_starts_waiting(people):
    run = _waiting(people)
    assert sorted(message.to[0] for message in mail.outbox) == ["meridian_player@example.org", "norvale_player@example.org"]
    norvale = next(message for message in mail.outbox if message.to == ["norvale_player@example.org"])
    assert "Government of Norvale" in norvale.subject and f"/runs/{run.pk}/seats/norvale/" in norvale.body
    assert "the model takes the seat" in norvale.body, "the deadline of a seat with a timeout"
    # A seat no player holds is its steerers' to hear about: the owner's and the facilitators'.
    mail.outbox.clear()
    alone = executor.run_execute(run_id=make_run(turns=1, owner=people["owner"], human_seats=("norvale",)).pk)
    assert alone.status == RunStatus.WAITING_FOR_HUMAN
    assert mail.outbox == [], "the notice is a task of its own: a slow mail server never holds the run's worker"
    announce()
    assert [message.to for message in mail.outbox] == [["owner@example.org"]]


@pytest.mark.both_profiles
def test_my_seats_lists_each_persons_waiting_seats_with_wait_and_deadline(people, client):
    run = _waiting(people)
    mine = api_client.get("/runs/seats/pending", user=people["norvale_player"]).json()
    assert [(seat["run"], seat["actor"]) for seat in mine] == [(run.pk, "norvale")]
    assert mine[0]["deadline"] is not None and mine[0]["waited_seconds"] >= 0
    assert api_client.get("/runs/seats/pending", user=people["observer"]).json() == []
    assert api_client.get("/runs/seats/pending", user=people["facilitator"]).json() == [], "the players' seats are theirs"
    RunRole.objects.filter(run=run, user=people["meridian_player"]).delete()
    assert [seat["actor"] for seat in api_client.get("/runs/seats/pending", user=people["facilitator"]).json()] == ["meridian"], \
        "a seat no player holds waits for whoever steers the run"
    client.force_login(people["norvale_player"])
    page = client.get("/runs/seats/").content.decode()
    assert f'id="my-seat-{run.pk}-norvale"' in page and f"my-seat-{run.pk}-meridian" not in page
    assert "(then the model takes it)" in page
    client.force_login(people["observer"])
    assert 'id="my-seats-empty"' in client.get("/runs/seats/").content.decode()


@pytest.mark.both_profiles
def test_the_facilitator_sees_who_decided_reminds_and_hands_a_seat_over(people, client):
    run = _waiting(people)
    decided = api_client.post(f"/runs/{run.pk}/seats/norvale/decision", json=decision_for(run, "norvale"),
                              user=people["norvale_player"])
    assert decided.status_code == 200
    client.force_login(people["facilitator"])
    page = client.get(f"/runs/{run.pk}/").content.decode()
    row = {actor: page.split(f'id="seat-{actor}"')[1].split("</tr>")[0] for actor in ("norvale", "meridian")}
    assert "decided" in row["norvale"] and "deciding" in row["meridian"] and "meridian_player" in row["meridian"]
    assert f'action="/runs/{run.pk}/seats/meridian/nudge/"' in row["meridian"]

    mail.outbox.clear()
    client.post(f"/runs/{run.pk}/seats/meridian/nudge/")
    assert [(message.to, message.subject.startswith("Reminder")) for message in mail.outbox] == [(["meridian_player@example.org"], True)]
    assert api_client.post(f"/runs/{run.pk}/seats/meridian/nudge", user=people["norvale_player"]).status_code == 403
    assert api_client.post(f"/runs/{run.pk}/seats/meridian/nudge", user=people["facilitator"]).json() == {"told": ["meridian_player"]}
    client.force_login(people["norvale_player"])
    assert client.post(f"/runs/{run.pk}/seats/meridian/nudge/").status_code == 403

    # The facilitator hands Meridian to someone else: they decide for it now, its former player no longer may.
    mail.outbox.clear()
    client.force_login(people["facilitator"])
    client.post(f"/runs/{run.pk}/seats/meridian/assign/", {"person": "stranger"})
    parts = {part.user.username: (part.role, part.seats, part.view) for part in RunRole.objects.filter(run=run)}
    assert parts["stranger"] == ("player", ["meridian"], "full")
    assert parts["meridian_player"] == ("observer", [], "public"), "follows the run, seeing what is public"
    assert [message.to for message in mail.outbox] == [["stranger@example.org"]], "the new player is told"
    url = f"/runs/{run.pk}/seats/meridian/decision"
    assert api_client.post(url, json=decision_for(run, "meridian"), user=people["meridian_player"]).status_code == 403
    assert api_client.post(url, json=decision_for(run, "meridian"), user=people["stranger"]).status_code == 200
    assert executor.run_execute(run_id=run.pk).status == RunStatus.COMPLETED
    refused = api_client.post(f"/runs/{run.pk}/seats/norvale/assign", json={"user": "nobody"}, user=people["owner"])
    assert refused.status_code == 400 and "no user 'nobody'" in refused.json()["message"]


async def _open(user):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/seats/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_the_header_socket_tells_each_person_their_seats_as_they_change(people):
    player = await _open(people["norvale_player"])
    assert await player.receive_json_from(timeout=10) == {"type": "seats", "seats": []}
    run = await sync_to_async(_waiting)(people)
    told = await player.receive_json_from(timeout=10)
    assert [(seat["run"], seat["actor"], seat["page"]) for seat in told["seats"]] == [(run.pk, "norvale", f"/runs/{run.pk}/seats/norvale/")]
    decision = await sync_to_async(decision_for)(run, "norvale")
    await sync_to_async(lambda: api_client.post(f"/runs/{run.pk}/seats/norvale/decision", json=decision,
                                                user=people["norvale_player"]))()
    while (await player.receive_json_from(timeout=10))["seats"]:
        pass  # a notice per change: the last says nothing waits for them any more
    await player.disconnect()
    anonymous = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/seats/")
    anonymous.scope["user"] = AnonymousUser()
    await anonymous.connect()
    assert await anonymous.receive_output(timeout=10) == {"type": "websocket.close", "code": 4403}


def test_handing_over_a_seat_with_a_name_no_actor_has_is_a_400(people):
    run = make_run(turns=1, owner=people["owner"])
    answer = api_client.post(f"/runs/{run.pk}/seats/{'x' * 300}/assign", json={"user": "stranger"}, user=people["owner"])
    assert answer.status_code == 400 and "has no actor" in answer.json()["message"], answer.content
    assert api_client.post("/runs/999999/seats/norvale/assign", json={"user": "stranger"}, user=people["owner"]).status_code == 404
