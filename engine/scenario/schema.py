"""Pydantic schemas for a scenario folder: scenario.yaml, actors, validation rules, exogenous events (metrics.yaml:
engine.scenario.metrics).

They accept what V1 users wrote (goals as a string or a list, V1's other names for settings such as
`num_turns`, `context_window`, `model` and `decision_style`, its communication switches, dict-form metrics, the
flat `exogenous_events:` list) and keep unknown keys instead of rejecting them, so an old folder loads unchanged
and exports back without losing anything. V1's names are read, the engine's are written.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from engine.scenario.base import OpenModel
from engine.scenario.conditions import ConditionError, parse_condition
from engine.scenario.v1_forms import V1_COMMUNICATION_SWITCHES, condition_length, from_parameters, length_in_turns, one_value_per_setting, shown, v1_communications, v1_problem


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


class RolesConfig(OpenModel):
    """Who takes part in the scenario's runs on a shared site besides whoever starts them, by Django group (a
    team's groups, not people): given on every run as it starts. A group the site does not have is skipped."""

    observer_view: Literal["full", "public"] = Field(
        "full", description="What observers see: everything, or only the world, public statements and actions.")
    facilitators: TextList
    observers: TextList
    players: dict[str, list[str]] = Field(default_factory=dict, description="A group's seats: group name -> actor short names.")


class ScenarioConfig(OpenModel):
    """scenario.yaml. Older names are accepted: `num_turns`, `max_turns` or `scenario_length` for `turns`,
    `parameters: {max_turns, turn_duration}`, `context_window` for `context_window_size`, and V1's communication
    switches (`enable_bilateral_communication`, `enable_coalition_formation`, `enable_public_statements`,
    `communication_types`, `max_communications_per_turn`) for features.communications."""

    v1_keys: ClassVar[tuple[str, ...]] = (*V1_COMMUNICATION_SWITCHES, "communication_types", "parameters")

    name: str = Field(min_length=1)
    description: str = ""
    system_prompt: str = ""
    initial_world_state: str = Field(min_length=1)
    turns: int = Field(ge=1, le=1000, validation_alias=AliasChoices("turns", "num_turns", "max_turns", "scenario_length"))
    turn_duration: str = "1 turn"
    world_state_model: str = "openai/gpt-4o-mini"
    actors: list[str] = Field(default_factory=list, description="Actor file names (without .yaml) in order.")
    context_window_size: int = Field(3, ge=0, validation_alias=AliasChoices("context_window_size", "context_window"))
    credit_limit: float | None = Field(None, gt=0, allow_inf_nan=False, description="Default credit limit in USD.")
    seed: int = 0
    features: Features = Field(default_factory=Features)
    # The run ends once this holds after a turn (engine.scenario.conditions), `turns` being its cap.
    end_condition: str | None = None
    roles: RolesConfig = Field(default_factory=RolesConfig)

    @model_validator(mode="before")
    @classmethod
    def _v1_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = condition_length(from_parameters(dict(data)))
        length = data.get("scenario_length")
        if isinstance(length, dict) and "turns" in length:
            data["scenario_length"] = length["turns"]
        data = one_value_per_setting(cls, data, read={"scenario_length": length_in_turns})
        return v1_communications(data)

    @field_validator("end_condition")
    @classmethod
    def _condition_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_condition(value)
            except ConditionError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("turn_duration", mode="before")
    @classmethod
    def _duration_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value


# ---- actors/*.yaml ---------------------------------------------------------------------------------------
SHORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Short names name files (`<short_name>-NNN.md`) and cost lines: these would collide with the run's own.
RESERVED_SHORT_NAMES = {"world", "world-state", "communications", "validation", "summary", "state"}


def _private_lines(value: Any) -> list[str]:
    """Private information as items: a list's items, or text (one item, or one per '-' bullet line)."""
    if value is None:
        return []
    if isinstance(value, str):
        lines = [line.strip() for line in value.splitlines() if line.strip()]
        if lines and all(line.startswith(("-", "*")) for line in lines):
            return [line[1:].strip() for line in lines]
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [str(item) for item in _as_list_of_text(value)]
    return [str(value)]


class ActorConfig(OpenModel):
    """actors/<name>.yaml. V1's names are accepted: `model` for `llm_model`, `decision_style` for
    `decision_making_style`, `long_term_goals` for `goals`; V1's top-level `private_information` (text or a list)
    is kept as it was written and joins information_access.private in `private_information`."""

    v1_keys: ClassVar[tuple[str, ...]] = ("private_information",)

    name: str = Field(min_length=1)
    short_name: str = Field(min_length=1, max_length=64)
    llm_model: str = Field("openai/gpt-4o-mini", validation_alias=AliasChoices("llm_model", "model"))
    system_prompt: str = ""
    description: str = ""
    goals: TextList = Field(default_factory=list, validation_alias=AliasChoices("goals", "long_term_goals"))
    constraints: TextList
    expertise: str | dict[str, Any] | list[Any] | None = None
    decision_making_style: str = Field("", validation_alias=AliasChoices("decision_making_style", "decision_style"))
    information_access: dict[str, Any] | None = None
    control: Literal["ai", "human"] = "ai"

    @model_validator(mode="before")
    @classmethod
    def _v1_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        private = data.get("private_information")
        if private is not None and not isinstance(private, (str, list)):
            raise v1_problem(("private_information",), f"expected text or a list of text, got {shown(private)}")
        return one_value_per_setting(cls, data, read={"goals": _as_list_of_text, "long_term_goals": _as_list_of_text})

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
        """information_access.private, then V1's top-level private_information, without repeats."""
        private = (self.information_access or {}).get("private") or []
        items = [str(item) for item in private] if isinstance(private, list) else [str(private)]
        items += _private_lines((self.model_extra or {}).get("private_information"))
        return list(dict.fromkeys(items))

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


