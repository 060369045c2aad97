"""Shared fixtures for the phase tests: a small three-actor scenario built in code, a context factory and
a scripted provider that answers with texts the test chooses.

`build_scenario()` is a plain function so the llm and estimate tests can build the same scenario.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from engine.costs import CostTracker
from engine.events import EventBus
from engine.llm.offline import OfflineProvider
from engine.llm.provider import LLMProvider, LLMRequest, LLMResponse, estimate_tokens
from engine.phases.base import PhaseContext
from engine.scenario.schema import ActorConfig, BackgroundDocument, ExogenousEventsConfig, ScenarioConfig, ValidationRules
from engine.scenario.folder import Scenario
from engine.scenario.metrics import MetricsConfig
from engine.sdk import initial_state
from engine.state import ScenarioState

RUN_ID = "run-phase-tests"
SEED = 7

WORLD = """\
# Lake Varn Water Compact: before the first session

Three parties meet in Kessel to share the water of Lake Varn after two dry summers.

## Status
- **Signatures:** 0 parties have signed the draft compact.
- **Open clauses:** 6 clauses remain unresolved.

## Open issues
- **Summer allocation:** how many cubic metres each party may draw in July and August.
- **Drought trigger:** at which lake level the emergency rules start.
- **Gauge monitoring:** who reads the gauges and publishes the readings.
"""

ACTORS = [
    {
        "name": "Upland Province",
        "short_name": "upland",
        "llm_model": "test/upland-model",
        "goals": ["Keep the dam under provincial control", "Secure repair funding for the spillway"],
        "constraints": ["Cannot cut hydropower output by more than a tenth"],
        "expertise": {"hydrology": "expert"},
        "decision_making_style": "Slow and legalistic.",
        "information_access": {"private": ["The spillway repair will cost 40 million crowns."]},
    },
    {
        "name": "Varn City",
        "short_name": "city",
        "llm_model": "test/city-model",
        "goals": ["Guarantee drinking water through August"],
        "constraints": ["The council must approve any payment"],
        "information_access": {"private": ["The city reservoir holds only nine days of supply."]},
    },
    {
        "name": "Growers' Cooperative",
        "short_name": "growers",
        "llm_model": "test/growers-model",
        "goals": ["Protect irrigation quotas for the orchards"],
        "constraints": ["Members vote on every concession"],
    },
]


def build_scenario(
    *,
    communications: Mapping[str, Any] | None = None,
    features: Mapping[str, Any] | None = None,
    metrics: list[dict] | None = None,
    validation: Mapping[str, Any] | None = None,
    exogenous: Mapping[str, Any] | None = None,
    background: list[BackgroundDocument] | None = None,
    **config: Any,
) -> Scenario:
    """The Lake Varn scenario; keyword arguments change the parts a test cares about."""
    all_features: dict[str, Any] = {"communications": {"max_per_turn": 2, **(communications or {})}}
    all_features.update(features or {})
    scenario_config = ScenarioConfig(
        **{
            "name": "Lake Varn Compact",
            "description": "Three parties share a shrinking lake.",
            "system_prompt": "You take part in a simulated water negotiation.",
            "initial_world_state": WORLD,
            "turns": 4,
            "turn_duration": "1 week",
            "world_state_model": "test/world-model",
            "actors": [a["short_name"] for a in ACTORS],
            "context_window_size": 2,
            "seed": SEED,
            "features": all_features,
            **config,
        }
    )
    return Scenario(
        config=scenario_config,
        actors=[ActorConfig(**actor) for actor in ACTORS],
        metrics=MetricsConfig(metrics=metrics) if metrics is not None else None,
        validation=ValidationRules(**validation) if validation is not None else None,
        exogenous_events=ExogenousEventsConfig(**exogenous) if exogenous is not None else None,
        background=background or [],
    )


Answer = str | Mapping[str, Any] | Callable[[LLMRequest], str]


class ScriptedProvider:
    """Answers each call with the text the test gave for its (task, actor) or its task; records requests.

    An answer may be a string, a dict (sent as JSON text, as a model would) or a function of the request.
    """

    name = "scripted"

    def __init__(self, answers: Mapping[Any, Answer], *, fallback: LLMProvider | None = None) -> None:
        self.answers = dict(answers)
        self.fallback = fallback
        self.requests: list[LLMRequest] = []

    def max_cost(self, request: LLMRequest) -> float:
        return 0.0

    def calls(self, task: str) -> list[LLMRequest]:
        return [r for r in self.requests if r.purpose.task == task]

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        purpose = request.purpose
        answer = self.answers.get((purpose.task, purpose.actor), self.answers.get(purpose.task))
        if answer is None:
            if self.fallback is None:
                raise AssertionError(f"no scripted answer for {purpose.task} / {purpose.actor}")
            return await self.fallback.complete(request)
        if callable(answer):
            answer = answer(request)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return LLMResponse(
            text=text,
            input_tokens=estimate_tokens(request.prompt_text),
            output_tokens=estimate_tokens(text),
            cost=0.0,
            model=request.model,
            provider=self.name,
        )


@pytest.fixture
def scenario() -> Scenario:
    return build_scenario()


@pytest.fixture
def state(scenario: Scenario) -> ScenarioState:
    return initial_state(scenario, run_id=RUN_ID, seed=SEED)


def make_context(
    scenario: Scenario,
    provider: LLMProvider | None = None,
    *,
    max_concurrency: int = 8,
    credit_limit: float | None = None,
) -> PhaseContext:
    """A fresh context: a cost tracker over `provider` (offline by default) and a bus that keeps history."""
    bus = EventBus(keep_history=True)
    tracker = CostTracker(
        provider=provider or OfflineProvider(scenario), bus=bus, run_id=RUN_ID, credit_limit=credit_limit
    )
    return PhaseContext(scenario=scenario, llm=tracker, bus=bus, run_id=RUN_ID, seed=SEED, max_concurrency=max_concurrency)


@pytest.fixture
def make_ctx(scenario: Scenario) -> Callable[..., PhaseContext]:
    """make_ctx(provider=None, scenario=<the fixture>, max_concurrency=8, credit_limit=None) -> PhaseContext."""

    def make(provider: LLMProvider | None = None, *, scenario: Scenario = scenario, **options: Any) -> PhaseContext:
        return make_context(scenario, provider, **options)

    return make
