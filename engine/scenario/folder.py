"""A whole scenario folder, validated: `Scenario`, and `load_scenario_folder` (also `Scenario.load`), which reads
one with `engine.scenario.loader` and reports every problem with its file and line."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from engine.scenario.loader import read_scenario_folder
from engine.scenario.metrics import MetricDefinition, MetricsConfig
from engine.scenario.schema import ActorConfig, BackgroundDocument, ExogenousEventsConfig, ScenarioConfig, ValidationRules


class Scenario(BaseModel):
    """Everything a scenario folder says, validated. `Scenario.load(path)` reads one."""

    config: ScenarioConfig
    actors: list[ActorConfig]
    metrics: MetricsConfig | None = None
    validation: ValidationRules | None = None
    exogenous_events: ExogenousEventsConfig | None = None
    background: list[BackgroundDocument] = Field(default_factory=list)
    source: str | None = Field(None, description="The folder it was loaded from, if any.")
    warnings: list[str] = Field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        return load_scenario_folder(path)

    @property
    def name(self) -> str:
        return self.config.name

    def actor(self, short_name: str) -> ActorConfig:
        for actor in self.actors:
            if actor.short_name == short_name:
                return actor
        raise KeyError(f"no actor with short name {short_name!r}")

    @property
    def judge_model(self) -> str:
        """The model for QA checks and model-judged metrics: the validation model, else the world model."""
        return self.validation.validation_model if self.validation else self.config.world_state_model

    @property
    def metric_definitions(self) -> list[MetricDefinition]:
        return self.metrics.definitions if self.metrics else []

    @property
    def background_text(self) -> str:
        return "\n\n".join(f"## {doc.name}\n\n{doc.text.strip()}" for doc in self.background)


def load_scenario_folder(path: str | Path) -> Scenario:
    """Load and validate every file of a scenario folder; raise ScenarioLoadError listing all problems."""
    return Scenario(**read_scenario_folder(path))
