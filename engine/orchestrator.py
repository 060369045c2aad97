"""The turn loop: phases in order, the credit limit, pause / resume / cancel, and the error policy.

`execute(state)` plays turns until `max_turns`, a pause, a halt, a cancel or a failure, and returns the
state it stopped at; `execute_turn(state)` plays one. Calling `execute` again on a paused, halted, failed or
interrupted state resumes it from the first phase not yet done. Whatever ends a run — even the caller's task
being cancelled or Ctrl-C — the calls already paid are booked in the state's ledger before it is saved.

A phase that only checks a turn (`alongside_next_turn`: the QA checks) plays alongside the next turn's
talks instead of as a round of its own: the next turn waits for it before its decisions, so a finding set to
halt stops the run before they are made. The last turn's checks play before the run ends.

A turn's phases are the scenario's standard ones (`standard_phases`, given by `Runner`) or any others, keyed
by `PhaseType` and run in that type's order: the engine's `Phase` (`run(state, ctx)`, calling models through
the context's cost tracker) or the V2 document's `PhaseService` (`execute(state)`). An orchestrator without a
scenario runs phases that call no model; what they book with `state.with_cost` is counted like any call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from engine.costs import CallHeld, CostTracker, CreditLimitExceeded
from engine.events import EventBus, EventType
from engine.llm.offline import OfflineProvider
from engine.llm.provider import LLMError, LLMProvider, NoModelProvider
from engine.phases.standard import standard_phases
from engine.phases.base import HaltRequested, Phase, PhaseContext, PhaseService
from engine.phases.persistence import StatePersistence, save_state
from engine.phases.registry import AnyPhase, in_turn_order, typed_phase
from engine.scenario.conditions import parse_condition
from engine.scenario.folder import Scenario
from engine.seats import SeatDesk, StateSeats, pending_human_seats
from engine.state import STATUS_AFTER, PhaseType, ScenarioState, ScenarioStatus
from engine.phase_attempts import ErrorPolicy, PhaseAttempts, RunStop
from engine.turn_checks import TurnChecks, plays_alongside

logger = logging.getLogger(__name__)


# Phases a turn may play while the last turn's checks are still under way: those before its decisions.
_ALONGSIDE_CHECKS = frozenset({PhaseType.SUMMARY, PhaseType.COMMUNICATION, PhaseType.COALITION})


# The event announcing each way a run stops.
_END_EVENTS = {status: event for event, status in STATUS_AFTER.items() if status is not ScenarioStatus.RUNNING}


class ScenarioOrchestrator(PhaseAttempts):
    def __init__(
        self,
        *,
        scenario: Scenario | None = None,
        provider: LLMProvider | None = None,
        event_bus: EventBus | None = None,
        bus: EventBus | None = None,
        max_turns: int | None = None,
        credit_limit: float | None = None,
        persistence: StatePersistence | None = None,
        error_policy: ErrorPolicy | None = None,
        max_concurrency: int = 32,
        phases: Iterable[Phase] | Mapping[PhaseType, AnyPhase] | None = None,
        seats: SeatDesk | None = None,
        trace_calls: bool = False,
    ) -> None:
        if event_bus is not None and bus is not None and event_bus is not bus:
            raise ValueError("give the orchestrator one bus: `event_bus` and `bus` are the same argument")
        limit = credit_limit if credit_limit is not None or scenario is None else scenario.config.credit_limit
        if limit is not None and not (math.isfinite(limit) and limit > 0):
            raise ValueError(f"the credit limit must be a positive number of USD, not {limit!r}")
        self.scenario = scenario
        self.trace_calls = trace_calls  # announce every answered call with its prompt and answer (model_called)
        # A scenario's models answer offline unless a provider is given, as with `Runner`.
        self.provider: LLMProvider = provider or (OfflineProvider(scenario) if scenario is not None else NoModelProvider())
        self.event_bus = event_bus or bus or EventBus()
        # Without a scenario and a turn count, a run goes on until a phase, the credit limit or a pause stops it.
        self.max_turns = max_turns if max_turns is not None or scenario is None else scenario.config.turns
        self.credit_limit = limit
        self.persistence = persistence
        self.error_policy = error_policy or ErrorPolicy()
        self.max_concurrency = max_concurrency
        self.phases = phases or {}  # type: ignore[assignment] - the setter keys them
        self.seats = seats or StateSeats()
        text = scenario.config.end_condition if scenario is not None else None
        self.end_condition = parse_condition(text) if text else None
        self._pause_requested = False
        self._pause_reason = "paused on request"
        self._pausing_between_calls = False
        self._cancel_requested = False
        self._tracker: CostTracker | None = None
        self._running_phase: asyncio.Future[ScenarioState] | None = None
        self._checking: TurnChecks | None = None  # the last turn's checks, under way beside this turn's talks
        self._one_turn = False  # executing one turn (execute_turn): its checks play in it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._current: ScenarioState | None = None

    @property
    def bus(self) -> EventBus:
        """`event_bus`, under the name this engine used before the V2 document's."""
        return self.event_bus

    @property
    def phases(self) -> Mapping[PhaseType, AnyPhase]:
        """A turn's phases by type, in the order they run (read-only: change them with `register_phase`)."""
        return MappingProxyType(self._phases)

    @phases.setter
    def phases(self, phases: Iterable[Phase] | Mapping[PhaseType, AnyPhase]) -> None:
        self._phases = in_turn_order(phases)

    def register_phase(self, phase_or_type: AnyPhase | PhaseType | str, service: AnyPhase | None = None) -> None:
        """Run a phase in each turn, in place of any of the same type: `register_phase(PhaseType.X, service)`
        (the V2 document's form, for a `PhaseService` or a `Phase`) or `register_phase(phase)` for a `Phase`,
        whose `name` is its type."""
        kind, phase = typed_phase(phase_or_type, service)
        self.phases = {**self._phases, kind: phase}

    # ---- requests from outside (any thread) ---------------------------------------------------------
    def request_pause(self, *, reason: str = "paused on request", between_calls: bool = False) -> None:
        """Stop with status PAUSED at the next phase boundary. With `between_calls`, sooner: no new model call
        starts, and once the calls in flight have answered (each booked, the work it finished kept as the
        phase's progress) the phase in flight is left where it is, to be continued on resume. What a stopping
        worker asks for: it pays for nothing twice and waits at most for the longest call in flight."""
        self._pause_requested = True
        self._pause_reason = reason
        if not between_calls:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            self._pausing_between_calls = True  # applies when execute() starts
        elif threading.get_ident() == getattr(loop, "_thread_id", None):
            self._pause_between_calls()
        else:
            loop.call_soon_threadsafe(self._pause_between_calls)

    def pause(self) -> None:
        """Pause at the next phase boundary (`request_pause`); the V2 document's name."""
        self.request_pause()

    def resume(self) -> None:
        """Withdraw a pause not yet taken. A run already paused resumes by `execute(state)` with its state."""
        self._pause_requested = False
        self._pause_reason = "paused on request"

    @property
    def paused(self) -> bool:
        """Whether a pause is asked for (and not yet withdrawn by `resume`)."""
        return self._pause_requested

    def request_cancel(self) -> None:
        """Stop as soon as possible: the phase in flight is abandoned and the run ends CANCELLED."""
        self._cancel_requested = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not executing: the request applies when execute() starts
        if threading.get_ident() == getattr(loop, "_thread_id", None):
            self._interrupt()
        else:
            loop.call_soon_threadsafe(self._interrupt)  # Task.cancel is not thread-safe

    def _pause_between_calls(self) -> None:
        self._pausing_between_calls = True
        if self._tracker is not None:
            self._tracker.hold()

    def _interrupt(self) -> None:
        if self._running_phase is not None and not self._running_phase.done():
            self._running_phase.cancel()
        if self._checking is not None:
            self._checking.task.cancel()
        if self._wake is not None:
            self._wake.set()

    # ---- the loop ----------------------------------------------------------------------------------
    async def execute(self, state: ScenarioState) -> ScenarioState:
        async with self._executing(state) as (tracker, ctx):
            return await self._execute(state, tracker, ctx)

    async def execute_turn(self, state: ScenarioState) -> ScenarioState:
        """Play the next turn of `state` and return the state after it: one step of `execute`, without the run's
        start and end events. A stop within the turn (a pause, a halt, a failure) returns the state it stopped
        at with that status; a run over (cancelled, or at `max_turns`) is refused."""
        if self.max_turns is not None and state.turn >= self.max_turns:
            raise ValueError(f"run {state.run_id} has played its {self.max_turns} turns")
        async with self._executing(state) as (tracker, ctx):
            self._current = state.with_started()
            self._one_turn = True  # no next turn here for its checks to play alongside
            try:
                await self._play_turn(ctx, tracker)
                return self._booked(tracker)
            except RunStop as stop:
                return self._booked(tracker).with_status(stop.status, reason=stop.reason, error=stop.error)
            except Exception as exc:  # noqa: BLE001 - as `execute`: the caller gets a state, with what was paid
                logger.exception("run %s failed outside any phase", state.run_id)
                return self._booked(tracker).with_status(ScenarioStatus.FAILED, error=f"{type(exc).__name__}: {exc}")

    @contextlib.asynccontextmanager
    async def _executing(self, state: ScenarioState) -> AsyncIterator[tuple[CostTracker, PhaseContext]]:
        if self._loop is not None:
            raise ValueError("this orchestrator is already executing a run")
        if state.status is ScenarioStatus.CANCELLED:
            raise ValueError(f"run {state.run_id} was cancelled and cannot be resumed")
        self._check_state_matches_scenario(state)
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            tracker = CostTracker(
                provider=self.provider, bus=self.event_bus, run_id=state.run_id, credit_limit=self.credit_limit,
                already_spent=state.total_cost, ledger=state.costs,
            )
            self._tracker = tracker
            if self._pausing_between_calls:  # asked for before the run was under way
                self._pause_between_calls()
            ctx = PhaseContext(
                scenario=self.scenario,  # type: ignore[arg-type] - None only for phases that read no scenario
                llm=tracker,
                bus=self.event_bus,
                run_id=state.run_id,
                seed=state.seed,
                max_turns=self.max_turns,
                max_concurrency=self.max_concurrency,
                seats=self.seats,
                trace_calls=self.trace_calls,
            )
            yield tracker, ctx
        finally:
            self._loop = self._wake = self._running_phase = self._current = self._tracker = self._checking = None
            self._one_turn = False
            self._pause_requested = self._cancel_requested = self._pausing_between_calls = False

    def _check_state_matches_scenario(self, state: ScenarioState) -> None:
        if self.scenario is None:
            return
        in_state = [a.short_name for a in state.actors]
        in_scenario = [a.short_name for a in self.scenario.actors]
        if sorted(in_state) != sorted(in_scenario):
            raise ValueError(f"the run's actors {in_state} are not the scenario's {in_scenario}: resume it with the scenario it started with")

    async def _execute(self, state: ScenarioState, tracker: CostTracker, ctx: PhaseContext) -> ScenarioState:
        # A RUNNING state is one whose process died mid-run: it resumes like any other stop.
        resumed = state.status is not ScenarioStatus.CREATED
        self._current = state.with_started()
        try:
            await self._announce(
                EventType.SCENARIO_RESUMED if resumed else EventType.SCENARIO_STARTED,
                self._current,
                provider=self.provider.name,
                credit_limit=self.credit_limit,
            )
            while self.max_turns is None or self._current.turn < self.max_turns:
                await self._play_turn(ctx, tracker)
            final = self._booked(tracker).with_status(ScenarioStatus.COMPLETED)
        except RunStop as stop:
            final = self._booked(tracker).with_status(stop.status, reason=stop.reason, error=stop.error)
        except Exception as exc:  # noqa: BLE001 - e.g. a save that fails: the run fails, the caller gets a state
            logger.exception("run %s failed outside any phase", state.run_id)
            final = self._booked(tracker).with_status(ScenarioStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        except BaseException as exc:  # the caller's task cancelled, Ctrl-C: keep a resumable state, then go on
            interrupted = self._booked(tracker).with_status(ScenarioStatus.PAUSED, reason=f"interrupted ({type(exc).__name__})")
            await asyncio.shield(self._finish(interrupted))
            raise
        await self._finish(final)
        return final

    def _booked(self, tracker: CostTracker) -> ScenarioState:
        """The current state with every call paid so far in its ledger."""
        assert self._current is not None
        self._current = self._current.with_costs(tracker.take_records())
        return self._current

    async def _play_turn(self, ctx: PhaseContext, tracker: CostTracker) -> None:
        assert self._current is not None
        turn = self._current.current_turn
        self._check_requests()
        if not self._current.completed_phases:
            await self._check_credit_limit(tracker, turn - 1)  # a run halted at its limit, resumed without more room
            await self._emit(EventType.TURN_STARTED, {"turn": turn})
        self._checking = self._start_checks(ctx)
        try:
            for kind, phase in list(self._phases.items()):
                if self._checking is not None and kind not in _ALONGSIDE_CHECKS:
                    await self._settle_checks(tracker)  # before the decisions: a halting finding stops them
                if kind in self._current.completed_phases:
                    continue
                if kind is PhaseType.VALIDATION and self._defers(phase, turn):
                    continue  # played alongside the next turn's talks
                self._check_requests()
                await self._run_phase(kind, phase, ctx, tracker)
            if self._checking is not None:
                await self._settle_checks(tracker)
        except RunStop as stop:
            if self._checking is not None:  # a pause or a halt of this turn: the checks asked are answered and kept
                ended = await self._settle_checks(tracker, judge=False)
                # A halting finding outranks a pause or a wait: once every check is recorded, a resume would not
                # ask them again, so the halt must be taken now or never.
                if isinstance(ended, HaltRequested) and stop.status in (ScenarioStatus.PAUSED,
                                                                        ScenarioStatus.WAITING_FOR_HUMAN):
                    raise RunStop(ScenarioStatus.HALTED, reason=str(ended)) from stop
            raise
        finally:
            if self._checking is not None:  # cancelled, or a failure: the checks stop at once
                await self._stop_checks(tracker)
        self._current = self._current.with_turn(turn)
        await self._emit(EventType.TURN_COMPLETED, {"turn": turn, "total_cost": self._current.total_cost})
        if self.persistence is not None:
            await save_state(self.persistence, self._current, self.event_bus)
        self._check_end_condition()
        await self._check_credit_limit(tracker, turn)

    async def _check_credit_limit(self, tracker: CostTracker, turn: int) -> None:
        """A run whose spending has reached its limit stops at the end of `turn` (or before the next turn begins,
        when it is resumed without more room): no call could fit any more, and what phases book themselves
        (`state.with_cost`) is only known once they have spent it."""
        if self.credit_limit is None or tracker.spent < self.credit_limit * (1 - 1e-9):
            return
        if self.max_turns is not None and turn >= self.max_turns:
            return  # the run is over anyway
        reason = (f"credit limit ${self.credit_limit:.4f} reached: ${tracker.spent:.4f} spent by the end of turn {turn}; "
                  "resume with a higher limit to continue")
        await self.event_bus.emit(EventType.CREDIT_LIMIT_EXCEEDED, {"spent": tracker.spent, "limit": self.credit_limit,
                                  "turn": turn, "reason": reason}, run_id=tracker.run_id, source="orchestrator")
        raise RunStop(ScenarioStatus.HALTED, reason=reason)

    def _defers(self, phase: AnyPhase, turn: int) -> bool:
        """Whether `phase` (the validation phase) leaves its checks of `turn` to play alongside the next turn."""
        assert self._current is not None
        return (plays_alongside(phase) and self.scenario is not None and not self._ends_after(turn)
                and phase.pending(self._current, self.scenario))  # type: ignore[union-attr]

    def _ends_after(self, turn: int) -> bool:
        """Whether the run ends with `turn` (its last one, or the end condition holds on its metrics): no next
        turn for its checks to play alongside."""
        assert self._current is not None
        if self._one_turn or (self.max_turns is not None and turn >= self.max_turns):
            return True
        return self.end_condition is not None and self.end_condition.holds(turns=turn, metrics=self._metrics_of(turn))

    def _metrics_of(self, turn: int) -> dict[str, float]:
        assert self._current is not None
        return {m.name: float(m.value) for m in self._current.metrics
                if m.turn == turn and m.actor is None and isinstance(m.value, (int, float))}

    def _check_end_condition(self) -> None:
        """The scenario's end condition, over the metrics of the turn just completed: when it holds, the run is over."""
        assert self._current is not None
        if self.end_condition is None:
            return
        turn = self._current.turn
        values = self._metrics_of(turn)
        if self.end_condition.holds(turns=turn, metrics=values):
            shown = ", ".join(f"{name} = {values[name]:g}" for name in sorted(self.end_condition.names) if name in values)
            raise RunStop(ScenarioStatus.COMPLETED, reason=f"the end condition held after turn {turn}: "
                                                    f"{self.end_condition.text}" + (f" ({shown})" if shown else ""))

    def _check_requests(self) -> None:
        if self._cancel_requested:
            raise RunStop(ScenarioStatus.CANCELLED, reason="cancelled on request")
        if self._pause_requested:
            raise RunStop(ScenarioStatus.PAUSED, reason=self._pause_reason)

    # ---- the last turn's checks, alongside this turn's talks (engine.turn_checks) -------------------------
    def _start_checks(self, ctx: PhaseContext) -> TurnChecks | None:
        assert self._current is not None
        phase = self._phases.get(PhaseType.VALIDATION)
        if phase is None or self.scenario is None:
            return None
        return TurnChecks.start(phase, self._current, self.scenario, ctx, emit=self._emit,
                                attempts=self.error_policy.max_attempts, wait_before_retry=self._wait_before_retry)

    async def _settle_checks(self, tracker: CostTracker, *, judge: bool = True) -> BaseException | None:
        """Wait for the last turn's checks and keep what they recorded; return what ended them early, if
        anything. Judged, a halting finding or their failure stops the run here, before this turn's decisions."""
        checks = self._checking
        assert checks is not None and self._current is not None
        try:
            ended = await checks.wait()  # still `_checking` meanwhile: a cancel request stops them
        finally:
            self._checking = None
            self._current = self._current.with_validations_of(checks.turn, checks.results())
            self._booked(tracker)
        if not judge:
            if ended is not None and not isinstance(ended, (HaltRequested, asyncio.CancelledError, CallHeld)):
                logger.warning("checks of turn %s stopped with the turn: %s: %s", checks.turn, type(ended).__name__, ended)
            return ended
        if ended is None:
            return None
        if isinstance(ended, asyncio.CancelledError):  # a cancel request interrupted them
            self._check_requests()
            raise RunStop(ScenarioStatus.PAUSED, reason=self._pause_reason)
        if isinstance(ended, (HaltRequested, CreditLimitExceeded)):
            raise RunStop(ScenarioStatus.HALTED, reason=str(ended))
        if isinstance(ended, CallHeld):
            raise RunStop(ScenarioStatus.PAUSED, reason=self._pause_reason)
        error = f"{type(ended).__name__}: {ended}"
        name = PhaseType.VALIDATION.value
        await self._emit(EventType.PHASE_FAILED, {"turn": checks.turn, "phase": name,
                                                  "attempt": self.error_policy.max_attempts, "error": error})
        await self._emit(EventType.TURN_FAILED, {"turn": checks.turn, "phase": name, "error": error})
        if isinstance(ended, LLMError):
            raise RunStop(ScenarioStatus.PAUSED, reason=f"turn {checks.turn}, phase {name}: {ended}")
        raise RunStop(ScenarioStatus.FAILED, error=f"turn {checks.turn}, phase {name}: {error}")

    async def _stop_checks(self, tracker: CostTracker) -> None:
        """This turn stopped while the checks were under way: they stop too, keeping what they paid for."""
        checks = self._checking
        assert checks is not None and self._current is not None
        try:
            await checks.cancel()
        finally:
            self._checking = None
            self._current = self._current.with_validations_of(checks.turn, checks.results())
            self._booked(tracker)

    # ---- events and the end ------------------------------------------------------------------------
    async def _emit(self, event_type: EventType, data: dict[str, Any]) -> None:
        assert self._current is not None
        await self.event_bus.emit(
            event_type, data, run_id=self._current.run_id, source="orchestrator", correlation_id=f"turn-{data['turn']}"
        )

    async def _announce(self, event_type: EventType, state: ScenarioState, **extra: Any) -> None:
        data = {"status": state.status.value, "turn": state.turn, "max_turns": self.max_turns, **extra}
        if state.halt_reason:
            data["reason"] = state.halt_reason
        if state.error:
            data["error"] = state.error
        if state.status is ScenarioStatus.WAITING_FOR_HUMAN:
            data["seats"] = [actor.short_name for actor in pending_human_seats(state)]
        await self.event_bus.emit(event_type, data, run_id=state.run_id, source="orchestrator")

    async def _finish(self, state: ScenarioState) -> None:
        if self.persistence is not None:
            try:
                await save_state(self.persistence, state, self.event_bus)
            except Exception:  # noqa: BLE001 - the run has ended either way; say so rather than lose the end
                logger.exception("could not save the final state of run %s", state.run_id)
        await self._announce(_END_EVENTS[state.status], state, total_cost=state.total_cost)


# PhaseService and standard_phases too: the V2 document imports them from its orchestrator's module.
__all__ = ["AnyPhase", "ErrorPolicy", "PhaseService", "ScenarioOrchestrator", "standard_phases"]
