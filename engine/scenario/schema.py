"""Pydantic schemas for a scenario folder: scenario.yaml, actors, metrics, validation rules, exogenous events.

They accept what V1 users wrote (goals as a string or a list, `decision_style` for `decision_making_style`,
dict-form metrics) and keep unknown keys instead of rejecting them, so an old folder loads unchanged and
exports back without losing anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)


class OpenModel(BaseModel):
    """Unknown keys are kept (and exported again), never fatal."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _as_list_of_text(value: Any) -> Any:
    """V1 wrote goals and constraints as a list or as one block of text with '-' bullets."""
    if value is None:
        return []
    if isinstance(value, str):
        lines = [line.strip() for line in value.splitlines() if line.strip()]
        return [line[1:].strip() if line.startswith(("-", "*")) else line for line in lines]
    if isinstance(value, list):
        # "- Budget: $10M" is a mapping to YAML but a line of text to the person who wrote it.
        return [
            "; ".join(f"{k}: {v}" for k, v in item.items()) if isinstance(item, dict) else item for item in value
        ]
    return value


TextList = Annotated[list[str], Field(default_factory=list)]


# ---- scenario.yaml ---------------------------------------------------------------------------------------
class Toggle(OpenModel):
    """A feature switch; V1 also wrote a bare `true`/`false` in its place."""

    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


class CommunicationSettings(Toggle):
    max_per_turn: int = Field(2, ge=0, le=20, description="Conversations each actor may start per turn.")
    bilateral: bool = True
    coalition: bool = True
    public: bool = True


class ContextManagement(Toggle):
    enabled: bool = False
    max_context_tokens: int | None = Field(None, gt=0)
    summarization_model: str | None = None


class Features(OpenModel):
    communications: CommunicationSettings = Field(default_factory=CommunicationSettings)
    exogenous_events: Toggle = Field(default_factory=Toggle)
    metrics_extraction: Toggle = Field(default_factory=Toggle)
    quality_assurance: Toggle = Field(default_factory=Toggle)
    context_management: ContextManagement = Field(default_factory=ContextManagement)


class ScenarioConfig(OpenModel):
    name: str = Field(min_length=1)
    description: str = ""
    system_prompt: str = ""
    initial_world_state: str = Field(min_length=1)
    turns: int = Field(ge=1, le=1000)
    turn_duration: str = "1 turn"
    world_state_model: str = "openai/gpt-4o-mini"
    actors: list[str] = Field(default_factory=list, description="Actor file names (without .yaml) in order.")
    context_window_size: int = Field(3, ge=0)
    credit_limit: float | None = Field(None, gt=0, allow_inf_nan=False, description="Default credit limit in USD.")
    seed: int = 0
    features: Features = Field(default_factory=Features)

    @field_validator("turn_duration", mode="before")
    @classmethod
    def _duration_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value


# ---- actors/*.yaml ---------------------------------------------------------------------------------------
SHORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Short names name files (`<short_name>-NNN.md`) and cost lines: these would collide with the run's own.
RESERVED_SHORT_NAMES = {"world", "world-state", "communications", "validation", "summary", "state"}


class ActorConfig(OpenModel):
    name: str = Field(min_length=1)
    short_name: str = Field(min_length=1, max_length=64)
    llm_model: str = "openai/gpt-4o-mini"
    system_prompt: str = ""
    description: str = ""
    goals: TextList
    constraints: TextList
    expertise: str | dict[str, Any] | list[Any] | None = None
    decision_making_style: str = Field("", validation_alias=AliasChoices("decision_making_style", "decision_style"))
    information_access: dict[str, Any] | None = None
    control: Literal["ai", "human"] = "ai"

    @field_validator("goals", "constraints", mode="before")
    @classmethod
    def _text_as_list(cls, value: Any) -> Any:
        return _as_list_of_text(value)

    @field_validator("short_name")
    @classmethod
    def _short_name_is_a_file_name(cls, value: str) -> str:
        if not SHORT_NAME.match(value):
            raise ValueError("use letters, digits, '-', '_' or '.', starting with a letter or digit")
        if value.lower() in RESERVED_SHORT_NAMES:
            raise ValueError(f"{value!r} is reserved for the run's own files; choose another short name")
        return value

    @property
    def private_information(self) -> list[str]:
        private = (self.information_access or {}).get("private") or []
        return [str(item) for item in private] if isinstance(private, list) else [str(private)]

    @property
    def expertise_text(self) -> str:
        """Expertise as prose, whichever of V1's shapes (text, mapping, list of mappings) was used."""
        value = self.expertise
        if value is None:
            return ""
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, dict):
            return "; ".join(f"{k}: {v}" for k, v in value.items())
        parts = []
        for item in value:
            parts.extend(f"{k}: {v}" for k, v in item.items()) if isinstance(item, dict) else parts.append(str(item))
        return "; ".join(parts)


