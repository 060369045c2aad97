"""Human seats of stored runs: waiting stored, the seat's page and API, takeover mid-run, hand-back, timeouts."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from ninja.testing import TestClient

from engine import EventType
from engine.testing.fake_llm import FakeLLMServer
from runs.reading import EVERYTHING
from runs import seats, services
from runs.execution import recorder as recording
from runs.execution import executor
from runs.models import Decision, HumanDecision, Run, RunEvent, RunStatus
from runs.tests.factories import make_run
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db
client = TestClient(api)
SEAT = "norvale"


@pytest.fixture
def owner():
    return User.objects.create_user("owner", password="pw")


def decision_for(run: Run, actor: str = SEAT, **changes) -> dict:
    """A usable decision, with a reply to every proposal the seat has."""
    view = seats.seat_view_for(run=run, actor=actor)
    payload = {
        "long_term_goals": ["A binding treaty", "A safety institute"], "short_term_priorities": ["Win the vote"],
        "reasoning": "The room is divided.", "action": "We table the compromise text.",
        "replies": {p.id: "We will consider it." for p in view.proposals},
    }
    return {**payload, **changes}


def assert_events_in_order(run: Run) -> None:
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)), "one event per seq, none missing"


def test_a_run_waits_for_its_human_seat_and_goes_on_after_each_decision(owner):
    run = executor.run_execute(run_id=make_run(turns=2, owner=owner, human_seats=(SEAT,)).pk)
    assert run.status == RunStatus.WAITING_FOR_HUMAN and run.turn == 0 and run.waiting_since is not None
    assert not run.claim or run.worker  # no worker holds it: the executor returned
    assert not Decision.objects.filter(run=run, turn=1).exists()  # the models decide after the person

    pending = client.get("/runs/seats/pending", user=owner).json()
    assert [(p["run"], p["actor"], p["turn"]) for p in pending] == [(run.pk, SEAT, 1)]
    assert pending[0]["page"].endswith(f"/runs/{run.pk}/seats/{SEAT}/")
    view = client.get(f"/runs/{run.pk}/seats/{SEAT}", user=owner).json()
    assert view["turn"] == 1 and "# Turn 1 of 2" in view["user"] and "Current world state" in view["user"]
    seated = {s["actor"]: s for s in client.get(f"/runs/{run.pk}/seats", user=owner).json()}
    assert seated[SEAT]["control"] == "human" and seated[SEAT]["waiting"]

    for turn in (1, 2):
        payload = decision_for(run)
        decided = client.post(f"/runs/{run.pk}/seats/{SEAT}/decision", json=payload, user=owner)
        assert decided.status_code == 200, decided.content
        assert decided.json()["status"] == "queued"
        again = client.post(f"/runs/{run.pk}/seats/{SEAT}/decision", json=payload, user=owner)
        assert again.status_code == 409  # decided already: the run no longer waits for this seat
        run = executor.run_execute(run_id=run.pk)
        assert run.status == (RunStatus.WAITING_FOR_HUMAN if turn == 1 else RunStatus.COMPLETED)

    mine = Decision.objects.filter(run=run, actor=SEAT).order_by("turn")
    assert [(d.turn, d.provider, d.action) for d in mine] == [(1, "human", "We table the compromise text."), (2, "human", "We table the compromise text.")]
    assert RunEvent.objects.filter(run=run, type="actor_decision_completed", data__provider="human").count() == 2
    assert RunEvent.objects.filter(run=run, type="scenario_waiting").count() == 2
    assert_events_in_order(run)
    assert not client.get("/runs/seats/pending", user=owner).json()


def test_a_decision_that_would_not_pass_as_a_models_is_refused_with_each_field(owner):
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,)).pk)
    bad = decision_for(run, reasoning=" ", replies={"not-a-proposal": "hi"})
    response = client.post(f"/runs/{run.pk}/seats/{SEAT}/decision", json=bad, user=owner)
    assert response.status_code == 400
    message = response.json()["message"]
    assert "reasoning" in message and "replies.not-a-proposal" in message
    assert Run.objects.get(pk=run.pk).status == RunStatus.WAITING_FOR_HUMAN  # nothing stored
    assert not Decision.objects.filter(run=run, actor=SEAT).exists()


def test_strangers_cannot_see_or_fill_a_seat(owner):
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,)).pk)
    other = User.objects.create_user("other", password="pw")
    assert client.get(f"/runs/{run.pk}/seats/{SEAT}", user=other).status_code == 404
    assert client.post(f"/runs/{run.pk}/seats/{SEAT}/decision", json=decision_for(run), user=other).status_code == 404
    assert client.get("/runs/seats/pending", user=other).json() == []
    assert client.get("/runs/seats/pending").status_code == 401


def test_unknown_seats_are_refused_at_the_start():
    with pytest.raises(services.RunInputError, match="no actor 'nobody'"):
        make_run(turns=1, human_seats=("nobody",))


def test_a_seat_past_its_timeout_goes_to_the_model(owner):
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,), human_timeout_minutes=0.01).pk)
    assert run.status == RunStatus.WAITING_FOR_HUMAN
    assert seats.seats_hand_over_expired(now=timezone.now() - timedelta(minutes=1)) == []  # not yet
    time.sleep(0.7)  # past 0.01 minutes
    handed = seats.seats_hand_over_expired()
    assert [r.pk for r in handed] == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and {a["short_name"]: a["control"] for a in run.actors}[SEAT] == "ai"
    changed = RunEvent.objects.get(run=run, type="seat_control_changed")
    assert changed.data["control"] == "ai" and "minutes" in changed.data["reason"]
    run = executor.run_execute(run_id=run.pk)
    assert run.status == RunStatus.COMPLETED
    assert Decision.objects.get(run=run, actor=SEAT).provider == "offline"
    assert_events_in_order(run)


def test_a_waiting_run_without_a_timeout_keeps_waiting(owner):
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,)).pk)
    assert seats.seats_hand_over_expired(now=timezone.now() + timedelta(days=365)) == []
    assert Run.objects.get(pk=run.pk).status == RunStatus.WAITING_FOR_HUMAN


@pytest.mark.django_db(transaction=True)
def test_a_seat_taken_over_mid_run_then_handed_back_through_the_api(owner, monkeypatch):
    server = FakeLLMServer(latency=0.05).start_in_thread()
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", server.base_url)
    try:
        run = make_run(turns=3, owner=owner)
        worker = threading.Thread(target=executor.run_execute, kwargs={"run_id": run.pk})
        worker.start()
        deadline = time.monotonic() + 60
        while Run.objects.get(pk=run.pk).turn < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        taken = client.post(f"/runs/{run.pk}/seats/{SEAT}/control", json={"control": "human"}, user=owner)
        assert taken.status_code == 200, taken.content
        worker.join(timeout=120)
        run.refresh_from_db()
        assert run.status == RunStatus.WAITING_FOR_HUMAN and run.turn in (1, 2)
        waited_at = run.turn + 1
        # The worker read the change itself and announced it, in its own sequence of events.
        assert RunEvent.objects.filter(run=run, type="seat_control_changed", data__control="human").count() == 1

        handed = client.post(f"/runs/{run.pk}/seats/{SEAT}/control", json={"control": "ai"}, user=owner)
        assert handed.status_code == 200 and handed.json()["status"] == "queued"
        run = executor.run_execute(run_id=run.pk)
        assert run.status == RunStatus.COMPLETED and run.turn == 3
        providers = dict(Decision.objects.filter(run=run, actor=SEAT).values_list("turn", "provider"))
        assert providers[waited_at] != "human" and set(providers) == {1, 2, 3}
        assert [e.data["control"] for e in RunEvent.objects.filter(run=run, type="seat_control_changed").order_by("seq")] == ["human", "ai"]
        assert_events_in_order(run)
    finally:
        server.stop()


# ---- pages ---------------------------------------------------------------------------------------------------
def test_the_seat_page_shows_the_prompt_and_takes_the_decision(owner, client):
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,)).pk)
    client.force_login(owner)
    page = client.get(f"/runs/{run.pk}/")
    assert f'href="seats/{SEAT}/"' in page.content.decode() and "The run waits for a person" in page.content.decode()

    seat = client.get(f"/runs/{run.pk}/seats/{SEAT}/")
    assert seat.status_code == 200
    html = seat.content.decode()
    assert "Current world state" in html and 'name="long_term_goals"' in html
    view = seats.seat_view_for(run=run, actor=SEAT)
    assert all(f'name="reply-{p.id}"' in html for p in view.proposals)

    missing = client.post(f"/runs/{run.pk}/seats/{SEAT}/", {"long_term_goals": "Treaty", "short_term_priorities": "", "reasoning": "x", "action": "y"})
    assert missing.status_code == 400 and "form-error" in missing.content.decode()

    form = {"long_term_goals": "Treaty\nInstitute", "short_term_priorities": "Win the vote", "reasoning": "Divided room.",
            "action": "We table the text.", **{f"reply-{p.id}": "Agreed in principle." for p in view.proposals}}
    done = client.post(f"/runs/{run.pk}/seats/{SEAT}/", form)
    assert done.status_code == 302 and done["Location"] == f"/runs/{run.pk}/"
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    answer = HumanDecision.objects.get(run=run, actor=SEAT)
    assert answer.decided_by == owner and answer.turn == 1
    assert not Decision.objects.filter(run=run, actor=SEAT).exists(), "applied by the run's executor, not the request"
    run = executor.run_execute(run_id=run.pk)
    decision = Decision.objects.get(run=run, actor=SEAT)
    assert decision.provider == "human" and decision.long_term_goals == ["Treaty", "Institute"]
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="decision-1-norvale"' in page and 'class="human-badge">human' in page


def test_take_a_seat_and_hand_it_back_from_the_run_page(owner, client):
    run = executor.run_execute(run_id=make_run(turns=2, owner=owner).pk)
    client.force_login(owner)
    services.run_resume(run=run, max_turns=3, enqueue=False)
    client.post(f"/runs/{run.pk}/seats/{SEAT}/control/", {"control": "human"})
    assert {a["short_name"]: a["control"] for a in Run.objects.get(pk=run.pk).actors}[SEAT] == "human"
    run = executor.run_execute(run_id=run.pk)
    assert run.status == RunStatus.WAITING_FOR_HUMAN
    client.post(f"/runs/{run.pk}/seats/{SEAT}/control/", {"control": "ai"})
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert executor.run_execute(run_id=run.pk).status == RunStatus.COMPLETED


def test_a_decision_made_before_the_worker_lets_go_is_kept_and_the_worker_queues_the_run(owner, django_capture_on_commit_callbacks):
    """Between the executor's last save (the run is WAITING_FOR_HUMAN) and its letting go, a person may already
    answer: the answer is stored at once (no waiting in the request), and the executor, letting go, finds every
    seat answered and queues the run itself."""
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,)).pk)
    payload = decision_for(run)
    Run.objects.filter(pk=run.pk).update(waiting_since=None, claim="c1")  # as between the last save and the end
    decided = client.post(f"/runs/{run.pk}/seats/{SEAT}/decision", json=payload, user=owner)
    assert decided.status_code == 200 and decided.json()["status"] == "waiting_for_human"
    with pytest.raises(services.RunConflict):
        services.run_resume(run=Run.objects.get(pk=run.pk))  # still the executor's
    queued: list[Run] = []
    with django_capture_on_commit_callbacks(execute=True):
        executor._release(run.pk, "c1", requeue=queued.append)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and not run.claim and [r.pk for r in queued] == [run.pk]
    assert executor.run_execute(run_id=run.pk).status == RunStatus.COMPLETED
    assert Decision.objects.get(run=run, actor=SEAT).provider == "human"


def test_a_waiting_run_still_let_go_by_its_executor_waits_when_a_seat_is_unanswered(owner):
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,)).pk)
    Run.objects.filter(pk=run.pk).update(waiting_since=None, claim="c1")
    queued: list[Run] = []
    executor._release(run.pk, "c1", requeue=queued.append)
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING_FOR_HUMAN and run.waiting_since is not None and not run.claim and not queued


def test_a_decision_that_lands_first_keeps_the_seat_from_the_timeout(owner):
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,), human_timeout_minutes=0.01).pk)
    seats.seat_decide(run=run, actor=SEAT, **decision_for(run))
    later = timezone.now() + timedelta(minutes=5)
    assert seats.seat_timeout(run_id=run.pk, now=later) is None and seats.seats_hand_over_expired(now=later) == []
    run.refresh_from_db()
    assert {a["short_name"]: a["control"] for a in run.actors}[SEAT] == "human"
    assert not RunEvent.objects.filter(run=run, type="seat_control_changed").exists()


@pytest.mark.parametrize("field", ["long_term_goals", "reasoning"])
def test_control_characters_and_huge_texts_are_refused_not_stored(owner, client, field):
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,)).pk)
    payload = decision_for(run)
    payload[field] = ["bad\x00goal"] if field == "long_term_goals" else "bad\x00text"
    assert client_api_status(run, owner, payload) in (400, 422)
    payload[field] = ["x" * 30_000] if field == "long_term_goals" else "x" * 30_000
    assert client_api_status(run, owner, payload) in (400, 422)
    client.force_login(owner)
    form = {"long_term_goals": "Treaty", "short_term_priorities": "Vote", "reasoning": "Because.", "action": "Act.",
            **{f"reply-{k}": "Yes." for k in payload["replies"]}}
    form[field] = "bad\x00text"
    assert client.post(f"/runs/{run.pk}/seats/{SEAT}/", form).status_code == 400
    form[field] = "x" * 30_000
    assert client.post(f"/runs/{run.pk}/seats/{SEAT}/", form).status_code == 400
    assert not Decision.objects.filter(run=run, actor=SEAT).exists()


def client_api_status(run: Run, user, payload: dict) -> int:
    return client.post(f"/runs/{run.pk}/seats/{SEAT}/decision", json=payload, user=user).status_code


def test_the_periodic_status_carries_the_links_to_waiting_seats(owner):
    from runs.live import stored_status

    def waiting_list(run: Run) -> str:
        seats_panel = stored_status(run, EVERYTHING, owner)["panels"][1]["html"]
        return seats_panel[seats_panel.index('id="waiting-seats"'):]

    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,)).pk)
    html = waiting_list(run)
    assert f'href="seats/{SEAT}/"' in html and "hidden" not in html.split(">")[0]
    seats.seat_decide(run=run, actor=SEAT, **decision_for(run))
    run.refresh_from_db()
    assert 'hidden' in waiting_list(run).split(">")[0]  # gone once decided


@pytest.mark.parametrize("slow_event", ["scenario_waiting", "state_saved"])
def test_a_heartbeat_after_the_run_began_waiting_does_not_stop_its_executor(owner, settings, slow_event):
    """The executor's own last save makes the run WAITING_FOR_HUMAN, not RUNNING: a heartbeat that comes
    before the executor lets go must not take that for a lost claim and cut it short (the run would then
    wait for ever without `waiting_since`, and every decision would be refused as "storing its last turn")."""
    settings.RUN_HEARTBEAT_SECONDS = 0.02

    async def slow_after_the_last_save(event):
        if str(event.type) == slow_event and event.data.get("status", "waiting_for_human") == "waiting_for_human":
            await asyncio.sleep(0.2)  # several heartbeats

    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, human_seats=(SEAT,)).pk, progress=slow_after_the_last_save)
    assert run.status == RunStatus.WAITING_FOR_HUMAN and run.waiting_since is not None
    assert RunEvent.objects.filter(run=run, type="scenario_waiting").count() == 1
    decided = client.post(f"/runs/{run.pk}/seats/{SEAT}/decision", json=decision_for(run), user=owner)
    assert decided.status_code == 200, decided.content


@pytest.mark.django_db(transaction=True)
def test_a_seat_changed_while_a_paused_run_stores_its_last_events_never_takes_their_seq(monkeypatch):
    """The run's last save made it PAUSED, but its executor still has events queued: a seat change from the
    web is stored at once, numbered by the store between the executor's events, never at a number they use."""
    run = make_run(turns=3)
    controls = executor.RunControls()
    real = recording.store_batch
    web = {}

    def change_the_seat_from_the_web() -> None:
        try:
            seats.seat_set_control(run=Run.objects.get(pk=run.pk), actor=SEAT, control="human")
            web["answer"] = "changed"
        except services.RunConflict as exc:
            web["answer"] = str(exc)
        finally:
            connection.close()

    def the_last_events_held_up_by_a_web_request(run_id, batch, **kwargs):
        types = {event.type for event, _ in batch}
        if EventType.TURN_COMPLETED in types:
            controls.interrupt()
        if "answer" not in web and Run.objects.get(pk=run_id).status == RunStatus.PAUSED:
            request = threading.Thread(target=change_the_seat_from_the_web)
            request.start()
            request.join()
        return real(run_id, batch, **kwargs)

    monkeypatch.setattr(recording, "store_batch", the_last_events_held_up_by_a_web_request)
    paused = executor.run_execute(run_id=run.pk, controls=controls)
    assert paused.status == RunStatus.PAUSED and web["answer"] == "changed"
    assert_events_in_order(paused)
    changed = RunEvent.objects.get(run=paused, type="seat_control_changed")
    paused_at = RunEvent.objects.get(run=paused, type="scenario_paused")
    assert changed.seq < paused_at.seq, "stored while the executor still had its last events to store"
    assert not paused.claim, "let go once its events were stored"
    assert {a["short_name"]: a["control"] for a in paused.actors}[SEAT] == "human"


@pytest.mark.django_db(transaction=True)
def test_an_interruption_while_the_executor_lets_go_still_leaves_the_waiting_run_decidable(owner, monkeypatch):
    run = make_run(turns=1, owner=owner, human_seats=(SEAT,))
    controls = executor.RunControls()
    real = recording.store_batch

    def interrupted_while_storing_the_last_events(run_id, batch, **kwargs):
        if any(event.type is EventType.SCENARIO_WAITING for event, _ in batch):
            controls.interrupt()  # Ctrl-C as the executor drains its events
            time.sleep(0.05)
        return real(run_id, batch, **kwargs)

    monkeypatch.setattr(recording, "store_batch", interrupted_while_storing_the_last_events)
    waiting = executor.run_execute(run_id=run.pk, controls=controls)
    assert controls.interrupted
    assert waiting.status == RunStatus.WAITING_FOR_HUMAN and waiting.waiting_since is not None and not waiting.claim
    decided = client.post(f"/runs/{run.pk}/seats/{SEAT}/decision", json=decision_for(waiting), user=owner)
    assert decided.status_code == 200, decided.content
