"""The ORM persistence: what a run leaves in the database, and the state rebuilt from it."""

import json
from pathlib import Path

import pytest

from engine import EventType, Runner
from engine.state import ScenarioState, ScenarioStatus
from runs import services
from runs.execution import executor
from runs.models import Communication, CostRecord, Decision, RunEvent, RunStatus, Turn
from runs.execution.store import load_run_state
from runs.tests.factories import make_run, summit_config

pytestmark = [pytest.mark.django_db, pytest.mark.both_profiles]


def test_a_run_leaves_its_turns_decisions_messages_ledger_and_events():
    run = make_run(turns=2)
    done = executor.run_execute(run_id=run.pk)

    assert done.status == RunStatus.COMPLETED and done.turn == 2 and done.offline
    assert list(Turn.objects.filter(run=run).values_list("turn", flat=True)) == [0, 1, 2]
    actors = {a["short_name"] for a in run.actors}
    for turn in (1, 2):
        assert set(Decision.objects.filter(run=run, turn=turn).values_list("actor", flat=True)) == actors
    assert Communication.objects.filter(run=run).exists()
    events = list(RunEvent.objects.filter(run=run))
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "seq is gap-free"
    cost_events = [e for e in events if e.type == EventType.COST_INCURRED]
    assert CostRecord.objects.filter(run=run).count() == len(cost_events) == done.calls > 0
    assert events[-1].type == EventType.SCENARIO_COMPLETED
    files = {p.name for p in Path(done.output_dir).iterdir()}
    assert {"world-state-000.md", "world-state-002.md", "summary.md", "state.json"} <= files
    assert {f"{a}-002.md" for a in actors} <= files


def test_the_state_rebuilt_from_rows_is_the_engine_state():
    run = make_run(turns=2)
    executor.run_execute(run_id=run.pk)
    run.refresh_from_db()
    stored = ScenarioState.from_dict(json.loads((Path(run.output_dir) / "state.json").read_text()))

    rebuilt = load_run_state(run)

    # Everything the run says; the rows do not keep every timestamp the engine stamped.
    assert rebuilt.to_dict(stamps=False) == stored.to_dict(stamps=False)
    assert rebuilt == stored


def test_same_run_in_the_engine_alone_gives_the_same_records():
    """The Django path adds storage, not behaviour: the SDK plays the same run to the same state."""
    run = make_run(turns=2, seed=7)
    executor.run_execute(run_id=run.pk)
    run.refresh_from_db()
    alone = Runner().run(summit_config(), max_turns=2, seed=7, run_id=run.engine_run_id)

    stored = load_run_state(run)
    assert stored.status is ScenarioStatus.COMPLETED
    assert stored.decisions == alone.decisions
    assert stored.communications == alone.communications
    assert stored.world_states == alone.world_states
    assert stored.metrics == alone.metrics
    # A turn's QA findings reach the store with the next turn's save (they are asked alongside its talks).
    assert stored.validations == alone.validations and {v.turn for v in stored.validations} == {1, 2}


def test_context_summaries_are_stored_once_and_rebuilt():
    config = summit_config()
    features = config.config.features.model_copy(update={"context_management": config.config.features.context_management.model_copy(update={"enabled": True})})
    config = config.model_copy(update={"config": config.config.model_copy(update={"features": features, "context_window_size": 1})})
    run = executor.run_execute(run_id=make_run(config, turns=4).pk)
    assert run.status == RunStatus.COMPLETED
    state = load_run_state(run)
    assert state.summaries and [s.first_turn for s in state.summaries] == [1] * len(state.summaries)
    assert len(state.summaries) == CostRecord.objects.filter(run=run, phase="summary").count()  # one call per range

    services.run_resume(run=run, max_turns=5, enqueue=False)
    run = executor.run_execute(run_id=run.pk)
    again = load_run_state(run)
    assert again.summaries[: len(state.summaries)] == state.summaries and len(again.summaries) == len(state.summaries) + 1
    assert CostRecord.objects.filter(run=run, phase="summary").count() == len(again.summaries)


def test_an_event_stored_inside_a_callers_transaction_leaves_its_commit_durable():
    """A person's decision is stored with its events in one transaction: on PostgreSQL, an event's relaxed
    flush (`synchronous_commit off`) must not spread to it. (SQLite has no such setting: nothing to check.)"""
    from django.db import connection, transaction

    from engine import Event
    from runs.execution.store import append_events

    run = make_run(turns=1)
    with transaction.atomic():
        append_events(run.pk, [Event(type=EventType.SEAT_CONTROL_CHANGED, data={"actor": "a", "control": "ai"},
                                     run_id=run.engine_run_id, timestamp=0.0, source="seats")])
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                assert cursor.fetchone()[0] == "on"
    assert RunEvent.objects.filter(run=run, seq=1).exists()


# ---- the store: one numbering, one ledger rule -----------------------------------------------------------------
def _progress(run, turn: int):
    from engine import Event

    return Event(type=EventType.TURN_STARTED, data={"turn": turn}, run_id=run.engine_run_id, seq=99, source="test")


def _cost(run, cost: float):
    from engine import Event

    data = {"turn": 1, "phase": "decision", "actor": "a", "model": "m", "provider": "p", "input_tokens": 10,
            "output_tokens": 5, "cost": cost, "cached": False}
    return Event(type=EventType.COST_INCURRED, data=data, run_id=run.engine_run_id, source="test")


def test_the_store_numbers_every_event_in_the_order_appended_whoever_appends():
    from runs.execution.store import ClaimLost, append_events

    run = make_run(turns=1)
    Run = type(run)
    Run.objects.filter(pk=run.pk).update(claim="mine")
    first = append_events(run.pk, [_progress(run, 1), _progress(run, 2)], claim="mine")
    between = append_events(run.pk, [_progress(run, 3)])  # a web request, no claim: numbered after the executor's
    after = append_events(run.pk, [_progress(run, 4)], claim="mine")
    assert [e.seq for e in first + between + after] == [1, 2, 3, 4], "the bus's numbers (99) are not the store's"
    with pytest.raises(ClaimLost):
        append_events(run.pk, [_progress(run, 5)], claim="someone else's")
    stored = list(RunEvent.objects.filter(run=run).values_list("seq", "data__turn"))
    assert stored == [(1, 1), (2, 2), (3, 3), (4, 4)] and Run.objects.get(pk=run.pk).last_seq == 4


def test_totals_are_the_sum_of_the_ledger_however_its_lines_were_booked():
    """A cost event books its line; a line already booked by a save is not booked twice; a save books a line
    whose event never came. The totals always equal the ledger's sums."""
    from django.db.models import Count, Sum

    from runs.execution.store import append_events, book_ledger_lines
    from runs.execution.mapping import ledger_row_of_event

    run = make_run(turns=1)
    Run = type(run)
    append_events(run.pk, [_cost(run, 0.5), _progress(run, 1)], ledger_positions=[0, None])
    book_ledger_lines(run.pk, [ledger_row_of_event(run.pk, 1, None, dict(_cost(run, 0.25).data))])  # as a save would
    append_events(run.pk, [_cost(run, 0.25)], ledger_positions=[1])  # its late event: numbered, not booked again
    run = Run.objects.get(pk=run.pk)
    ledger = CostRecord.objects.filter(run=run).aggregate(cost=Sum("cost"), calls=Count("id"))
    assert (run.total_cost, run.calls, run.total_tokens) == (ledger["cost"], ledger["calls"], 30) == (0.75, 2, 30)
    assert list(CostRecord.objects.filter(run=run).values_list("position", "seq")) == [(0, 1), (1, 3)]