# ---- metrics.yaml ----------------------------------------------------------------------------------------
class MetricExtraction(OpenModel):
    type: Literal["pattern", "keyword", "llm", "manual"]
    pattern: str | None = None
    keywords: list[str] = Field(default_factory=list)
    scoring: Literal["count", "presence", "density"] = "count"
    prompt: str | None = None
    model: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_what_its_type_needs(self) -> MetricExtraction:
        if self.type == "pattern" and not self.pattern:
            raise ValueError("a pattern extraction needs `pattern:` (a regular expression)")
        if self.type == "keyword" and not self.keywords:
            raise ValueError("a keyword extraction needs `keywords:` (a list of words or phrases)")
        if self.type == "llm" and not self.prompt:
            raise ValueError("an llm extraction needs `prompt:` (the question put to the model)")
        return self


class MetricThresholds(OpenModel):
    warning: float | None = None
    critical: float | None = None
    direction: Literal["above", "below"] = "above"
    halt_on_critical: bool = False


class MetricDefinition(OpenModel):
    name: str = Field(min_length=1)
    description: str = ""
    type: str = "continuous"
    range: tuple[float, float] | None = None
    unit: str = ""
    extraction: MetricExtraction
    actor_specific: bool = False
    actor: str | None = None
    thresholds: MetricThresholds | None = None


class LegacyMetricDefinition(OpenModel):
    """V1's dict form: `metrics: {name: {extraction_method: regex|manual, pattern: ...}}`."""

    description: str = ""
    type: str = "continuous"
    unit: str = ""
    extraction_method: Literal["regex", "pattern", "keyword", "llm", "manual"] = "manual"
    pattern: str | None = None
    keywords: list[str] = Field(default_factory=list)
    prompt: str | None = None
    actor_specific: bool = False
    actor: str | None = None

    @model_validator(mode="after")
    def _convertible(self) -> LegacyMetricDefinition:
        # Check now what `to_definition` needs, so a bad V1 metric fails at load rather than mid-run.
        kind = "pattern" if self.extraction_method == "regex" else self.extraction_method
        try:
            MetricExtraction(type=kind, pattern=self.pattern, keywords=self.keywords, prompt=self.prompt)
        except ValidationError as exc:
            raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
        return self

    def to_definition(self, name: str) -> MetricDefinition:
        kind = "pattern" if self.extraction_method == "regex" else self.extraction_method
        extraction = MetricExtraction(type=kind, pattern=self.pattern, keywords=self.keywords, prompt=self.prompt)
        return MetricDefinition(
            name=name,
            description=self.description,
            type=self.type,
            unit=self.unit,
            extraction=extraction,
            actor_specific=self.actor_specific,
            actor=self.actor,
        )


def _metrics_form(value: Any) -> str:
    return "legacy" if isinstance(value, dict) else "list"


