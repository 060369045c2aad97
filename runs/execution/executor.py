"""Executing a run: claim it, play it in this process, store it as it goes, let go of it.

A run is created QUEUED; whoever executes it first claims it with one conditional UPDATE (QUEUED →
RUNNING), so two workers handed the same run never both play it. The executing process writes a heartbeat;
a RUNNING run whose heartbeat is stale has crashed and may be resumed. Pause and cancel requests from other
processes travel through the run's row and are read with the heartbeat. Everything the run produces reaches
the database through the recorder and the store (`runs.execution.store`), and pages through the relay.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce, Now

from engine import Event, EventBus, ScenarioState
from engine.llm.cache import CachingProvider, SqliteResponseCache
from engine.llm.provider import LLMProvider
from engine.llm.routing import RoutingError, provider_from_environment
from engine.scenario.folder import Scenario as EngineScenario
from engine.seats import SeatDesk
from engine.state import ScenarioStatus
from runs import selectors, services
from runs.execution.desk import StoredSeats
from runs.execution.recorder import OrmPersistence, RunEventRecorder
from runs.execution.relay import LivePublisher
from runs.execution.store import compact_ledger, load_run_state
from runs.models import Run, RunStatus

if TYPE_CHECKING:
    from engine.orchestrator import ScenarioOrchestrator

logger = logging.getLogger(__name__)


def headless() -> None:
    """This process plays runs and serves no pages (a command-line run, a worker): Django's debug-only
    machinery is off whatever SCENARIOLAB_DEBUG says. Its debug cursor formats every query (SQLite's quotes
    each parameter with a query of its own) and, with no request to clear it, keeps the last 9,000 in memory."""
    settings.DEBUG = False


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerMisconfigured(Exception):
    """This process cannot serve the run the way it was planned (a key or base URL is missing here)."""


def provider_for_run(run: Run, config: EngineScenario) -> LLMProvider:
    """The run's provider in this process's environment. A run planned offline stays offline whatever keys
    this process holds, and a run planned against real models never falls back to the offline provider."""
    choice = provider_from_environment(config, provider="offline" if run.offline else (run.provider_override or None))
    if choice.offline and not run.offline:
        raise WorkerMisconfigured(
            f"run {run.pk} was planned against {run.provider}, but this process has no API key or base URL "
            "(set OPENROUTER_API_KEY, OPENAI_API_KEY, OLLAMA_BASE_URL or SCENARIOLAB_LLM_BASE_URL for the worker, "
            "then resume the run)"
        )
    provider = choice.provider
    scope = settings.LLM_CACHE_SCOPE
    if not run.offline and run.use_cache and scope != "off":
        cache = SqliteResponseCache(Path(settings.DATA_DIR) / "llm-cache.sqlite3")
        # Scope "run": a resume asks again what a crash lost, and the answers already received are free.
        provider = CachingProvider(provider, cache, scope=run.engine_run_id if scope == "run" else None)
    return provider


WORKER_STOPPING = "the worker stopped (a restart or deploy): queued for the next worker"


class RunControls:
    """Lets another thread (a signal handler) stop an executing run. `interrupt()` stops it at once, PAUSED
    and saved (Ctrl-C); `hand_back(within=…)` pauses it between model calls (the calls in flight answered and
    booked, none started) and has its executor queue it again for the next worker, interrupting it if a call
    is still in flight `within` seconds later."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._orchestrator: ScenarioOrchestrator | None = None
        self._deadline: threading.Timer | None = None
        self.interrupted = False
        self.handed_back = False

    def attach(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task, orchestrator: ScenarioOrchestrator) -> None:
        self._loop, self._task, self._orchestrator = loop, task, orchestrator
        if self.handed_back:  # asked before the run was under way
            orchestrator.request_pause(reason=WORKER_STOPPING, between_calls=True)
        if self.interrupted:  # asked before the run was under way: stop as soon as it is
            loop.call_soon(task.cancel)

    def interrupt(self) -> None:
        # Once only: a second cancel would cut short the orchestrator's shielded save of the paused run.
        if self.interrupted:
            return
        self.interrupted = True
        loop, task = self._loop, self._task  # a deadline timer may fire while the execution detaches
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop closed meanwhile: the execution is over
                pass

    def hand_back(self, *, within: float) -> None:
        if self.handed_back:
            return
        self.handed_back = True
        if self._orchestrator is not None:
            self._orchestrator.request_pause(reason=WORKER_STOPPING, between_calls=True)  # thread-safe
        self._deadline = threading.Timer(within, self.interrupt)
        self._deadline.daemon = True
        self._deadline.start()

    def detach(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._loop = self._task = self._orchestrator = None


# The runs this process is executing, and whether it is stopping: a worker told to stop (SIGTERM) hands each back.
_executing: set[RunControls] = set()
_executing_lock = threading.Lock()
_stopping = threading.Event()


def worker_stop(*, within: float) -> int:
    """This worker is stopping: every run it executes pauses between model calls and is queued again for the
    next worker (interrupted after `within` seconds if a call is still in flight), and it claims no other.
    Returns how many runs were handed back."""
    _stopping.set()
    with _executing_lock:
        executing = list(_executing)
    for controls in executing:
        controls.hand_back(within=within)
    return len(executing)


def run_execute(
    *,
    run_id: int,
    progress: Callable[[Event], object] | None = None,
    controls: RunControls | None = None,
    seats: SeatDesk | None = None,
    requeue: Callable[[Run], None] | None = None,
) -> Run | None:
    """Claim a QUEUED run and play it here to its end. None when another process claimed it first, or when this
    worker is stopping (the run is left queued, handed to `requeue`: by default a new task for any worker).
    `seats` answers for human seats (a terminal); by default a human seat makes the run wait, stored."""
    requeue = requeue or (lambda run: services.run_enqueue(run=run))
    if _stopping.is_set():
        run = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).first()
        if run is not None:
            requeue(run)  # its task was taken from the queue: the next worker needs another
        return None
    claim = uuid.uuid4().hex
    # Database time (Now()) for heartbeats everywhere, so clocks of different machines never disagree.
    claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, worker=worker_name(), claim=claim, heartbeat_at=Now(),
        started_at=Coalesce("started_at", Now()), pause_requested=False, cancel_requested=False, finished_at=None,
        halt_reason="", error="", waiting_since=None,
    )
    if not claimed:
        return None
    run = Run.objects.get(pk=run_id)
    try:
        config = EngineScenario.model_validate(run.snapshot)
        provider = provider_for_run(run, config)
    except (RoutingError, ValueError, WorkerMisconfigured) as exc:
        _finish(run, RunStatus.FAILED, error=f"could not start: {exc}")
        return run
    controls = controls or RunControls()
    with _executing_lock:
        _executing.add(controls)
    try:
        if _stopping.is_set():  # a stop that came between the check above and the claim
            controls.hand_back(within=settings.WORKER_STOP_SECONDS)
        try:
            final = async_to_sync(_execute)(run, claim, config, provider, progress, controls, seats, requeue)
        except asyncio.CancelledError:
            final = None  # interrupted: the orchestrator saved the run PAUSED before letting go
            # (unless the interruption came before the orchestrator started: then nothing ran, and it stops here)
            if controls.handed_back:
                if Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, claim=claim).update(
                        status=RunStatus.QUEUED, claim=""):
                    requeue(run)
            else:
                Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, claim=claim).update(
                    status=RunStatus.PAUSED, halt_reason="interrupted before the first phase", finished_at=Now(), claim=""
                )
        if final is not None:
            # The orchestrator's own last save normally did this; make sure a failed save cannot leave it RUNNING.
            Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, claim=claim).update(
                status=final.status.value, halt_reason=final.halt_reason or "", error=final.error or "",
                finished_at=Now(), claim="",  # its events were stored when the executor closed its recorder
            )
    finally:
        with _executing_lock:
            _executing.discard(controls)
        controls.detach()
    run.refresh_from_db()
    return run


