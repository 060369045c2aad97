"""The keys of `scenario-state.json` the reader uses, typed, so a damaged or edited file is refused with the
path of the key that is wrong (`world_state.actor_decisions.1.China: expected an object, got text`) rather than
failing later with a traceback, or storing what a run cannot hold (a negative turn, a message without text).

Keys the reader does not use are ignored: V1's totals and tables derived from other keys (`final_metrics`,
`channels_by_turn`, `costs_by_turn`), and whatever later versions add.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AllowInfNan, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from engine.state import (
    CommunicationKind,
    ContextSummary,
    CostRecord,
    ExogenousOccurrence,
    PhaseType,
    ScenarioStatus,
    ValidationResult,
)


class V1StateError(ValueError):
    """scenario-state.json cannot be turned into a run; the message names the key."""


def parse_time(value: str) -> datetime:
    """A time as V1 and this project write them (`datetime.isoformat()`; V1's are local, without a zone)."""
    return datetime.fromisoformat(value)


def _time(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # pydantic then says what it expected
    try:
        return parse_time(value)
    except ValueError:
        raise ValueError(f"expected a date and time such as 2025-01-31T12:00:00, got {_shown(value)}") from None


def _scalar(value: Any) -> Any:
    # Not a union of types: pydantic would turn the integer 2 into 2.0 on its way through `float | str`.
    if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValueError(f"expected a number, text, true or false, got {_shown(value)}")


def _not_negative(record: Any) -> Any:
    """The engine's records are dataclasses with plain `int` fields; turns and counts are never negative."""
    for name in ("turn", "first_turn", "last_turn", "input_tokens", "output_tokens"):
        value = getattr(record, name, 0)
        if value < 0:
            raise ValueError(f"{name}: expected 0 or more, got {value}")
    cost = getattr(record, "cost", 0.0)
    if not math.isfinite(cost) or cost < 0:
        raise ValueError(f"cost: expected a number of USD, 0 or more, got {cost}")
    return record


Turn = Annotated[int, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
Money = Annotated[float, Field(ge=0), AllowInfNan(False)]
Time = Annotated[datetime, BeforeValidator(_time)]
Scalar = Annotated[Any, AfterValidator(_scalar)]
Ledger = Annotated[CostRecord, AfterValidator(_not_negative)]
Finding = Annotated[ValidationResult, AfterValidator(_not_negative)]
Summary = Annotated[ContextSummary, AfterValidator(_not_negative)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- world_state -----------------------------------------------------------------------------------------
class DecisionEntry(_Part):
    """V1 wrote goals, reasoning, action, raw_response and tokens_used; this project adds the rest."""

    goals: str | None = None
    reasoning: str | None = None
    action: str | None = None
    raw_response: str | None = None
    tokens_used: Count | None = None
    short_name: str | None = None
    long_term_goals: list[str] | None = None
    short_term_priorities: list[str] | None = None
    model: str | None = None
    provider: str | None = None


class WorldSection(_Part):
    current_turn: Turn | None = None
    turn_duration: str | None = None
    scenario_name: str | None = None
    states: dict[Turn, str]
    actor_decisions: dict[Turn, dict[str, DecisionEntry]] | None = None
    exogenous_events: dict[Turn, list[ExogenousOccurrence]] | None = None


class ActorEntry(_Part):
    name: str = Field(min_length=1)
    llm_model: str | None = None
    control: Literal["ai", "human"] | None = None


# ---- the trackers --------------------------------------------------------------------------------------------
class CostLine(_Part):
    turn: Turn
    tokens: Count | None = None
    cost: Money | None = None


class ActorCosts(_Part):
    model: str | None = None
    turns: list[CostLine] = Field(default_factory=list)


class CostSection(_Part):
    records: list[Ledger] | None = None  # this project's ledger; V1 kept the two tables below
    costs_by_actor: dict[str, ActorCosts] | None = None
    world_state_costs: list[CostLine] | None = None


class MetricEntry(_Part):
    turn: Turn
    name: str
    value: Scalar = None
    actor: str | None = None
    source: str = ""


class MetricSection(_Part):
    records: list[MetricEntry] | None = None
    metrics_by_turn: dict[Turn, dict[str, Scalar]] | None = None


class Message(_Part):
    sender: str
    content: str
    id: str | None = Field(None, min_length=1)  # the rest: this project's files only
    sender_short_name: str | None = None
    recipients: list[str] | None = None
    in_reply_to: str | None = None
    position: Count | None = None


class Channel(_Part):
    channel_type: CommunicationKind = CommunicationKind.BILATERAL
    participants: list[str] = Field(default_factory=list)
    turn: Turn = 0
    messages: list[Message] = Field(default_factory=list)


class CommunicationSection(_Part):
    channels: dict[str, Channel] = Field(default_factory=dict)


# ---- execution_metadata ------------------------------------------------------------------------------------
class EngineSection(_Part):
    """This project's resume point and records V1 had no place for; absent from V1's own files."""

    run_id: str | None = None
    seed: int | None = None
    status: ScenarioStatus | None = None
    halt_reason: str | None = None
    error: str | None = None
    completed_phases: list[PhaseType] = Field(default_factory=list)
    completed_steps: list[str] = Field(default_factory=list)
    validation_results: list[Finding] = Field(default_factory=list)
    summaries: list[Summary] = Field(default_factory=list)
    turn_times: dict[Turn, Time] = Field(default_factory=dict)
    credit_limit: Annotated[float, Field(gt=0), AllowInfNan(False)] | None = None


class MetadataSection(_Part):
    started_at: Time | None = None
    last_updated: Time | None = None
    output_path: str | None = None
    branched_from: str | None = None
    branch_point: Turn | None = None
    engine: EngineSection | None = None


class StateDocument(_Part):
    scenario_name: str | None = None
    scenario_path: str | None = None
    status: str | None = None
    halt_reason: str | None = None
    current_turn: Turn | None = None
    total_turns: Count | None = None
    completed_turns: list[Turn] | None = None
    world_state: WorldSection
    actors: dict[str, ActorEntry]
    cost_tracker_state: CostSection | None = None
    metrics_tracker_state: MetricSection | None = None
    communication_manager_state: CommunicationSection | None = None
    execution_metadata: MetadataSection | None = None

    @property
    def engine(self) -> EngineSection | None:
        return self.execution_metadata.engine if self.execution_metadata else None


def parse_state_document(document: Any) -> StateDocument:
    """The document's keys typed and checked; V1StateError naming the first wrong key otherwise."""
    if not isinstance(document, dict):
        raise V1StateError("the file does not hold a JSON object")
    try:
        return StateDocument.model_validate(document)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise V1StateError(describe_problem(problems[0]) + more) from None


# ---- messages ----------------------------------------------------------------------------------------------
_EXPECTED = {
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dataclass_type": "an object",
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "datetime_type": "a date and time",
}


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return f"text ({value[:40] + '…' if len(value) > 40 else value!r})" if value else "empty text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def describe_problem(error: dict[str, Any]) -> str:
    """`world_state.states.x: the key is not a turn number (expected a whole number, got text ('x'))`."""
    location = [str(part) for part in error["loc"]]
    is_key = bool(location) and location[-1] == "[key]"
    if is_key:
        location.pop()
    kind, value, context = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        text = "missing; the key is required"
    elif kind in _EXPECTED:
        text = f"expected {_EXPECTED[kind]}, got {_shown(value)}"
    elif kind == "greater_than":
        text = f"expected more than {context.get('gt')}, got {_shown(value)}"
    elif kind == "greater_than_equal":
        text = f"expected {context.get('ge')} or more, got {_shown(value)}"
    elif kind == "string_too_short":
        text = "expected some text, got empty text"
    elif kind in ("enum", "literal_error"):
        text = f"expected {context.get('expected')}, got {_shown(value)}"
    else:
        text = str(error.get("msg", kind)).removeprefix("Value error, ")
    if is_key:
        text = f"the key is not a turn number ({text})"
    return f"{'.'.join(location) or 'the file'}: {text}"
