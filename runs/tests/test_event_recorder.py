"""The recorder stores events off the run's path: structure, not timing. A progress event's emitter never
waits for the database, a cost event's emitter waits until its ledger line is committed, concurrent calls'
events share transactions, pages are handed only stored events, and a save never runs ahead of them."""

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from engine import EventBus, EventType
from engine.state import CostRecord as EngineCost
from engine.state import PhaseType, as_dict
from runs.execution import recorder as recording
from runs.models import CostRecord, Run, RunEvent
from runs.execution.recorder import OrmPersistence, RunEventRecorder
from runs.execution.store import load_run_state
from runs.tests.factories import make_run

pytestmark = [pytest.mark.django_db, pytest.mark.both_profiles]


def _cost(actor: str, cost: float = 0.01) -> dict:
    record = EngineCost(turn=1, phase=PhaseType.DECISION, actor=actor, model="m", provider="p", input_tokens=10,
                        output_tokens=5, cost=cost, cached=False)
    return {**as_dict(record), "task": "decision"}


def _stored(run: Run) -> list[tuple[int, str]]:
    return list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", "type"))


def test_a_progress_emitter_does_not_wait_for_the_database_and_a_cost_emitter_does(monkeypatch):
    run = make_run(turns=1)
    gate = threading.Event()  # the database is held until the test opens it
    real = recording.store_batch

    def held(run_id, batch, **kwargs):
        gate.wait(10)
        return real(run_id, batch, **kwargs)

    monkeypatch.setattr(recording, "store_batch", held)
    pages: list[int] = []

    async def scenario() -> None:
        recorder = RunEventRecorder(run.pk, ledger_size=0, then=[lambda e: pages.append(e.seq)])
        bus = EventBus()
        bus.on("*", recorder)
        progress = await asyncio.wait_for(bus.emit(EventType.TURN_STARTED, {"turn": 1}, run_id="r"), 2)
        assert progress.seq == 1 and pages == [], "a page saw an event before it was stored"
        cost = asyncio.create_task(bus.emit(EventType.COST_INCURRED, _cost("a"), run_id="r"))
        await asyncio.sleep(0.1)
        assert not cost.done(), "a cost event's emitter went on before its ledger line was stored"
        gate.set()
        await asyncio.wait_for(cost, 10)
        # Once the emitter goes on, the line is in the database with its event.
        lines = await sync_to_async(lambda: list(CostRecord.objects.filter(run=run).values_list("position", "seq")))()
        assert lines == [(0, 2)]
        await recorder.close()

    async_to_sync(scenario)()
    assert _stored(run) == [(1, "turn_started"), (2, "cost_incurred")] and pages == [1, 2]


def test_concurrent_calls_events_are_stored_in_fewer_transactions_than_events():
    run = make_run(turns=1)
    pages: list[int] = []
    actors = [f"actor-{i}" for i in range(12)]

    async def scenario() -> int:
        recorder = RunEventRecorder(run.pk, ledger_size=0, then=[lambda e: pages.append(e.seq)])
        bus = EventBus()
        bus.on("*", recorder)
        # Twelve calls returning together, as a phase's calls do; each emitter waits for its own line.
        await asyncio.gather(*(bus.emit(EventType.COST_INCURRED, _cost(actor), run_id="r") for actor in actors))
        await recorder.close()
        return recorder.transactions

    transactions = async_to_sync(scenario)()
    assert transactions < len(actors), f"{transactions} transactions for {len(actors)} events"
    assert [seq for seq, _ in _stored(run)] == list(range(1, 13)) and pages == list(range(1, 13))
    lines = list(CostRecord.objects.filter(run=run).order_by("position").values_list("position", "seq"))
    assert lines == [(i, i + 1) for i in range(12)]
    run.refresh_from_db()
    assert run.calls == 12 and run.total_cost == pytest.approx(0.12) and run.total_tokens == 12 * 15


