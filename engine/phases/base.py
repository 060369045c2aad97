"""What every phase shares: the Phase protocol, the context it runs in, and how it stops a turn."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from engine.costs import CostTracker, CreditLimitExceeded
from engine.events import Event, EventBus, EventType
from engine.calls import REASKED, UNUSABLE, USED, call_trace
from engine.llm.parsing import json_schema_for, parse_structured_noted, validate_structured
from engine.llm.provider import CallPurpose, LLMRequest, LLMResponse, Message, StructuredOutputError
from engine.scenario.folder import Scenario
from engine.seats import SeatDesk, StateSeats
from engine.state import PhaseType, ScenarioState
from engine.token_budget import MESSAGE_OVERHEAD_TOKENS, estimate_tokens, prompt_budget, request_tokens, scenario_context_length, shorten

logger = logging.getLogger(__name__)
MAX_REASKS = 2  # after the first answer, how often a model is shown its mistake and asked again
REASK_NOTE = "That answer could not be used: {error}. Answer again with only a JSON object that matches the schema."
REASK_ERROR_TOKENS = 150  # the most of a re-ask the error may take (pydantic's can quote a whole answer)
REASK_ANSWER_TOKENS = 2000  # the most of the failed answer shown again
T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")


class HaltRequested(Exception):
    """A phase asks to stop the run (a fatal validation finding, a critical metric): status HALTED."""


@dataclass
class PhaseContext:
    """Everything a phase may use. Phases never call a provider directly: `llm` books every call."""

    scenario: Scenario
    llm: CostTracker
    bus: EventBus
    run_id: str
    seed: int
    max_turns: int | None = None  # the run's last turn, when it differs from the scenario's
    max_concurrency: int = 32
    seats: SeatDesk = field(default_factory=StateSeats)  # who holds each seat; a person's decisions
    # The phase's latest consistent state. However a phase ends (an error, a cancel, the caller's
    # Ctrl-C), the orchestrator keeps this, so work already paid for is never done twice.
    progress: ScenarioState | None = None
    trace_calls: bool = False  # announce each answered call with its prompt and answer (`model_called`)

    def checkpoint(self, state: ScenarioState) -> ScenarioState:
        self.progress = state
        return state

    async def emit(self, event_type: EventType, data: Mapping[str, Any], *, turn: int | None = None) -> Event:
        correlation = f"turn-{turn}" if turn is not None else None
        return await self.bus.emit(event_type, data, run_id=self.run_id, source="engine", correlation_id=correlation)

    def request(
        self,
        *,
        purpose: CallPurpose,
        model: str,
        system: str,
        user: str,
        output: type[BaseModel] | None = None,
        max_tokens: int = 1200,
        temperature: float = 0.7,
    ) -> LLMRequest:
        return LLMRequest(
            messages=(Message("system", system), Message("user", user)),
            model=model,
            purpose=purpose,
            json_schema=json_schema_for(output) if output else None,
            schema_name=output.__name__ if output else None,
            temperature=temperature,
            seed=self.seed,
            max_tokens=max_tokens,
        )

    async def complete_text(self, request: LLMRequest) -> LLMResponse:
        """Ask for prose (a world, a summary): the answer is used as written; an empty one is not (the phase
        fails and is tried again)."""
        response = await self.llm.complete(request)
        if response.text.strip():
            await self.trace(request, response)
        else:
            await self.trace(request, response, outcome=UNUSABLE, error="an empty answer")
        return response

    async def complete_parsed(self, request: LLMRequest, read: Callable[[LLMResponse], R]) -> R:
        """Ask once and `read` the answer (None or a StructuredOutputError when it holds nothing usable): for
        the judges (metrics, checks), which are not asked again."""
        response = await self.llm.complete(request)
        try:
            value = read(response)
        except StructuredOutputError as exc:
            await self.trace(request, response, outcome=UNUSABLE, error=str(exc))
            raise
        if value is None:
            await self.trace(request, response, outcome=UNUSABLE, error="nothing usable in the answer")
        else:
            await self.trace(request, response, parsed=value)
        return value

    async def complete_structured(self, request: LLMRequest, output: type[T]) -> tuple[T, LLMResponse]:
        """Ask, parse (repairing near-JSON), and re-ask with the error up to MAX_REASKS times. Every
        attempt goes through the cost tracker, so every attempt is in the ledger."""
        asked = request
        for attempt in range(MAX_REASKS + 1):
            response = await self.llm.complete(asked)
            try:
                if response.data is not None:
                    parsed, repair = validate_structured(response.data, output, raw_text=response.text), None
                else:
                    parsed, repair = parse_structured_noted(response.text, output)
            except StructuredOutputError as exc:
                self.llm.reject(asked)  # never replay this answer from a cache
                last = attempt == MAX_REASKS
                await self.trace(asked, response, attempt=attempt + 1, outcome=UNUSABLE if last else REASKED, error=str(exc))
                if last:
                    raise
                p = request.purpose
                logger.info("re-asking %s for %s (turn %s): %s", p.task, p.actor or "the world", p.turn, exc)
                asked = self.reask(request, response.text, str(exc))
            else:
                await self.trace(asked, response, attempt=attempt + 1, parsed=parsed, repair=repair)
                return parsed, response
        raise AssertionError("unreachable")

    async def trace(self, request: LLMRequest, response: LLMResponse, *, attempt: int = 1, outcome: str = USED,
                    parsed: Any = None, repair: str | None = None, error: str | None = None) -> None:
        """Announce an answered call with what it was sent and what became of its answer, if the run traces
        its calls."""
        if self.trace_calls:
            data = call_trace(request, response, attempt=attempt, outcome=outcome, parsed=parsed, repair=repair, error=error)
            await self.emit(EventType.MODEL_CALLED, data, turn=request.purpose.turn)

    def reask(self, request: LLMRequest, answer: str, error: str) -> LLMRequest:
        """`request` followed by the failed `answer` and what was wrong with it, within the model's budget:
        the error first (shortened), then as much of the answer's start as fits. With no room even for the
        error, `request` as it was (a plain retry). Each re-ask shows the latest answer only, so re-asks do
        not grow."""
        budget = prompt_budget(scenario_context_length(self.scenario, request.model), request.max_tokens)
        room = budget - request_tokens(request) - MESSAGE_OVERHEAD_TOKENS  # the note's message
        error_room = min(REASK_ERROR_TOKENS, room - estimate_tokens(REASK_NOTE.format(error="")) - 1)
        if error_room <= 0:
            logger.warning("no room in %s's budget to show %s its mistake; asking again as before", request.model, request.purpose.task)
            return request
        note = Message("user", REASK_NOTE.format(error=shorten(error, error_room)))
        shown = shorten(answer, min(REASK_ANSWER_TOKENS, room - estimate_tokens(note.content) - MESSAGE_OVERHEAD_TOKENS))
        failed = (Message("assistant", shown),) if shown.strip() else ()
        return dataclasses.replace(request, messages=(*request.messages, *failed, note))

    async def gather_limited(self, jobs: Iterable[Callable[[], Awaitable[R]]]) -> list[R | BaseException]:
        """Run jobs concurrently, at most `max_concurrency` at once; exceptions are returned, not raised."""
        limit = asyncio.Semaphore(max(1, self.max_concurrency))

        async def limited(job: Callable[[], Awaitable[R]]) -> R:
            async with limit:
                return await job()

        return await asyncio.gather(*(limited(job) for job in jobs), return_exceptions=True)


async def refresh_seats(state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
    """The state with each seat's control as the desk says now (a seat taken over or handed back mid-run),
    each change announced."""
    for actor in state.actors:
        control = await ctx.seats.control(state, actor.short_name)
        if control != actor.control:
            state = state.with_actor(dataclasses.replace(actor, control=control))
            await ctx.emit(EventType.SEAT_CONTROL_CHANGED,
                           {"actor": actor.short_name, "control": control, "reason": "changed while the run was going"},
                           turn=state.current_turn)
    return state


class Phase(Protocol):
    """The engine's phase: models are called through `ctx.llm`, the cost tracker."""

    name: PhaseType

    async def run(self, state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
        """Play this phase of turn `state.current_turn` and return the new state."""
        ...


@runtime_checkable
class PhaseService(Protocol):
    """The V2 document's phase: state in, new state out. Registered with its type
    (`ScenarioOrchestrator.register_phase(PhaseType.X, service)`); what it books with `state.with_cost` is
    counted against the credit limit like a model call."""

    async def execute(self, state: ScenarioState) -> ScenarioState: ...


def start_phase(phase: Phase | PhaseService, state: ScenarioState, ctx: PhaseContext) -> Awaitable[ScenarioState]:
    """The coroutine that plays `phase` on `state`, whichever of the two kinds it is."""
    run = getattr(phase, "run", None)
    if callable(run):
        return run(state, ctx)
    return phase.execute(state)  # type: ignore[union-attr]


def first_failure(results: Iterable[object]) -> BaseException | None:
    """The failure that decides how a phase ends: a credit-limit refusal outranks any other error."""
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        if isinstance(failure, CreditLimitExceeded):
            return failure
    return failures[0] if failures else None
