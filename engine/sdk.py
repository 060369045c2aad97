"""The small SDK: load a scenario, run it, follow it.

    from engine import Runner, Scenario
    scenario = Scenario.load("scenarios/library/ai-summit")
    runner = Runner()

    @runner.on("turn_complete")
    def show(event): print(event.data["turn"])

    result = runner.run(scenario, max_turns=3)
    print(result.turns, result.total_cost)

A run's result is its final `ScenarioState`: `turns`, `total_cost`, `status` and every record are on it.
"""

from __future__ import annotations

import asyncio
import difflib
import uuid
from pathlib import Path
from collections.abc import Callable, Mapping

from engine.events import WILDCARD, Event, EventBus, EventType
from engine.llm.offline import OfflineProvider
from engine.llm.provider import LLMProvider
from engine.orchestrator import ErrorPolicy, ScenarioOrchestrator, standard_phases
from engine.phases.persistence import StatePersistence
from engine.phases.registry import AnyPhase
from engine.scenario.folder import Scenario
from engine.seats import SeatDesk
from engine.state import ActorState, PhaseType, ScenarioState, WorldState

# The V2 document's short event names (`runner.on('turn_complete')`): a verb's stem for its past tense.
_SHORT_ENDINGS = {"_complete": "_completed", "_start": "_started", "_fail": "_failed", "_pause": "_paused",
                  "_resume": "_resumed", "_halt": "_halted", "_cancel": "_cancelled", "_record": "_recorded",
                  "_update": "_updated", "_save": "_saved", "_send": "_sent", "_cross": "_crossed", "_incur": "_incurred"}


def event_name(name: EventType | str) -> EventType | str:
    """An engine event by its name or the document's short form ("turn_complete" is "turn_completed"), or "*".
    An unknown name is refused with the closest ones: the runner only emits the engine's events."""
    if name == WILDCARD or isinstance(name, EventType):
        return name
    known = {event.value for event in EventType}
    if name in known:
        return EventType(name)
    for short, full in _SHORT_ENDINGS.items():
        if name.endswith(short) and name[: -len(short)] + full in known:
            return EventType(name[: -len(short)] + full)
    close = difflib.get_close_matches(name, sorted(known), n=3)
    raise ValueError(f"no engine event is called {name!r}" + (f"; did you mean {', '.join(close)}?" if close else
                     "; the names are EventType's values, e.g. turn_completed"))


def initial_state(scenario: Scenario, *, run_id: str | None = None, seed: int | None = None) -> ScenarioState:
    """Turn 0 of a new run: the initial world and the actors as the scenario defines them."""
    return ScenarioState(
        run_id=run_id or uuid.uuid4().hex,
        scenario_name=scenario.name,
        turn_duration=scenario.config.turn_duration,
        seed=scenario.config.seed if seed is None else seed,
        scenario_id=Path(scenario.source).name if scenario.source else "",
        actors=tuple(ActorState(short_name=a.short_name, name=a.name, model=a.llm_model, control=a.control)
                     for a in scenario.actors),
        world_states=(WorldState(turn=0, content=scenario.config.initial_world_state.strip()),),
    )


class Runner:
    """Runs scenarios with one provider, bus and (optional) persistence. `phases` adds phases to the standard
    turn or replaces some of them, by type (`{PhaseType.PERSISTENCE: Exporter()}`). With `trace_calls`, every
    answered model call is announced with what it was sent and answered (`model_called`, `engine.calls`)."""

    def __init__(
        self,
        *,
        provider: LLMProvider | None = None,
        bus: EventBus | None = None,
        persistence: StatePersistence | None = None,
        error_policy: ErrorPolicy | None = None,
        max_concurrency: int = 32,
        seats: SeatDesk | None = None,
        phases: Mapping[PhaseType, AnyPhase] | None = None,
        trace_calls: bool = False,
    ) -> None:
        self.phases = dict(phases or {})
        self.trace_calls = trace_calls  # announce each answered call with its prompt and answer (model_called)
        self.provider = provider
        self.seats = seats
        self.bus = bus or EventBus()
        self.persistence = persistence
        self.error_policy = error_policy
        self.max_concurrency = max_concurrency
        self.orchestrator: ScenarioOrchestrator | None = None

    def on(self, event_type: EventType | str) -> Callable[[Callable[[Event], object]], Callable[[Event], object]]:
        """Subscribe to an engine event by name, short name (`"turn_complete"`) or "*", as a decorator."""
        return self.bus.on(event_name(event_type))

    def orchestrator_for(self, scenario: Scenario, *, max_turns: int | None, credit_limit: float | None) -> ScenarioOrchestrator:
        orchestrator = ScenarioOrchestrator(
            scenario=scenario,
            provider=self.provider or OfflineProvider(scenario),
            bus=self.bus,
            max_turns=max_turns,
            credit_limit=credit_limit,
            persistence=self.persistence,
            error_policy=self.error_policy,
            max_concurrency=self.max_concurrency,
            phases=standard_phases(),
            seats=self.seats,
            trace_calls=self.trace_calls,
        )
        for kind, phase in self.phases.items():
            orchestrator.register_phase(kind, phase)
        return orchestrator

    async def run_async(
        self,
        scenario: Scenario,
        *,
        max_turns: int | None = None,
        credit_limit: float | None = None,
        seed: int | None = None,
        run_id: str | None = None,
        state: ScenarioState | None = None,
    ) -> ScenarioState:
        """Run a new scenario, or resume `state` (paused, halted or failed) to `max_turns`."""
        start = state or initial_state(scenario, run_id=run_id, seed=seed)
        self.orchestrator = self.orchestrator_for(scenario, max_turns=max_turns, credit_limit=credit_limit)
        return await self.orchestrator.execute(start)

    def run(self, scenario: Scenario, **options: object) -> ScenarioState:
        return asyncio.run(self.run_async(scenario, **options))  # type: ignore[arg-type]

    def pause(self) -> None:
        if self.orchestrator is not None:
            self.orchestrator.request_pause()

    def cancel(self) -> None:
        if self.orchestrator is not None:
            self.orchestrator.request_cancel()
