"""The small SDK: load a scenario, run it, follow it.

    from engine import Runner, Scenario
    scenario = Scenario.load("scenarios/library/ai-summit")
    runner = Runner()

    @runner.on("turn_completed")
    def show(event): print(event.data["turn"])

    state = runner.run(scenario, max_turns=3)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from engine.events import Event, EventBus, EventType
from engine.llm.offline import OfflineProvider
from engine.llm.provider import LLMProvider
from engine.orchestrator import ErrorPolicy, ScenarioOrchestrator, standard_phases
from engine.phases.persistence import StatePersistence
from engine.scenario.schema import Scenario
from engine.seats import SeatDesk
from engine.state import ActorState, ScenarioState, WorldState


def initial_state(scenario: Scenario, *, run_id: str | None = None, seed: int | None = None) -> ScenarioState:
    """Turn 0 of a new run: the initial world and the actors as the scenario defines them."""
    return ScenarioState(
        run_id=run_id or uuid.uuid4().hex,
        scenario_name=scenario.name,
        turn_duration=scenario.config.turn_duration,
        seed=scenario.config.seed if seed is None else seed,
        actors=tuple(ActorState(a.short_name, a.name, a.llm_model, a.control) for a in scenario.actors),
        world_states=(WorldState(turn=0, content=scenario.config.initial_world_state.strip()),),
    )


class Runner:
    """Runs scenarios with one provider, bus and (optional) persistence."""

    def __init__(
        self,
        *,
        provider: LLMProvider | None = None,
        bus: EventBus | None = None,
        persistence: StatePersistence | None = None,
        error_policy: ErrorPolicy | None = None,
        max_concurrency: int = 32,
        seats: SeatDesk | None = None,
    ) -> None:
        self.provider = provider
        self.seats = seats
        self.bus = bus or EventBus()
        self.persistence = persistence
        self.error_policy = error_policy
        self.max_concurrency = max_concurrency
        self.orchestrator: ScenarioOrchestrator | None = None

    def on(self, event_type: EventType | str) -> Callable[[Callable[[Event], object]], Callable[[Event], object]]:
        return self.bus.on(event_type)

    def orchestrator_for(self, scenario: Scenario, *, max_turns: int | None, credit_limit: float | None) -> ScenarioOrchestrator:
        return ScenarioOrchestrator(
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
        )

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