async def _execute(run: Run, claim: str, config: EngineScenario, provider: LLMProvider, progress, controls: RunControls,
                   seats, requeue: Callable[[Run], None]) -> ScenarioState:
    # Only playing a run needs the orchestrator and its phases: every process imports this module (the admin
    # does), and `manage.py run_scenario --help` should not pay for them.
    from engine.orchestrator import ScenarioOrchestrator, standard_phases
    ledger_size = await sync_to_async(compact_ledger, thread_sensitive=True)(run.pk)
    state = await sync_to_async(load_run_state, thread_sensitive=True)(run)
    bus = EventBus()
    # The store numbers what it stores; the bus counts on from there so that its numbers are the stored ones.
    bus.resume_sequence(run.engine_run_id, (await Run.objects.values_list("last_seq", flat=True).aget(pk=run.pk)))
    publisher = LivePublisher(run.pk)
    # Pages (through the channel layer) and the terminal are handed each event by the recorder once it is
    # stored, so they never show what the database lacks; the recorder writes in batches, off the run's path.
    task = asyncio.current_task()
    # An executor that lost its claim (it looked dead and the run went on elsewhere) stores nothing more: the
    # recorder checks the claim with every batch it writes, and stops the run at the first refusal.
    recorder = RunEventRecorder(run.pk, ledger_size=ledger_size, claim=claim, on_claim_lost=task.cancel,
                                then=[publisher] if progress is None else [publisher, progress])
    bus.on("*", recorder)
    persistence = OrmPersistence(run, claim=claim, recorder=recorder)
    orchestrator = ScenarioOrchestrator(
        scenario=config, provider=provider, bus=bus, max_turns=run.max_turns, credit_limit=run.credit_limit,
        persistence=persistence, phases=standard_phases(),
        seats=seats or StoredSeats(run.pk), trace_calls=settings.CALL_TRACES,
    )
    controls.attach(asyncio.get_running_loop(), task, orchestrator)
    heartbeat = asyncio.create_task(_heartbeat(run.pk, claim, orchestrator, task))
    try:
        return await orchestrator.execute(state)
    except ValueError as exc:  # a state the orchestrator refuses (actors changed, cancelled): nothing ran
        await sync_to_async(_finish, thread_sensitive=True)(run, RunStatus.FAILED, error=str(exc))
        return state.with_status(ScenarioStatus.FAILED, error=str(exc))
    finally:
        heartbeat.cancel()  # before letting go: once released, a person may resume the run
        # However the execution ended (an error and a pause too), and even if interrupted meanwhile (Ctrl-C):
        # a run left ended but held would refuse every decision and resume until its heartbeat went stale,
        # and a waiting one for ever.
        letting_go = asyncio.ensure_future(_let_go(recorder, persistence, run.pk, claim, requeue,
                                                   handed_back=controls.handed_back))
        try:
            await asyncio.shield(letting_go)
        except asyncio.CancelledError:
            await letting_go
            raise
        await publisher.close()