class MetricsConfig(OpenModel):
    metrics: Annotated[
        Union[
            Annotated[list[MetricDefinition], Tag("list")],
            Annotated[dict[str, LegacyMetricDefinition], Tag("legacy")],
        ],
        Discriminator(_metrics_form),
    ] = Field(default_factory=list)

    @field_validator("metrics", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return [] if value is None else value  # `metrics:` with nothing under it

    @property
    def definitions(self) -> list[MetricDefinition]:
        if isinstance(self.metrics, dict):
            return [legacy.to_definition(name) for name, legacy in self.metrics.items()]
        return list(self.metrics)


# ---- validation-rules.yaml -------------------------------------------------------------------------------
Severity = Literal["low", "medium", "high", "critical"]
SeverityAction = Literal["log", "warn", "halt"]


class ValidationCheck(OpenModel):
    enabled: bool = True
    severity: Severity = "medium"
    description: str = ""
    prompt_template: str | None = None

    @field_validator("severity", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class ValidationReporting(OpenModel):
    verbosity: str = "standard"
    include_suggestions: bool = True
    halt_on_critical: bool = False


class ValidationRules(OpenModel):
    validation_model: str = "openai/gpt-4o-mini"
    checks: dict[str, ValidationCheck] = Field(default_factory=dict)
    run_after_each_turn: bool = True
    severity_thresholds: dict[str, SeverityAction] = Field(default_factory=dict)
    reporting: ValidationReporting = Field(default_factory=ValidationReporting)

    def action_for(self, severity: str) -> SeverityAction:
        """What a failed check of this severity does: log it, warn, or halt the run."""
        if severity in self.severity_thresholds:
            return self.severity_thresholds[severity]
        if severity == "critical" and self.reporting.halt_on_critical:
            return "halt"
        return "log" if severity == "low" else "warn"

    @property
    def enabled_checks(self) -> dict[str, ValidationCheck]:
        return {name: check for name, check in self.checks.items() if check.enabled}


# ---- exogenous-events.yaml -------------------------------------------------------------------------------
def _ordered_range(value: tuple[int, int]) -> tuple[int, int]:
    if value[0] > value[1]:
        raise ValueError(f"a turn range is [first, last]; {list(value)} ends before it starts")
    return value


TurnRange = Annotated[tuple[int, int], AfterValidator(_ordered_range)]


class Schedule(OpenModel):
    turns: list[int] = Field(min_length=1)


class ScheduledEvent(OpenModel):
    name: str
    description: str = ""
    schedule: Schedule
    effect: str


class RandomEvent(OpenModel):
    name: str
    description: str = ""
    probability: float = Field(ge=0, le=1)
    turn_range: TurnRange | None = None
    effect: str
    once: bool = Field(True, description="Happens at most once per run.")


class TrendEffect(OpenModel):
    turn_range: TurnRange
    description: str
    impact: str = ""


class TrendEvent(OpenModel):
    name: str
    description: str = ""
    probability_per_turn: float = Field(1.0, ge=0, le=1)
    effects: list[TrendEffect] = Field(min_length=1)


class EventCondition(OpenModel):
    type: Literal["world_state_contains", "metrics"]
    pattern: str | None = None
    sensitivity: str | None = None
    metric: str | None = None
    operator: Literal[">", "<", ">=", "<=", "==", "!="] = ">"
    value: float | None = None

    @model_validator(mode="after")
    def _complete(self) -> EventCondition:
        if self.type == "world_state_contains" and not self.pattern:
            raise ValueError("a world_state_contains condition needs `pattern:`")
        if self.type == "metrics" and (self.metric is None or self.value is None):
            raise ValueError("a metrics condition needs `metric:` and `value:`")
        for label, regex in (("pattern", self.pattern), ("sensitivity", self.sensitivity)):
            if regex:
                try:
                    re.compile(regex)
                except re.error as exc:
                    raise ValueError(f"`{label}` is not a valid regular expression: {exc}") from None
        return self


class ConditionalEvent(OpenModel):
    name: str
    description: str = ""
    conditions: list[EventCondition] = Field(min_length=1)
    effect: str
    once: bool = True


class ExogenousEventsConfig(OpenModel):
    trends: list[TrendEvent] = Field(default_factory=list)
    random_events: list[RandomEvent] = Field(default_factory=list)
    conditional_events: list[ConditionalEvent] = Field(default_factory=list)
    scheduled_events: list[ScheduledEvent] = Field(default_factory=list)


# ---- the whole folder ------------------------------------------------------------------------------------
class BackgroundDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    text: str


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
        from engine.scenario.loader import load_scenario_folder

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
