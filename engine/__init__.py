"""Scenario Lab's engine: plain Python, no web framework. The public SDK is what this module exports.

The exports are resolved on first use (PEP 562): importing one submodule such as `engine.scenario.schema`
runs this file, and eager re-exports would drag the orchestrator, every phase and the LLM providers into
each process that only needs a schema (every `manage.py` command's start-up among them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    "CostTracker": "engine.costs",
    "CreditLimitExceeded": "engine.costs",
    "Event": "engine.events",
    "EventBus": "engine.events",
    "EventType": "engine.events",
    "OfflineProvider": "engine.llm.offline",
    "LLMProvider": "engine.llm.provider",
    "LLMRequest": "engine.llm.provider",
    "LLMResponse": "engine.llm.provider",
    "ErrorPolicy": "engine.orchestrator",
    "ScenarioOrchestrator": "engine.orchestrator",
    "standard_phases": "engine.orchestrator",
    "CommunicationPhase": "engine.phases.communication",
    "DecisionPhase": "engine.phases.decision",
    "MetricsPhase": "engine.phases.metrics",
    "SummaryPhase": "engine.phases.summary",
    "ValidationPhase": "engine.phases.validation",
    "WorldUpdatePhase": "engine.phases.world_update",
    "FilesystemPersistence": "engine.phases.persistence",
    "StatePersistence": "engine.phases.persistence",
    "Scenario": "engine.scenario.folder",
    "Runner": "engine.sdk",
    "initial_state": "engine.sdk",
    "ActorState": "engine.state",
    "Communication": "engine.state",
    "CostRecord": "engine.state",
    "Decision": "engine.state",
    "MetricRecord": "engine.state",
    "PhaseType": "engine.state",
    "RunStatus": "engine.state",
    "ScenarioState": "engine.state",
    "ScenarioStatus": "engine.state",
    "WorldState": "engine.state",
    "get_event_bus": "engine.events",
    "PhaseService": "engine.phases.base",
}

__all__ = [  # the same names as _EXPORTS, written out for linters and `from engine import *`
    "ActorState",
    "Communication",
    "CommunicationPhase",
    "CostRecord",
    "CostTracker",
    "CreditLimitExceeded",
    "Decision",
    "DecisionPhase",
    "ErrorPolicy",
    "Event",
    "EventBus",
    "EventType",
    "FilesystemPersistence",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "MetricRecord",
    "MetricsPhase",
    "OfflineProvider",
    "PhaseService",
    "PhaseType",
    "RunStatus",
    "Runner",
    "Scenario",
    "ScenarioOrchestrator",
    "ScenarioState",
    "ScenarioStatus",
    "StatePersistence",
    "SummaryPhase",
    "ValidationPhase",
    "WorldState",
    "WorldUpdatePhase",
    "get_event_bus",
    "initial_state",
    "standard_phases",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    # __import__ rather than importlib.import_module: `python -X importtime` then shows what the name costs
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from engine.costs import CostTracker, CreditLimitExceeded
    from engine.events import Event, EventBus, EventType, get_event_bus
    from engine.llm.offline import OfflineProvider
    from engine.llm.provider import LLMProvider, LLMRequest, LLMResponse
    from engine.orchestrator import ErrorPolicy, ScenarioOrchestrator, standard_phases
    from engine.phases.base import PhaseService
    from engine.phases.communication import CommunicationPhase
    from engine.phases.decision import DecisionPhase
    from engine.phases.metrics import MetricsPhase
    from engine.phases.persistence import FilesystemPersistence, StatePersistence
    from engine.phases.summary import SummaryPhase
    from engine.phases.validation import ValidationPhase
    from engine.phases.world_update import WorldUpdatePhase
    from engine.scenario.folder import Scenario
    from engine.sdk import Runner, initial_state
    from engine.state import (
        ActorState,
        Communication,
        CostRecord,
        Decision,
        MetricRecord,
        PhaseType,
        RunStatus,
        ScenarioState,
        ScenarioStatus,
        WorldState,
    )
