"""The engine's persistence protocol over the ORM, and the recorder that stores every event as it happens.

`RunEventRecorder` subscribes to a run's bus: each event becomes a `RunEvent` row, and each cost event also a
`CostRecord` row in the same transaction, so a paid call is in the ledger before its answer is used, whatever
happens to the process next. Events are written by a task of the recorder's own, in seq order and in batches
(one transaction for what queued while the last one was written), so a model call waits for the database
only for its own ledger line, never behind other events one commit at a time. `OrmPersistence.save` writes a turn's records and the run's progress in one
transaction; `load` rebuilds the engine state from the rows, with the whole ledger (calls whose work was
lost in a crash included, so the credit limit counts them).

Engine code is async; the ORM is sync. Every database call goes through `sync_to_async(thread_sensitive=
True)`, which runs it in the thread that called `async_to_sync` (the worker's or the command's), one at a
time, so a run's writes are serialised and tests see them inside their transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from asgiref.sync import sync_to_async
from django.db import Error as DatabaseFailure, connection, transaction
from django.db.models import Count, F, Max, Sum

from engine import Event, EventType, FilesystemPersistence, ScenarioState
from engine.events import AfterDelivery
from engine.state import CostRecord
from engine.state import ScenarioStatus
from runs import models

logger = logging.getLogger(__name__)

_RECORD_MODELS = (models.Turn, models.Decision, models.Communication, models.MetricRecord, models.ValidationResult)


# ---- rows from state records ---------------------------------------------------------------------------------
def _rows(run: models.Run, state: ScenarioState, after_turn: int) -> list[models.Model]:
    """Rows for every record of `state` belonging to a turn after `after_turn`."""
    rows: list[models.Model] = []
    for i, w in enumerate(state.world_states):
        if w.turn > after_turn:
            events = [{"name": e.name, "kind": e.kind, "text": e.text} for e in w.exogenous_events]
            rows.append(models.Turn(run=run, turn=w.turn, position=i, world_state=w.content, exogenous_events=events))
    for i, d in enumerate(state.decisions):
        if d.turn > after_turn:
            rows.append(models.Decision(
                run=run, turn=d.turn, position=i, actor=d.actor, long_term_goals=list(d.long_term_goals),
                short_term_priorities=list(d.short_term_priorities), reasoning=d.reasoning, action=d.action,
                model=d.model, provider=d.provider,
            ))
    for i, c in enumerate(state.communications):
        if c.turn > after_turn:
            rows.append(models.Communication(
                run=run, turn=c.turn, position=i, message_id=c.id, kind=c.kind.value, sender=c.sender,
                recipients=list(c.recipients), content=c.content, in_reply_to=c.in_reply_to or "",
            ))
    for i, m in enumerate(state.metrics):
        if m.turn > after_turn:
            rows.append(models.MetricRecord(run=run, turn=m.turn, position=i, name=m.name, value=m.value,
                                            actor=m.actor or "", source=m.source))
    for i, v in enumerate(state.validations):
        if v.turn > after_turn:
            rows.append(models.ValidationResult(
                run=run, turn=v.turn, position=i, check_name=v.check, passed=v.passed, severity=v.severity,
                actor=v.actor or "", issues=list(v.issues), explanation=v.explanation,
            ))
    return rows


def _new_summaries(run: models.Run, state: ScenarioState) -> list[models.ContextSummary]:
    """Summaries not stored yet. A summary covers turns already completed (older than the context window),
    so it is found by its range, not by the turn being saved; a stored range never changes."""
    if not state.summaries:
        return []  # nothing to compare: no read
    stored = set(models.ContextSummary.objects.filter(run=run).values_list("first_turn", "turn"))
    return [
        models.ContextSummary(run=run, turn=summary.last_turn, position=i, first_turn=summary.first_turn, text=summary.text)
        for i, summary in enumerate(state.summaries) if (summary.first_turn, summary.last_turn) not in stored
    ]


class ClaimLost(Exception):
    """This process no longer owns the run (it was resumed elsewhere); it must not write the run's state."""