_V1_CONDITION = re.compile(r"^\s*(>=|<=|==|!=|=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
V1_UNTIL = 999  # V1's last turn for an event without a turn_range


class V1Event(OpenModel):
    """One item of V1's flat `exogenous_events:` list; `type` says which kind (scheduled when not given)."""

    type: Literal["scheduled", "random", "conditional", "trend"] = "scheduled"
    name: str = Field(min_length=1)
    description: str = ""
    turn: int | None = Field(None, ge=1, description="scheduled: the turn it happens on")
    probability: float = Field(0.0, ge=0, le=1, description="random: the chance each turn")
    turn_range: TurnRange | None = None
    frequency: int = Field(1, ge=1, description="trend: every this many turns")
    conditions: dict[str, str] = Field(default_factory=dict, description="conditional: metric name -> '>= 7'")
    once: bool = True

    @field_validator("conditions")
    @classmethod
    def _readable_conditions(cls, value: dict[str, str]) -> dict[str, str]:
        for metric, condition in value.items():
            if not _V1_CONDITION.match(condition):
                raise ValueError(f"{metric}: {condition!r} is not a condition; write an operator and a number, "
                                 "e.g. '>= 7' or '< 5'")
        return value

    @model_validator(mode="after")
    def _complete(self) -> V1Event:
        if self.type == "scheduled" and self.turn is None:
            raise ValueError("a scheduled event needs `turn:` (the turn it happens on)")
        if self.type == "conditional" and not self.conditions:
            raise ValueError("a conditional event needs `conditions:` (metric name: '>= 7')")
        return self

    def to_engine(self) -> tuple[str, dict[str, Any]]:
        """(the ExogenousEventsConfig list it belongs in, the event in the engine's form)."""
        extra = dict(self.model_extra or {})
        common = {**extra, "name": self.name, "description": self.description}
        if self.type == "scheduled":
            return "scheduled_events", {**common, "schedule": {"turns": [self.turn]}, "effect": self.description}
        if self.type == "random":
            return "random_events", {**common, "probability": self.probability, "turn_range": self.turn_range,
                                     "effect": self.description, "once": self.once}
        first, last = self.turn_range or (1, V1_UNTIL)
        if self.type == "trend":
            if self.frequency == 1:
                ranges = [(first, last)]
            else:  # every `frequency` turns from the first: one single-turn effect for each of those turns
                ranges = [(turn, turn) for turn in range(first, min(last, 1000) + 1, self.frequency)]
            effects = [{"turn_range": turn_range, "description": self.description} for turn_range in ranges]
            return "trends", {**common, "probability_per_turn": 1.0, "effects": effects}
        conditions = []
        for metric, condition in self.conditions.items():
            match = _V1_CONDITION.match(condition)
            assert match is not None  # checked by _readable_conditions
            operator = "==" if match.group(1) == "=" else match.group(1)
            conditions.append({"type": "metrics", "metric": metric, "operator": operator,
                               "value": float(match.group(2))})
        event = {**common, "conditions": conditions, "effect": self.description, "once": self.once}
        if self.turn_range is not None:
            event["turn_range"] = list(self.turn_range)  # kept (unknown to ConditionalEvent); the loader warns
        return "conditional_events", event


class ExogenousEventsConfig(OpenModel):
    """exogenous-events.yaml: four lists by kind. V1's flat `exogenous_events:` list (each item with a `type`)
    is read into them, so it is written back in this form."""

    trends: list[TrendEvent] = Field(default_factory=list)
    random_events: list[RandomEvent] = Field(default_factory=list)
    conditional_events: list[ConditionalEvent] = Field(default_factory=list)
    scheduled_events: list[ScheduledEvent] = Field(default_factory=list)
    v1_events: list[V1Event] = Field(
        default_factory=list, exclude=True, validation_alias=AliasChoices("exogenous_events", "v1_events"),
        description="V1's flat list, emptied into the four lists above once read.",
    )

    @field_validator("v1_events", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _v1_events_by_kind(self) -> ExogenousEventsConfig:
        if not self.v1_events:
            return self
        for event in self.v1_events:
            section, data = event.to_engine()
            kind = {"trends": TrendEvent, "random_events": RandomEvent, "conditional_events": ConditionalEvent,
                    "scheduled_events": ScheduledEvent}[section]
            getattr(self, section).append(kind.model_validate(data))
            self.__pydantic_fields_set__.add(section)
        self.v1_events = []
        self.__pydantic_fields_set__.discard("v1_events")
        return self


# ---- the whole folder ------------------------------------------------------------------------------------
class BackgroundDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    text: str