async def _let_go(recorder: RunEventRecorder, persistence: OrmPersistence, run_id: int, claim: str,
                  requeue: Callable[[Run], None], *, handed_back: bool) -> None:
    """Store every event of this executor and write its last Markdown files, then release the run: only then
    may it be resumed. A waiting run
    whose seats were all answered meanwhile goes back to the queue; so does a run it paused because the worker
    is stopping (`handed_back`). Either is handed to `requeue`."""
    try:
        await recorder.close()  # every event stored, what an error or a cancellation left queued too
        await persistence.flush()
    finally:
        await sync_to_async(_release, thread_sensitive=True)(run_id, claim, requeue=requeue, handed_back=handed_back)


def _release(run_id: int, claim: str, *, requeue: Callable[[Run], None], handed_back: bool = False) -> None:
    """Release a run this executor has stopped (its events stored); a waiting run starts its wait now (the
    timeout counts from here), unless every seat it waits for has been answered or handed to the model while
    it stored its last events: then it is queued again. Idempotent; a run still RUNNING (its last save failed)
    is left to the caller. With `handed_back`, a run paused by its worker stopping (not by a person's pause)
    goes back to the queue. A run queued again leaves the queue's hands and this executor's in one
    transaction: no moment where it looks at rest, or crashed."""
    with transaction.atomic():  # under the run's lock: a person deciding now either sees it at rest or is seen here
        run = Run.objects.select_for_update().filter(pk=run_id, claim=claim).first()
        if run is None:
            return
        mine = Run.objects.filter(pk=run_id, claim=claim)
        again = mine.none()
        if run.status == RunStatus.WAITING_FOR_HUMAN:
            if selectors.run_pending_seats(run=run):
                if mine.filter(waiting_since__isnull=True).update(waiting_since=Now()):
                    transaction.on_commit(lambda: services.run_announce_waiting(run_id=run_id))
            else:
                again = mine
        elif handed_back:
            # Only a pause this stop caused (not a model server's trouble, nor a person's pause meanwhile).
            stopped = mine.filter(Q(halt_reason=WORKER_STOPPING) | Q(halt_reason__startswith="interrupted"),
                                  status=RunStatus.PAUSED)
            stopped.filter(pause_requested=True).update(halt_reason="paused on request")
            again = stopped.filter(pause_requested=False, cancel_requested=False)
        if again.update(status=RunStatus.QUEUED, halt_reason="", finished_at=None, claim=""):
            queued = Run.objects.get(pk=run_id)
            transaction.on_commit(lambda: requeue(queued))
        mine.exclude(status=RunStatus.RUNNING).update(claim="")


def _beat(run_id: int, claim: str) -> tuple[bool, bool] | None:
    """Write the heartbeat; return the pause and cancel requests, or None if the claim is lost."""
    if Run.objects.filter(pk=run_id, claim=claim, status=RunStatus.RUNNING).update(heartbeat_at=Now()):
        return Run.objects.values_list("pause_requested", "cancel_requested").get(pk=run_id)
    if Run.objects.filter(pk=run_id, claim=claim).exists():
        # This executor's own last save ended the run (waiting, completed...): it is finishing, not lost.
        # Cancelling it now would skip what follows the save (the end event, letting go of the run).
        return False, False
    return None


async def _heartbeat(run_id: int, claim: str, orchestrator: ScenarioOrchestrator, task: asyncio.Task) -> None:
    beat = sync_to_async(_beat, thread_sensitive=True)
    while True:
        await asyncio.sleep(settings.RUN_HEARTBEAT_SECONDS)
        try:
            requests = await beat(run_id, claim)
        except Exception:  # noqa: BLE001 - a busy database must not silence the heartbeat for good
            logger.exception("run %s: could not write the heartbeat; trying again", run_id)
            continue
        if requests is None:
            # Resumed elsewhere or cancelled while this process looked dead: stop now, writing nothing more.
            logger.warning("run %s: claim lost to another process; stopping", run_id)
            task.cancel()
            return
        pause, cancel = requests
        if cancel:
            orchestrator.request_cancel()
        elif pause:
            orchestrator.request_pause()


def _finish(run: Run, status: str, *, error: str = "", reason: str = "") -> None:
    # Nothing ran (no event stored by this executor): the run is released at once.
    Run.objects.filter(pk=run.pk).update(status=status, error=error, halt_reason=reason, finished_at=Now(), claim="")
    run.refresh_from_db()


