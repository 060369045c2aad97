"""Playing one phase of the current turn as the error policy says: its attempts, a failure judged (retry,
pause, halt or fail the run), the ledger lines it booked itself, the wait between tries.

`PhaseAttempts` is mixed into `ScenarioOrchestrator`: it reads and advances the orchestrator's current state
(`_current`), the phase in flight (`_running_phase`, which a cancel request interrupts), its requests
(`_cancel_requested`, `_pause_reason`, `_check_requests`) and its events (`_emit`, `_booked`, `_wake`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from engine.costs import CallHeld, CostTracker, CreditLimitExceeded
from engine.events import EventType
from engine.llm.provider import LLMError
from engine.phases.base import HaltRequested, PhaseContext, start_phase
from engine.phases.registry import AnyPhase
from engine.seats import AwaitingHuman
from engine.state import CostRecord, PhaseType, ScenarioState, ScenarioStatus

logger = logging.getLogger("engine.orchestrator")


@dataclass(frozen=True)
class ErrorPolicy:
    """How often a failing phase is tried before the run is FAILED, and how long to wait between tries."""

    max_attempts: int = 2
    retry_delay: float = 0.5  # seconds, multiplied by the attempt number

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("ErrorPolicy.max_attempts must be at least 1")


class RunStop(Exception):
    """Inside the orchestrator: the run stops at its current state with this status."""

    def __init__(self, status: ScenarioStatus, *, reason: str | None = None, error: str | None = None) -> None:
        super().__init__(reason or error or status.value)
        self.status, self.reason, self.error = status, reason, error


class PhaseAttempts:
    """What the orchestrator does to play one phase; see the module's docstring for what it relies on."""

    error_policy: ErrorPolicy
    _current: ScenarioState | None
    _running_phase: asyncio.Future[ScenarioState] | None
    _cancel_requested: bool
    _pause_reason: str
    _wake: asyncio.Event | None

    async def _run_phase(self, kind: PhaseType, phase: AnyPhase, ctx: PhaseContext, tracker: CostTracker) -> None:
        assert self._current is not None
        turn = self._current.current_turn
        name = kind.value
        self._current = self._current.with_phase(kind)
        for attempt in range(1, self.error_policy.max_attempts + 1):
            await self._emit(EventType.PHASE_STARTED, {"turn": turn, "phase": name, "attempt": attempt})
            if self._cancel_requested:  # asked for by a PHASE_STARTED subscriber
                raise RunStop(ScenarioStatus.CANCELLED, reason="cancelled on request")
            ctx.progress = None
            self._running_phase = asyncio.ensure_future(start_phase(phase, self._current, ctx))
            try:
                new_state = await self._running_phase
            except BaseException as exc:
                self._current = ctx.progress or self._current  # keep the work the phase finished
                self._booked(tracker)
                if isinstance(exc, asyncio.CancelledError):
                    outer = asyncio.current_task()
                    if self._cancel_requested and (outer is None or outer.cancelling() == 0):
                        raise RunStop(ScenarioStatus.CANCELLED, reason="cancelled on request") from None
                    raise  # the caller's own cancellation: not ours to absorb
                if isinstance(exc, CallHeld):  # pausing between calls: the calls sent are answered and booked
                    raise RunStop(ScenarioStatus.PAUSED, reason=self._pause_reason) from None
                if not isinstance(exc, Exception):
                    raise
                await self._judge_failure(kind, attempt, exc)
                await self._wait_before_retry(attempt)
                self._check_requests()
                continue
            finally:
                self._running_phase = None
            own = await self._own_ledger_lines(new_state, tracker, turn)
            self._current = replace(new_state, costs=self._current.costs)
            self._current = self._booked(tracker).with_costs(own).with_phase_completed(kind)
            await self._emit(EventType.PHASE_COMPLETED, {"turn": turn, "phase": name})
            return

    async def _own_ledger_lines(self, new_state: ScenarioState, tracker: CostTracker, turn: int) -> tuple[CostRecord, ...]:
        """The ledger lines a phase booked itself (`state.with_cost`), counted by the tracker: announced, warned
        about and held against the limit like a call's, after the calls the phase made (in the ledger too). A
        line without a turn is this turn's."""
        assert self._current is not None
        before = len(self._current.costs)
        if new_state.costs[:before] != self._current.costs:
            raise ValueError("a phase may add ledger lines (state.with_cost) but never change or drop them")
        now = datetime.now(UTC)
        own = tuple(replace(r, turn=r.turn or turn, timestamp=r.timestamp or now) for r in new_state.costs[before:])
        await tracker.book_records(own)
        return own

    async def _judge_failure(self, kind: PhaseType, attempt: int, cause: BaseException) -> None:
        """Raise RunStop if the failure ends the run; return if the phase should be tried again."""
        assert self._current is not None
        turn, name = self._current.current_turn, kind.value
        if isinstance(cause, CreditLimitExceeded):
            await self._emit(EventType.PHASE_FAILED, {"turn": turn, "phase": name, "attempt": attempt, "error": str(cause)})
            raise RunStop(ScenarioStatus.HALTED, reason=str(cause))
        if isinstance(cause, AwaitingHuman):
            # Not a failure: the models' decisions are kept (the phase's progress) and the run waits, stored.
            raise RunStop(ScenarioStatus.WAITING_FOR_HUMAN, reason=str(cause))
        if isinstance(cause, HaltRequested):
            # The phase's work is done; the halt comes after it so a resume starts with the next phase.
            self._current = self._current.with_phase_completed(kind)
            await self._emit(EventType.PHASE_COMPLETED, {"turn": turn, "phase": name})
            raise RunStop(ScenarioStatus.HALTED, reason=str(cause))
        error = f"{type(cause).__name__}: {cause}"
        logger.warning("phase %s of turn %s failed (attempt %s): %s", name, turn, attempt, error)
        await self._emit(EventType.PHASE_FAILED, {"turn": turn, "phase": name, "attempt": attempt, "error": error})
        if attempt >= self.error_policy.max_attempts:
            await self._emit(EventType.TURN_FAILED, {"turn": turn, "phase": name, "error": error})
            if isinstance(cause, LLMError):
                # The model or its server let us down (outage, garbage after every re-ask): nothing is
                # wrong with the run, so it waits, resumable, with the reason.
                raise RunStop(ScenarioStatus.PAUSED, reason=f"turn {turn}, phase {name}: {cause}")
            raise RunStop(ScenarioStatus.FAILED, error=f"turn {turn}, phase {name}: {error}")

    async def _wait_before_retry(self, attempt: int) -> None:
        """Sleep before a retry, but wake at once for a cancel."""
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self.error_policy.retry_delay * attempt)
        except TimeoutError:
            pass

