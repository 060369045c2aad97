"""The recorder: a run's bus subscriber that stores every event as it happens, and the engine's persistence
protocol over the store.

Each event goes to `store.append_events`; a cost event's ledger line is booked in the same transaction, so a
paid call is in the ledger before its answer is used, whatever happens to the process next. Events are
written by a task of the recorder's own, in order and in batches (one transaction for what queued while the
last one was written), so a model call waits for the database only for its own ledger line, never behind
other events one commit at a time.

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
from pathlib import Path

from asgiref.sync import sync_to_async
from django.db import Error as DatabaseFailure

from engine import Event, EventType, FilesystemPersistence, ScenarioState
from engine.events import AfterDelivery
from runs import models
from runs.execution.store import ClaimLost, append_events, load_run_state, save_run_state

logger = logging.getLogger(__name__)

Pending = tuple[Event, "int | None"]  # an event and, for a cost event, its ledger position
BATCH = 100  # events in one transaction at most: a batch's queries stay the same whatever queued


def store_batch(run_id: int, batch: Sequence[Pending], *, claim: str | None = None) -> list[Event | Exception]:
    """Append events (in order) in one transaction per `BATCH`. If one transaction fails (a commit refused),
    its events are appended one by one, so only one at fault is lost. ClaimLost is raised, and nothing of
    the batch stored, once the run is no longer this executor's. Returns, per event, the event as stored or
    what failed."""
    outcomes: list[Event | Exception] = []
    for start in range(0, len(batch), BATCH):
        chunk = batch[start:start + BATCH]
        try:
            outcomes += append_events(run_id, [event for event, _ in chunk],
                                      ledger_positions=[position for _, position in chunk], claim=claim)
        except DatabaseFailure:  # any database error (InterfaceError too): try the events one by one
            if len(chunk) > 1:
                logger.warning("run %s: %d events could not be stored together; storing them one by one",
                               run_id, len(chunk), exc_info=True)
            outcomes += [_append_one(run_id, event, position, claim) for event, position in chunk]
    return outcomes


def _append_one(run_id: int, event: Event, position: int | None, claim: str | None) -> Event | Exception:
    try:
        return append_events(run_id, [event], ledger_positions=[position], claim=claim)[0]
    except ClaimLost:
        raise
    except Exception as exc:  # noqa: BLE001 - one event lost, not the batch: the caller reports it
        return exc


class RunEventRecorder:
    """A bus subscriber (`bus.on("*", recorder)`) that stores a run's events in seq order, then hands each
    stored one to `then` (pages, a terminal): they never see an event the database does not have.

    Delivery only queues the event; a writer task stores what queued in one transaction per batch. Only a
    cost event's emitter waits, until its ledger line is committed (`AfterDelivery`), so neither the bus
    nor a model call waits for other events' writes, and concurrent calls share commits. `drain()` waits for
    everything delivered so far (a save, and marking a run waiting, must not run ahead of the events);
    `close()` drains and stops the writer.

    Handlers are handed each event as stored: numbered by the store, as the bus numbered it unless a web
    request stored an event of the run meanwhile (a seat changing hands), which then comes between.

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
        self._store = sync_to_async(store_batch, thread_sensitive=True)
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
            for (event, _), outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, Event):
                    await self._hand_on(outcome)  # as stored: its number is the store's
                    continue
                problem = outcome
                if isinstance(problem, ClaimLost):
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
    """`StatePersistence` for a Django run: rows in the database, Markdown views in the run's folder (and its
    state.json whenever it stops)."""

    def __init__(self, run: models.Run, *, claim: str | None = None, recorder: RunEventRecorder | None = None) -> None:
        self.run_id = run.pk
        self.claim = claim
        self.recorder = recorder
        # state.json when the run stops: the database holds its state as it goes.
        self.files = (FilesystemPersistence(Path(run.output_dir), per_run_folder=False, state_when_stopped=True)
                      if run.output_dir else None)
        self._save = sync_to_async(save_run_state, thread_sensitive=True)
        self._writing: asyncio.Future | None = None

    async def save(self, state: ScenarioState) -> str:
        if self.recorder is not None:
            await self.recorder.drain()  # the saved state never runs ahead of the stored events
        await self._save(self.run_id, state, claim=self.claim)
        if self.files is not None:
            # After the commit, so the files never show what the database lacks, and off the run's path: the
            # next turn starts while they are written, one save's files after the other's.
            self._writing = asyncio.ensure_future(self._write(self._writing, state))
        return f"run {self.run_id}, turn {state.turn}"

    async def _write(self, previous: asyncio.Future | None, state: ScenarioState) -> None:
        # Never raises: the files are views of what is stored, and whatever stops them being written (a full
        # disk, text a file cannot hold) must neither fail the run nor keep it from being released.
        if previous is not None:
            await previous
        assert self.files is not None
        try:
            await self.files.save(state)
        except Exception:  # noqa: BLE001 - said in the log; the next save writes them again
            logger.exception("run %s: could not write the Markdown files of turn %s", self.run_id, state.turn)

    async def flush(self) -> None:
        """Wait for the Markdown files of the last save."""
        if self._writing is not None:
            await self._writing

    async def load(self, run_id: str) -> ScenarioState | None:
        run = await models.Run.objects.filter(pk=int(run_id)).afirst()
        return None if run is None else await sync_to_async(load_run_state, thread_sensitive=True)(run)
