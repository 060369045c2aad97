"""Where a run meets the database: its events and ledger lines appended, its state saved and loaded.

`append_events` is the one way an event is stored, from an executor's recorder, a web request (a seat
changing hands) or an import alike: it numbers the events (the run's `last_seq`, taken in the same statement
that checks the executor's claim), books the ledger lines of cost events with the run's totals (`book_ledger_lines`,
the one rule for totals: a line is added to them when it is booked, and never otherwise), and keeps the call
traces `model_called` events carry as the run's `ModelCall` rows (the events are stored without their texts). `save_run_state`
writes a turn's records and the run's progress; `load_run_state` rebuilds the engine state from the rows.
A person's answer for a seat is stored as submitted (`store_human_decision`) and handed to the executor,
which applies it as it applies a model's decision (`human_decision_for`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max

from engine import Event, EventType, ScenarioState
from engine.calls import TEXT_FIELDS
from engine.seats import HumanDecision
from engine.state import ScenarioStatus
from runs import models
from runs.execution.mapping import (
    LATE_RECORDS, TURN_RECORDS, call_row, event_row, human_decision_of, human_decision_row, ledger_row, ledger_row_of_event, state_from_rows,
    summary_row, turn_rows,
)


class ClaimLost(Exception):
    """This process no longer owns the run (it was resumed elsewhere); it must not write the run's state."""


# ---- events and the ledger -----------------------------------------------------------------------------------
def _number(run_id: int, count: int, claim: str | None) -> int:
    """Take `count` event numbers of the run and return the first. One statement locks the run's row, checks
    the claim and moves `last_seq`, so appenders (an executor, a web request) take turns, each with numbers of
    its own. With `claim`, ClaimLost unless this executor still owns the run."""
    table, last_seq, pk, claim_column = (connection.ops.quote_name(name) for name in (
        models.Run._meta.db_table, "last_seq", "id", "claim"))
    sql = f"UPDATE {table} SET {last_seq} = {last_seq} + %s WHERE {pk} = %s"  # noqa: S608 - names quoted, values bound
    params: list[object] = [count, run_id]
    if claim is not None:
        sql += f" AND {claim_column} = %s"
        params.append(claim)
    with connection.cursor() as cursor:
        cursor.execute(sql + f" RETURNING {last_seq}", params)
        row = cursor.fetchone()
    if row is None:
        if claim is not None:
            raise ClaimLost(f"run {run_id} is no longer this executor's (resumed or cancelled elsewhere): nothing more is stored")
        raise models.Run.DoesNotExist(f"no run {run_id}")
    return row[0] - count + 1


def append_events(run_id: int, events: Sequence[Event], *, ledger_positions: Sequence[int | None] = (),
                  claim: str | None = None) -> list[Event]:
    """Store `events` in one transaction, numbered in order after the run's last event; a cost event with a
    ledger position (its index in the state's ledger, `ledger_positions[i]` for `events[i]`) also books its
    call. Returns the events as stored, with their numbers. With `claim`, only while the run is still this
    executor's (else ClaimLost, nothing stored)."""
    positions = list(ledger_positions) or [None] * len(events)
    costs = [(i, position) for i, (event, position) in enumerate(zip(events, positions, strict=True))
             if position is not None and event.type is EventType.COST_INCURRED]
    # Only a transaction of its own may skip the flush: inside a caller's, SET LOCAL would relax all of it.
    relaxed = connection.vendor == "postgresql" and not costs and not connection.in_atomic_block
    with transaction.atomic():
        if relaxed:
            # Waiting for the WAL flush costs ~5 ms a commit. A worker that dies still loses nothing (the
            # server has the row); only a crash of PostgreSQL itself could drop the last few progress events,
            # never a ledger line: a transaction holding one is always flushed.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        first = _number(run_id, len(events), claim)
        stored = [dataclasses.replace(event, seq=first + i) for i, event in enumerate(events)]
        if any(event.type is EventType.MODEL_CALLED for event in stored):
            stored = _keep_calls(run_id, stored)
        models.RunEvent.objects.bulk_create([event_row(run_id, event) for event in stored])
        if costs:
            _book_announced(run_id, [(position, stored[i]) for i, position in costs])
    return stored


def _keep_calls(run_id: int, events: list[Event]) -> list[Event]:
    """Store the traces `model_called` events carry as the run's calls, and return the events without their
    texts (prompts and answers are read from the calls, by whoever may read them, not sent to every page)."""
    calls = [event for event in events if event.type is EventType.MODEL_CALLED]
    models.ModelCall.objects.bulk_create([call_row(run_id, event.seq, event.to_dict()["data"],
                                                   max_chars=settings.CALL_TRACE_MAX_CHARS) for event in calls])
    return [dataclasses.replace(event, data={k: v for k, v in event.data.items() if k not in TEXT_FIELDS})
            if event.type is EventType.MODEL_CALLED else event for event in events]


def _book_announced(run_id: int, costs: list[tuple[int, Event]]) -> None:
    """Book the calls cost events announce, each at its ledger position; a line a save booked first (its event
    was late) only gets the event's number."""
    booked = set(models.CostRecord.objects.filter(run_id=run_id, position__in=[p for p, _ in costs])
                 .values_list("position", flat=True))
    for position, event in costs:
        if position in booked:
            models.CostRecord.objects.filter(run_id=run_id, position=position).update(seq=event.seq)
    book_ledger_lines(run_id, [ledger_row_of_event(run_id, position, event.seq, event.to_dict()["data"])
                   for position, event in costs if position not in booked])


