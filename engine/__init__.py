"""Scenario Lab's engine: plain Python, no web framework. The public SDK is what this module exports."""

from engine.costs import CostTracker, CreditLimitExceeded
from engine.events import Event, EventBus, EventType
from engine.llm.offline import OfflineProvider
from engine.llm.provider import LLMProvider, LLMRequest, LLMResponse
from engine.orchestrator import ErrorPolicy, ScenarioOrchestrator, standard_phases
from engine.phases.persistence import FilesystemPersistence, StatePersistence
from engine.scenario.schema import Scenario
from engine.sdk import Runner, initial_state
from engine.state import RunStatus, ScenarioState

__all__ = [
    "CostTracker",
    "CreditLimitExceeded",
    "ErrorPolicy",
    "Event",
    "EventBus",
    "EventType",
    "FilesystemPersistence",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "OfflineProvider",
    "Runner",
    "RunStatus",
    "Scenario",
    "ScenarioOrchestrator",
    "ScenarioState",
    "StatePersistence",
    "initial_state",
    "standard_phases",
]