def _ledger_row(run_id: int, position: int, record: CostRecord) -> models.CostRecord:
    return models.CostRecord(
        run_id=run_id, position=position, turn=record.turn, phase=record.phase.value, actor=record.actor or "",
        model=record.model, provider=record.provider, input_tokens=record.input_tokens,
        output_tokens=record.output_tokens, cost=record.cost, cached=record.cached,
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


def _ledger_totals(run: models.Run) -> dict:
    return models.CostRecord.objects.filter(run=run).aggregate(
        cost=Sum("cost"), input=Sum("input_tokens"), output=Sum("output_tokens"), calls=Count("id"), last=Max("position")
    )


def save_run_state(run_id: int, state: ScenarioState, *, claim: str | None = None) -> None:
    """Store `state`: records of turns after the last stored complete turn are (re)written, with the run's
    progress, in one transaction. Completed turns never change, so a save costs one turn, not the run.

    The ledger is reconciled too: a call booked in the state whose cost event never reached the recorder
    (its write failed) gets its row here, at its position. With `claim`, the save is refused (ClaimLost)
    unless this process still owns the run."""
    with transaction.atomic():
        # Only what a save reads or writes: the frozen scenario (the largest column) stays in the database.
        run = models.Run.objects.select_for_update().only("id", "claim", "worker", "turn").get(pk=run_id)
        if claim is not None and run.claim != claim:
            raise ClaimLost(f"run {run_id} was claimed by another process ({run.worker}); this one stops")
        stored = run.turn
        for model in _RECORD_MODELS:
            model.objects.filter(run=run, turn__gt=stored).delete()  # a partial turn is replaced whole
        rows = _rows(run, state, stored)
        for model in _RECORD_MODELS:
            model.objects.bulk_create([row for row in rows if type(row) is model])
        models.ContextSummary.objects.bulk_create(_new_summaries(run, state))
        totals = _ledger_totals(run)
        # Positions are unique per run: n lines at most at position n - 1 are exactly 0..n-1, the state's whole
        # ledger, so the usual save reads one row, not every position of a ledger that grows with the run.
        if totals["calls"] != len(state.costs) or (totals["last"] is not None and totals["last"] != totals["calls"] - 1):
            booked = set(models.CostRecord.objects.filter(run=run).values_list("position", flat=True))
            missing = [_ledger_row(run.pk, i, record) for i, record in enumerate(state.costs) if i not in booked]
            if missing:
                models.CostRecord.objects.bulk_create(missing)
                totals = _ledger_totals(run)
        run.total_cost = totals["cost"] or 0.0
        run.total_tokens = (totals["input"] or 0) + (totals["output"] or 0)
        run.calls = totals["calls"]
        run.turn = state.turn
        run.completed_phases = [p.value for p in state.completed_phases]
        run.completed_steps = list(state.completed_steps)
        changed = ["total_cost", "total_tokens", "calls", "turn", "completed_phases", "completed_steps"]
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
        last = models.RunEvent.objects.filter(run=run).aggregate(n=Max("seq"))["n"] or 0
        models.RunEvent.objects.create(
            run=run, seq=last + 1, type=EventType.STATE_SAVED.value, source=source, timestamp=datetime.now(UTC),
            data={"turn": state.turn, "status": state.status.value, "location": location},
        )


def load_run_state(run: models.Run) -> ScenarioState:
    """The engine state of a run, from its rows: what a resume continues from."""
    from engine.state import (
        ActorState, Communication, CommunicationKind, ContextSummary, Decision, ExogenousOccurrence, MetricRecord,
        PhaseType, ValidationResult, WorldState,
    )

    # The engine only tells a new run (CREATED) from one to continue (anything else).
    if not run.events.exists():
        status = ScenarioStatus.CREATED
    elif run.status in {s.value for s in ScenarioStatus}:
        status = ScenarioStatus(run.status)
    else:
        status = ScenarioStatus.RUNNING  # queued again to resume
    return ScenarioState(
        run_id=run.engine_run_id,
        scenario_name=run.scenario_name,
        actors=tuple(ActorState(**a) for a in run.actors),
        world_states=tuple(
            WorldState(t.turn, t.world_state, tuple(ExogenousOccurrence(**e) for e in t.exogenous_events))
            for t in run.turns.all()
        ),
        turn_duration=run.snapshot["config"].get("turn_duration", ""),
        seed=run.seed,
        status=status,
        turn=run.turn,
        completed_phases=tuple(PhaseType(p) for p in run.completed_phases),
        completed_steps=tuple(run.completed_steps),
        decisions=tuple(
            Decision(d.turn, d.actor, tuple(d.long_term_goals), tuple(d.short_term_priorities), d.reasoning,
                     d.action, d.model, d.provider)
            for d in run.decisions.all()
        ),
        communications=tuple(
            Communication(c.message_id, c.turn, CommunicationKind(c.kind), c.sender, tuple(c.recipients), c.content,
                          c.in_reply_to or None)
            for c in run.communications.all()
        ),
        costs=tuple(
            CostRecord(c.turn, PhaseType(c.phase), c.actor or None, c.model, c.provider, c.input_tokens,
                       c.output_tokens, c.cost, c.cached, timestamp=c.recorded_at)
            for c in run.cost_records.all()
        ),
        metrics=tuple(MetricRecord(m.turn, m.name, m.value, m.actor or None, m.source) for m in run.metric_records.all()),
        validations=tuple(
            ValidationResult(v.turn, v.check_name, v.passed, v.severity, v.actor or None, tuple(v.issues), v.explanation)
            for v in run.validation_results.all()
        ),
        summaries=tuple(ContextSummary(c.first_turn, c.turn, c.text) for c in run.context_summaries.all()),
        halt_reason=run.halt_reason or None,
        error=run.error or None,
    )


# ---- events --------------------------------------------------------------------------------------------------
def _check_claim(run_id: int, claim: str | None) -> None:
    """Inside a write's transaction: refuse it (ClaimLost) unless this executor still owns the run. The run's
    row stays locked until the commit, so a resume elsewhere cannot take the run between check and write."""
    if claim is not None and not models.Run.objects.select_for_update().filter(pk=run_id, claim=claim).exists():
        raise ClaimLost(f"run {run_id} is no longer this executor's (resumed or cancelled elsewhere): nothing more is stored")


def record_event(run_id: int, event: Event, *, ledger_position: int | None = None, claim: str | None = None) -> None:
    """Store one event; a cost event also books its call at `ledger_position` and adds to the run's totals.
    With `claim`, only while the run is still this executor's (else ClaimLost, nothing stored)."""
    data = event.to_dict()["data"]
    # Only a transaction of its own may skip the flush: inside a caller's (a person's decision and the
    # resume it triggers) SET LOCAL would relax that whole transaction.
    relaxed = connection.vendor == "postgresql" and event.type is not EventType.COST_INCURRED and not connection.in_atomic_block
    with transaction.atomic():
        if relaxed:
            # Waiting for the WAL flush costs ~5 ms a commit here. A worker that dies still loses nothing
            # (the server has the row); only a crash of PostgreSQL itself could drop the last few progress
            # events, never a ledger line.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        _check_claim(run_id, claim)
        models.RunEvent.objects.create(
            run_id=run_id, seq=event.seq, type=str(event.type), data=data, source=event.source,
            timestamp=datetime.fromtimestamp(event.timestamp, UTC),
        )
        if event.type is EventType.COST_INCURRED and ledger_position is not None:
            if models.CostRecord.objects.filter(run_id=run_id, position=ledger_position).update(seq=event.seq):
                return  # a save already booked it (its event was late); the totals include it
            models.CostRecord.objects.create(**_ledger_fields(run_id, ledger_position, event.seq, data))
            models.Run.objects.filter(pk=run_id).update(
                total_cost=F("total_cost") + data["cost"],
                total_tokens=F("total_tokens") + data["input_tokens"] + data["output_tokens"],
                calls=F("calls") + 1,
            )


def _ledger_fields(run_id: int, position: int, seq: int, data: dict) -> dict:
    return dict(
        run_id=run_id, position=position, seq=seq, turn=data["turn"], phase=data["phase"], actor=data["actor"] or "",
        task=data.get("task", ""), model=data["model"], provider=data["provider"], input_tokens=data["input_tokens"],
        output_tokens=data["output_tokens"], cost=data["cost"], cached=data["cached"], latency_ms=data.get("latency_ms", 0),
    )


Pending = tuple[Event, "int | None"]  # an event and, for a cost event, its ledger position
BATCH = 100  # events in one transaction at most: a batch's queries stay the same whatever queued


def record_events(run_id: int, batch: Sequence[Pending], *, claim: str | None = None) -> list[Exception | None]:
    """Store events (in seq order) in one transaction per `BATCH`, each with the same few queries however many
    events it holds: the events, the cost events' ledger lines and the run's totals. If one fails (a seq already
    taken, a commit refused), its events are tried one by one (`record_event`), so only one at fault is lost.
    With `claim`, every transaction first checks the run is still this executor's: ClaimLost is raised, and
    nothing of the batch stored, once it is not. Returns, per event, what failed."""
    outcomes: list[Exception | None] = []
    for start in range(0, len(batch), BATCH):
        chunk = batch[start:start + BATCH]
        try:
            _record_together(run_id, chunk, claim)
        except DatabaseFailure:  # any database error (InterfaceError too): try the events one by one
            if len(chunk) > 1:
                logger.warning("run %s: %d events could not be stored together; storing them one by one",
                               run_id, len(chunk), exc_info=True)
            outcomes += [_record_one(run_id, event, position, claim) for event, position in chunk]
        else:
            outcomes += [None] * len(chunk)
    return outcomes


def _record_together(run_id: int, batch: Sequence[Pending], claim: str | None) -> None:
    costs = [(event, position) for event, position in batch if event.type is EventType.COST_INCURRED and position is not None]
    relaxed = connection.vendor == "postgresql" and not costs and not connection.in_atomic_block
    with transaction.atomic():
        if relaxed:  # as in `record_event`: a transaction holding a ledger line is always flushed
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        _check_claim(run_id, claim)
        models.RunEvent.objects.bulk_create([
            models.RunEvent(run_id=run_id, seq=event.seq, type=str(event.type), data=event.to_dict()["data"],
                            source=event.source, timestamp=datetime.fromtimestamp(event.timestamp, UTC))
            for event, _ in batch
        ])
        if not costs:
            return
        positions = [position for _, position in costs]
        booked = set(models.CostRecord.objects.filter(run_id=run_id, position__in=positions).values_list("position", flat=True))
        lines = []
        for event, position in costs:
            if position in booked:  # a save already booked it (its event was late); the totals include it
                models.CostRecord.objects.filter(run_id=run_id, position=position).update(seq=event.seq)
            else:
                lines.append(models.CostRecord(**_ledger_fields(run_id, position, event.seq, event.to_dict()["data"])))
        if lines:
            models.CostRecord.objects.bulk_create(lines)
            models.Run.objects.filter(pk=run_id).update(
                total_cost=F("total_cost") + sum(line.cost for line in lines),
                total_tokens=F("total_tokens") + sum(line.input_tokens + line.output_tokens for line in lines),
                calls=F("calls") + len(lines),
            )


def _record_one(run_id: int, event: Event, position: int | None, claim: str | None) -> Exception | None:
    try:
        record_event(run_id, event, ledger_position=position, claim=claim)
    except ClaimLost:
        raise
    except Exception as exc:  # noqa: BLE001 - one event lost, not the batch: the caller reports it
        return exc
    return None


class RunEventRecorder:
    """A bus subscriber (`bus.on("*", recorder)`) that stores a run's events in seq order, then hands each
    stored one to `then` (pages, a terminal): they never see an event the database does not have.

    Delivery only queues the event; a writer task stores what queued in one transaction per batch. Only a
    cost event's emitter waits, until its ledger line is committed (`AfterDelivery`), so neither the bus
    nor a model call waits for other events' writes, and concurrent calls share commits. `drain()` waits for
    everything delivered so far (a save, and marking a run waiting, must not run ahead of the events);
    `close()` drains and stops the writer.

    Cost events arrive in the order the tracker booked the calls (it numbers the event as it books), so
    the n-th cost event is ledger line `ledger_size + n`: the same position the state gives the call."""

    def __init__(self, run_id: int, *, ledger_size: int, then: Sequence[Callable[[Event], object]] = (),
                 claim: str | None = None, on_claim_lost: Callable[[], object] | None = None) -> None:
        self.run_id = run_id
        self.next_position = ledger_size
        self.then = list(then)
        self.claim = claim  # with a claim, each batch is stored only while the run is still this executor's
        self.on_claim_lost = on_claim_lost
        self.claim_lost = False
        self.transactions = 0  # batches written: what concurrent events cost in commits
        self._store = sync_to_async(record_events, thread_sensitive=True)
        self._pending: list[Pending] = []
        self._batch: asyncio.Future[dict[int, Exception]] | None = None  # resolved when `_pending` is stored
        self._last: asyncio.Future[dict[int, Exception]] | None = None  # the newest batch, pending or in flight
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task | None = None

    def __call__(self, event: Event) -> AfterDelivery | None:
        position = None
        if event.type is EventType.COST_INCURRED:
            position, self.next_position = self.next_position, self.next_position + 1
        batch = self._queue(event, position)
        # A task, not a bare coroutine: an emitter cancelled before it waits must not leave it never awaited.
        return AfterDelivery(asyncio.ensure_future(self._stored(batch, event.seq))) if position is not None else None

    def _queue(self, event: Event, position: int | None) -> asyncio.Future[dict[int, Exception]]:
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer.done():
            self._wake = asyncio.Event()
            self._writer = loop.create_task(self._write(self._wake))
        if self._batch is None:
            self._batch = self._last = loop.create_future()
        self._pending.append((event, position))
        assert self._wake is not None
        self._wake.set()
        return self._batch

    @staticmethod
    async def _stored(batch: asyncio.Future[dict[int, Exception]], seq: int) -> None:
        failures = await asyncio.shield(batch)
        if seq in failures:
            raise failures[seq]  # reported by the bus as this handler's failure

    async def _write(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            if not self._pending:
                continue
            pending, batch = self._pending, self._batch
            self._pending, self._batch = [], None
            assert batch is not None
            try:
                if self.claim_lost:
                    raise ClaimLost(f"run {self.run_id} is no longer this executor's")
                outcomes = await self._store(self.run_id, pending, claim=self.claim)
            except ClaimLost as exc:
                outcomes = [exc] * len(pending)
                if not self.claim_lost:
                    self.claim_lost = True
                    logger.warning("run %s: %s; stopping this executor", self.run_id, exc)
                    if self.on_claim_lost is not None:
                        self.on_claim_lost()
            except Exception as exc:  # noqa: BLE001 - no event of the batch is stored
                outcomes = [exc] * len(pending)
            self.transactions += 1
            failures: dict[int, Exception] = {}
            for (event, _), problem in zip(pending, outcomes, strict=True):
                if problem is None:
                    await self._hand_on(event)
                elif isinstance(problem, ClaimLost):
                    failures[event.seq] = problem  # said once, above
                else:
                    failures[event.seq] = problem
                    logger.error("run %s: event %s #%s could not be stored: %r", self.run_id, str(event.type),
                                 event.seq, problem)
            if not batch.done():
                batch.set_result(failures)

    async def _hand_on(self, event: Event) -> None:
        for handler in self.then:
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - a watcher must never stop the recording
                logger.exception("run %s: %r failed on %s #%s", self.run_id, handler, str(event.type), event.seq)

    async def drain(self) -> None:
        """Wait until every event delivered so far is stored and handed on."""
        while self._last is not None and not (self._last.done() and not self._pending):
            await asyncio.shield(self._last)

    async def close(self) -> None:
        """Drain, then stop the writer."""
        await self.drain()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None


class OrmPersistence:
    """`StatePersistence` for a Django run: rows in the database, Markdown views in the run's folder."""

    def __init__(self, run: models.Run, *, claim: str | None = None, recorder: RunEventRecorder | None = None) -> None:
        self.run_id = run.pk
        self.claim = claim
        self.recorder = recorder
        self.files = FilesystemPersistence(Path(run.output_dir), per_run_folder=False) if run.output_dir else None
        self._save = sync_to_async(save_run_state, thread_sensitive=True)

    async def save(self, state: ScenarioState) -> str:
        if self.recorder is not None:
            await self.recorder.drain()  # the saved state never runs ahead of the stored events
        await self._save(self.run_id, state, claim=self.claim)
        if self.files is not None:
            await self.files.save(state)  # after the commit: the files never show what the database lacks
        return f"run {self.run_id}, turn {state.turn}"

    async def load(self, run_id: str) -> ScenarioState | None:
        run = await models.Run.objects.filter(pk=int(run_id)).afirst()
        return None if run is None else await sync_to_async(load_run_state, thread_sensitive=True)(run)