def book_ledger_lines(run_id: int, lines: list[models.CostRecord]) -> None:
    """Add ledger lines and their sums to the run's totals: the only writer of either."""
    if not lines:
        return
    models.CostRecord.objects.bulk_create(lines)
    models.Run.objects.filter(pk=run_id).update(
        total_cost=F("total_cost") + sum(line.cost for line in lines),
        total_tokens=F("total_tokens") + sum(line.input_tokens + line.output_tokens for line in lines),
        calls=F("calls") + len(lines),
    )


def compact_ledger(run_id: int) -> int:
    """Number the run's ledger lines 0..n-1 (a recorder write that failed just before a crash leaves a
    hole), so positions match the state's list; return n, where the next executor's lines begin."""
    ids = list(models.CostRecord.objects.filter(run_id=run_id).order_by("position").values_list("id", "position"))
    if any(position != i for i, (_, position) in enumerate(ids)):
        with transaction.atomic():
            offset = len(ids) + max(p for _, p in ids) + 1  # two passes keep (run, position) unique throughout
            for i, (pk, _) in enumerate(ids):
                models.CostRecord.objects.filter(pk=pk).update(position=offset + i)
            for i, (pk, _) in enumerate(ids):
                models.CostRecord.objects.filter(pk=pk).update(position=i)
    return len(ids)


# ---- the state -----------------------------------------------------------------------------------------------
def _new_summaries(run: models.Run, state: ScenarioState) -> list[models.ContextSummary]:
    """Summaries not stored yet. A summary covers turns already completed (older than the context window),
    so it is found by its range, not by the turn being saved; a stored range never changes."""
    if not state.summaries:
        return []  # nothing to compare: no read
    stored = set(models.ContextSummary.objects.filter(run=run).values_list("first_turn", "turn"))
    return [summary_row(run, i, summary) for i, summary in enumerate(state.summaries)
            if (summary.first_turn, summary.last_turn) not in stored]


def save_run_state(run_id: int, state: ScenarioState, *, claim: str | None = None) -> None:
    """Store `state`: records of turns after the last stored complete turn are (re)written, with the run's
    progress, in one transaction. Completed turns never change, so a save costs one turn, not the run.

    A call booked in the state whose cost event never reached the store (its write failed) is booked here,
    at its position. With `claim`, the save is refused (ClaimLost) unless this process still owns the run."""
    with transaction.atomic():
        # Only what a save reads or writes: the frozen scenario (the largest column) stays in the database.
        run = models.Run.objects.select_for_update().only("id", "claim", "worker", "turn").get(pk=run_id)
        if claim is not None and run.claim != claim:
            raise ClaimLost(f"run {run_id} was claimed by another process ({run.worker}); this one stops")
        stored = run.turn
        for model in TURN_RECORDS:  # a partial turn is replaced whole
            model.objects.filter(run=run, turn__gte=stored if model in LATE_RECORDS else stored + 1).delete()
        rows = turn_rows(run, state, stored)
        for model in TURN_RECORDS:
            model.objects.bulk_create([row for row in rows if type(row) is model])
        models.ContextSummary.objects.bulk_create(_new_summaries(run, state))
        ledger = models.CostRecord.objects.filter(run=run).aggregate(calls=Count("id"), last=Max("position"))
        # Positions are unique per run: n lines at most at position n - 1 are exactly 0..n-1, the state's whole
        # ledger, so the usual save reads one row, not every position of a ledger that grows with the run.
        if ledger["calls"] != len(state.costs) or (ledger["last"] is not None and ledger["last"] != ledger["calls"] - 1):
            booked = set(models.CostRecord.objects.filter(run=run).values_list("position", flat=True))
            book_ledger_lines(run.pk, [ledger_row(run.pk, i, record) for i, record in enumerate(state.costs) if i not in booked])
        run.turn = state.turn
        run.completed_phases = [p.value for p in state.completed_phases]
        run.completed_steps = list(state.completed_steps)
        changed = ["turn", "completed_phases", "completed_steps"]
        if state.status is not ScenarioStatus.RUNNING:
            run.status = state.status.value
            run.halt_reason = state.halt_reason or ""
            run.error = state.error or ""
            run.finished_at = datetime.now(UTC)
            changed += ["status", "halt_reason", "error", "finished_at"]
        run.save(update_fields=changed)


def store_state(run: models.Run, state: ScenarioState, *, source: str, location: str) -> None:
    """Store a state made outside an executor (an imported V1 run, a branch) as the run's last save: its rows,
    and one `state_saved` event. That event is the run page's snapshot, and what makes executing the run
    continue it (announced as resumed) rather than start it afresh."""
    with transaction.atomic():
        save_run_state(run.pk, state)
        saved = Event(EventType.STATE_SAVED, {"turn": state.turn, "status": state.status.value, "location": location},
                      run_id=run.engine_run_id, source=source)
        append_events(run.pk, [saved])


def load_run_state(run: models.Run) -> ScenarioState:
    """The engine state of a run, from its rows: what a resume continues from."""
    return state_from_rows(run)


# ---- a person's decisions ------------------------------------------------------------------------------------
def store_human_decision(run_id: int, turn: int, actor: str, decision: HumanDecision, *, by=None) -> None:
    """Keep a person's checked answer for the seat `actor` in `turn`, for the run's executor to apply."""
    human_decision_row(run_id, turn, actor, decision, by=by).save()


def human_decision_for(run_id: int, turn: int, actor: str) -> HumanDecision | None:
    """The answer a person gave for the seat `actor` in `turn`, if any."""
    row = models.HumanDecision.objects.filter(run_id=run_id, turn=turn, actor=actor).first()
    return None if row is None else human_decision_of(row)
