"""A turn's QA checks, played alongside the next turn's talks.

The checks read a turn's decisions and worlds and change nothing the next turn's summary and talks read, so
they need not be a dependent round of their own: the orchestrator starts them with the next turn and waits
for them before that turn's decisions, so a finding set to halt still stops the run before any decision is
made. A phase takes part by saying so (`alongside_next_turn`) and by telling from a state whether checks of its
turn are still to be asked (`pending(state, scenario)`): its records are what a resume goes by, so checks
stopped half-way (a pause, a crash) are asked again only where no answer was kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from engine.costs import CallHeld, CreditLimitExceeded
from engine.events import EventType
from engine.phases.base import HaltRequested, PhaseContext, start_phase
from engine.phases.registry import AnyPhase
from engine.scenario.folder import Scenario
from engine.state import PhaseType, ScenarioState, ValidationResult

logger = logging.getLogger(__name__)

Emit = Callable[[EventType, dict[str, Any]], Awaitable[None]]
NAME = PhaseType.VALIDATION.value


def plays_alongside(phase: AnyPhase) -> bool:
    return bool(getattr(phase, "alongside_next_turn", False)) and callable(getattr(phase, "pending", None))


@dataclass
class TurnChecks:
    """The checks of `turn` under way; `ctx.progress` holds what they have recorded so far."""

    turn: int
    checked: ScenarioState  # the state the checks started from: the results recorded before them included
    ctx: PhaseContext
    task: asyncio.Future[ScenarioState]

    @classmethod
    def start(cls, phase: AnyPhase, state: ScenarioState, scenario: Scenario, ctx: PhaseContext, *, emit: Emit,
              attempts: int, wait_before_retry: Callable[[int], Awaitable[None]]) -> TurnChecks | None:
        """The checks of the last turn `state` completed, started, if any is still to be asked."""
        if state.turn < 1 or not plays_alongside(phase):
            return None
        checked = replace(state, turn=state.turn - 1, completed_phases=(), completed_steps=())
        if not phase.pending(checked, scenario):  # type: ignore[union-attr]
            return None
        own = replace(ctx, progress=None)  # a progress of its own: the talks' phases checkpoint in `ctx`
        play = _play(phase, checked, own, emit=emit, attempts=attempts, wait_before_retry=wait_before_retry)
        return cls(checked.current_turn, checked, own, asyncio.ensure_future(play))

    def results(self) -> tuple[ValidationResult, ...]:
        """Every result of the checked turn: those recorded before (a resumed run's) and those asked since."""
        return (self.ctx.progress or self.checked).validations_in(self.turn)

    async def wait(self) -> BaseException | None:
        """Wait for the checks to end; what ended them early (None: every check ran). Should the task waiting
        be cancelled, the checks are cancelled with it and the cancellation goes on."""
        try:
            await asyncio.shield(self.task)
        except asyncio.CancelledError:
            waiting = asyncio.current_task()
            if not self.task.done() or (waiting is not None and waiting.cancelling()):
                await self.cancel()
                raise
        except Exception:  # noqa: BLE001 - returned below, for the orchestrator to judge
            pass
        return asyncio.CancelledError() if self.task.cancelled() else self.task.exception()

    async def cancel(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            waiting = asyncio.current_task()
            if waiting is not None and waiting.cancelling():
                raise  # the waiting task's own cancellation, not the checks'
        except Exception:  # noqa: BLE001 - the checks' own failure: they were being stopped anyway
            pass


async def _play(phase: AnyPhase, checked: ScenarioState, ctx: PhaseContext, *, emit: Emit, attempts: int,
                wait_before_retry: Callable[[int], Awaitable[None]]) -> ScenarioState:
    """The phase on the state of the turn it checks, tried as the error policy says (a retry asks only what is
    not answered yet). Its calls are booked by the orchestrator with the current turn's next phase."""
    turn = checked.current_turn
    for attempt in range(1, attempts + 1):
        await emit(EventType.PHASE_STARTED, {"turn": turn, "phase": NAME, "attempt": attempt})
        try:
            done = await start_phase(phase, ctx.progress or checked, ctx)
        except HaltRequested:
            await emit(EventType.PHASE_COMPLETED, {"turn": turn, "phase": NAME})  # its work is done; then the halt
            raise
        except (CreditLimitExceeded, CallHeld):
            raise
        except Exception as exc:
            if attempt >= attempts:
                raise
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("phase %s of turn %s failed (attempt %s): %s", NAME, turn, attempt, error)
            await emit(EventType.PHASE_FAILED, {"turn": turn, "phase": NAME, "attempt": attempt, "error": error})
            await wait_before_retry(attempt)
            continue
        ctx.progress = done
        await emit(EventType.PHASE_COMPLETED, {"turn": turn, "phase": NAME})
        return done
    raise AssertionError("unreachable: the last attempt returns or raises")
