"""The turn loop: phases in order, the credit limit, pause / resume / cancel, and the error policy.

`execute(state)` plays turns until `max_turns`, a pause, a halt, a cancel or a failure, and returns the
state it stopped at. Calling `execute` again on a paused, halted or failed state resumes it from the first
phase not yet done, so an interrupted run reaches the same end as an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from engine.costs import CostTracker, CreditLimitExceeded
from engine.events import EventBus, EventType
from engine.llm.provider import LLMProvider
from engine.phases.base import HaltRequested, Phase, PhaseContext, PhaseInterrupted
from engine.phases.communication import CommunicationPhase
from engine.phases.decision import DecisionPhase
from engine.phases.metrics import MetricsPhase
from engine.phases.persistence import StatePersistence, save_state
from engine.phases.validation import ValidationPhase
from engine.phases.world_update import WorldUpdatePhase
from engine.scenario.schema import Scenario
from engine.state import RunStatus, ScenarioState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorPolicy:
    """How often a failing phase is tried before the run is FAILED, and how long to wait between tries."""

    max_attempts: int = 2
    retry_delay: float = 0.5  # seconds, multiplied by the attempt number


class _Stop(Exception):
    """Internal: the loop ends at `state` with this status (and reason or error)."""

    def __init__(self, state: ScenarioState, status: RunStatus, *, reason: str | None = None, error: str | None = None) -> None:
        super().__init__(reason or error or status.value)
        self.state, self.status, self.reason, self.error = state, status, reason, error


class ScenarioOrchestrator:
    def __init__(
        self,
        *,
        scenario: Scenario,
        provider: LLMProvider,
        bus: EventBus | None = None,
        max_turns: int | None = None,
        credit_limit: float | None = None,
        persistence: StatePersistence | None = None,
        error_policy: ErrorPolicy | None = None,
        max_concurrency: int = 16,
        phases: list[Phase] | None = None,
    ) -> None:
        self.scenario = scenario
        self.provider = provider
        self.bus = bus or EventBus()
        self.max_turns = max_turns if max_turns is not None else scenario.config.turns
        self.credit_limit = credit_limit if credit_limit is not None else scenario.config.credit_limit
        self.persistence = persistence
        self.error_policy = error_policy or ErrorPolicy()
        self.max_concurrency = max_concurrency
        self.phases: list[Phase] = list(phases or [])
        self._pause_requested = False
        self._cancel_requested = False
        self._running_phase: asyncio.Task[ScenarioState] | None = None

    def register_phase(self, phase: Phase) -> None:
        self.phases.append(phase)

    def request_pause(self) -> None:
        """Stop at the next phase boundary with status PAUSED."""
        self._pause_requested = True

    def request_cancel(self) -> None:
        """Stop now: the phase in flight is abandoned and the run ends CANCELLED."""
        self._cancel_requested = True
        if self._running_phase is not None and not self._running_phase.done():
            self._running_phase.cancel()

    # ---- the loop ----------------------------------------------------------------------------------
    async def execute(self, state: ScenarioState) -> ScenarioState:
        if state.status in (RunStatus.CANCELLED,):
            raise ValueError(f"run {state.run_id} was cancelled and cannot be resumed")
        if state.status is RunStatus.RUNNING:
            raise ValueError(f"run {state.run_id} is already running")
        self._pause_requested = self._cancel_requested = False
        tracker = CostTracker(
            provider=self.provider,
            bus=self.bus,
            run_id=state.run_id,
            credit_limit=self.credit_limit,
            already_spent=state.total_cost,
        )
        ctx = PhaseContext(
            scenario=self.scenario,
            llm=tracker,
            bus=self.bus,
            run_id=state.run_id,
            seed=state.seed,
            max_concurrency=self.max_concurrency,
        )
        resumed = state.status is not RunStatus.PENDING
        state = state.with_started()
        await self._announce(EventType.SCENARIO_RESUMED if resumed else EventType.SCENARIO_STARTED, state, provider=self.provider.name, credit_limit=self.credit_limit)
        try:
            while state.turn < self.max_turns:
                state = await self._play_turn(state, ctx, tracker)
        except _Stop as stop:
            state = stop.state.with_costs(tracker.take_records()).with_status(stop.status, reason=stop.reason, error=stop.error)
            await self._finish(state)
            return state
        state = state.with_status(RunStatus.COMPLETED)
        await self._finish(state)
        return state

    async def _play_turn(self, state: ScenarioState, ctx: PhaseContext, tracker: CostTracker) -> ScenarioState:
        turn = state.current_turn
        if not state.completed_phases:
            await self._emit(EventType.TURN_STARTED, state, {"turn": turn})
        for phase in self.phases:
            if phase.name in state.completed_phases:
                continue
            self._check_requests(state)
            state = await self._run_phase(phase, state, ctx, tracker)
        state = state.with_turn(turn)
        await self._emit(EventType.TURN_COMPLETED, state, {"turn": turn, "total_cost": state.total_cost})
        if self.persistence is not None:
            await save_state(self.persistence, state, self.bus)
        return state

    def _check_requests(self, state: ScenarioState) -> None:
        if self._cancel_requested:
            raise _Stop(state, RunStatus.CANCELLED, reason="cancelled on request")
        if self._pause_requested:
            raise _Stop(state, RunStatus.PAUSED, reason="paused on request")

    async def _run_phase(self, phase: Phase, state: ScenarioState, ctx: PhaseContext, tracker: CostTracker) -> ScenarioState:
        turn = state.current_turn
        name = phase.name.value
        for attempt in range(1, self.error_policy.max_attempts + 1):
            await self._emit(EventType.PHASE_STARTED, state, {"turn": turn, "phase": name, "attempt": attempt})
            self._running_phase = asyncio.ensure_future(phase.run(state, ctx))
            try:
                new_state = await self._running_phase
            except asyncio.CancelledError:
                if not self._cancel_requested:
                    raise  # cancelled from outside (the caller's task): not ours to absorb
                raise _Stop(state, RunStatus.CANCELLED, reason="cancelled on request") from None
            except Exception as exc:  # noqa: BLE001 - every failure is judged by the error policy below
                partial, cause = (exc.partial_state, exc.cause) if isinstance(exc, PhaseInterrupted) else (state, exc)
                state = partial.with_costs(tracker.take_records())
                if isinstance(cause, CreditLimitExceeded):
                    await self._emit(EventType.PHASE_FAILED, state, {"turn": turn, "phase": name, "attempt": attempt, "error": str(cause)})
                    raise _Stop(state, RunStatus.HALTED, reason=str(cause)) from None
                if isinstance(cause, HaltRequested):
                    # The phase's work is done; the halt comes after it so a resume starts with the next phase.
                    state = state.with_phase_completed(phase.name)
                    await self._emit(EventType.PHASE_COMPLETED, state, {"turn": turn, "phase": name})
                    raise _Stop(state, RunStatus.HALTED, reason=str(cause)) from None
                error = f"{type(cause).__name__}: {cause}"
                logger.warning("phase %s of turn %s failed (attempt %s): %s", name, turn, attempt, error)
                await self._emit(EventType.PHASE_FAILED, state, {"turn": turn, "phase": name, "attempt": attempt, "error": error})
                if attempt >= self.error_policy.max_attempts or self._cancel_requested:
                    await self._emit(EventType.TURN_FAILED, state, {"turn": turn, "phase": name, "error": error})
                    self._check_requests(state)
                    raise _Stop(state, RunStatus.FAILED, error=f"turn {turn}, phase {name}: {error}") from None
                await asyncio.sleep(self.error_policy.retry_delay * attempt)
                continue
            finally:
                self._running_phase = None
            state = new_state.with_costs(tracker.take_records()).with_phase_completed(phase.name)
            await self._emit(EventType.PHASE_COMPLETED, state, {"turn": turn, "phase": name})
            return state
        raise AssertionError("unreachable: the loop either returns or raises")

    # ---- events ------------------------------------------------------------------------------------
    async def _emit(self, event_type: EventType, state: ScenarioState, data: dict[str, Any]) -> None:
        correlation = f"turn-{data['turn']}" if "turn" in data else None
        await self.bus.emit(event_type, data, run_id=state.run_id, source="orchestrator", correlation_id=correlation)

    async def _announce(self, event_type: EventType, state: ScenarioState, **extra: Any) -> None:
        data = {"status": state.status.value, "turn": state.turn, "max_turns": self.max_turns, **extra}
        if state.halt_reason:
            data["reason"] = state.halt_reason
        if state.error:
            data["error"] = state.error
        await self.bus.emit(event_type, data, run_id=state.run_id, source="orchestrator")

    async def _finish(self, state: ScenarioState) -> None:
        if self.persistence is not None:
            await save_state(self.persistence, state, self.bus)
        event = {
            RunStatus.COMPLETED: EventType.SCENARIO_COMPLETED,
            RunStatus.PAUSED: EventType.SCENARIO_PAUSED,
            RunStatus.HALTED: EventType.SCENARIO_HALTED,
            RunStatus.CANCELLED: EventType.SCENARIO_CANCELLED,
            RunStatus.FAILED: EventType.SCENARIO_FAILED,
        }[state.status]
        await self._announce(event, state, total_cost=state.total_cost)


def standard_phases() -> list[Phase]:
    """The phases of a turn, in order."""
    return [CommunicationPhase(), DecisionPhase(), WorldUpdatePhase(), MetricsPhase(), ValidationPhase()]

