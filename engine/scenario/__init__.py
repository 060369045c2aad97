"""Scenario folders: the pydantic schema, and the loader that reads and validates a folder with located errors."""

from engine.scenario.errors import LocatedError, ScenarioLoadError
from engine.scenario.folder import Scenario, load_scenario_folder
from engine.scenario.metrics import MetricDefinition, MetricsConfig
from engine.scenario.schema import ActorConfig, BackgroundDocument, ExogenousEventsConfig, ScenarioConfig, ValidationRules

__all__ = [
    "ActorConfig",
    "BackgroundDocument",
    "ExogenousEventsConfig",
    "LocatedError",
    "MetricDefinition",
    "MetricsConfig",
    "Scenario",
    "ScenarioConfig",
    "ScenarioLoadError",
    "ValidationRules",
    "load_scenario_folder",
]