def test_a_save_waits_for_the_events_delivered_before_it(monkeypatch):
    run = make_run(turns=1)
    seen_by_save: list[int] = []
    real = recording.save_run_state

    def save(run_id, state, **kwargs):
        seen_by_save.append(RunEvent.objects.filter(run_id=run_id).count())
        real(run_id, state, **kwargs)

    monkeypatch.setattr(recording, "save_run_state", save)
    state = load_run_state(run)

    async def scenario() -> None:
        recorder = RunEventRecorder(run.pk, ledger_size=0)
        bus = EventBus()
        bus.on("*", recorder)
        for turn in (1, 2, 3):
            await bus.emit(EventType.TURN_STARTED, {"turn": turn}, run_id="r")
        await OrmPersistence(run, recorder=recorder).save(state)
        await recorder.close()

    async_to_sync(scenario)()
    assert seen_by_save == [3]


def test_an_event_that_cannot_be_stored_costs_only_itself(monkeypatch):
    """The database refuses one event (here a fault injected into the store for turn 2's): that event is lost
    and said so, the rest of its batch is stored, numbered without a gap, and pages are not handed the one the
    database lacks."""
    from django.db import DatabaseError

    run = make_run(turns=1)
    real = recording.append_events

    def refusing_turn_2(run_id, events, **kwargs):
        if any(event.data.get("turn") == 2 for event in events):
            raise DatabaseError("refused")
        return real(run_id, events, **kwargs)

    monkeypatch.setattr(recording, "append_events", refusing_turn_2)
    pages: list[tuple[int, int]] = []

    async def scenario() -> None:
        recorder = RunEventRecorder(run.pk, ledger_size=0, then=[lambda e: pages.append((e.seq, e.data["turn"]))])
        bus = EventBus(keep_history=True)
        bus.on("*", recorder)
        await asyncio.gather(*(bus.emit(EventType.TURN_STARTED, {"turn": n}, run_id="r") for n in (1, 2, 3)))
        await recorder.close()

    async_to_sync(scenario)()
    stored = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", "data__turn"))
    assert stored == [(1, 1), (2, 3)] and pages == stored


def test_a_cost_event_whose_emitter_is_cancelled_is_still_stored_and_leaves_nothing_unawaited():
    import gc
    import warnings

    run = make_run(turns=1)

    async def emit_then_cancel() -> None:
        recorder = RunEventRecorder(run.pk, ledger_size=0)
        bus = EventBus()
        bus.on("*", recorder)
        emitting = asyncio.create_task(bus.emit(EventType.COST_INCURRED, _cost("a"), run_id="r"))
        await asyncio.sleep(0)  # numbered and handed to the recorder, the emitter not yet waiting for the commit
        emitting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await emitting
        await recorder.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async_to_sync(emit_then_cancel)()
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert RunEvent.objects.filter(run=run, type="cost_incurred").count() == 1 and CostRecord.objects.filter(run=run).count() == 1


def test_an_executor_that_lost_its_claim_stores_nothing_more_and_is_told_to_stop():
    """The run was resumed elsewhere while this executor looked dead: from its next batch on, none of its events
    or ledger lines reach the database (the other executor numbers its own), and it is stopped once."""
    run = make_run(turns=1)
    Run.objects.filter(pk=run.pk).update(claim="mine")
    stopped: list[bool] = []
    pages: list[int] = []

    async def scenario() -> None:
        recorder = RunEventRecorder(run.pk, ledger_size=0, claim="mine", on_claim_lost=lambda: stopped.append(True),
                                    then=[lambda e: pages.append(e.seq)])
        bus = EventBus()
        bus.on("*", recorder)
        await bus.emit(EventType.TURN_STARTED, {"turn": 1}, run_id="r")
        await recorder.drain()
        await sync_to_async(lambda: Run.objects.filter(pk=run.pk).update(claim="theirs"))()  # a resume elsewhere
        await bus.emit(EventType.PHASE_STARTED, {"turn": 1, "phase": "decision"}, run_id="r")
        await bus.emit(EventType.COST_INCURRED, _cost("a"), run_id="r")
        await bus.emit(EventType.PHASE_COMPLETED, {"turn": 1, "phase": "decision"}, run_id="r")
        await recorder.close()

    async_to_sync(scenario)()
    assert _stored(run) == [(1, "turn_started")] and pages == [1]
    assert not CostRecord.objects.filter(run=run).exists()
    assert stopped == [True], "told to stop once"
