"""Frozen records of a run: the world, the actors' decisions, messages, costs, metrics and QA findings.

`ScenarioState` is never changed in place: every `with_*` method returns a new state, so a phase is a
function from state to state, a paused or failed run keeps its last good state, and two runs can be
compared field by field. Totals (by actor, phase, turn) are computed from the records, never stored twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"
    # A human holds a seat and has not decided yet: the run is stored and no worker waits with it.
    WAITING_FOR_HUMAN = "waiting_for_human"


class PhaseName(StrEnum):
    SUMMARY = "summary"  # model-written summaries of turns older than the context window
    COMMUNICATION = "communication"
    DECISION = "decision"
    WORLD_UPDATE = "world_update"
    METRICS = "metrics"
    VALIDATION = "validation"


class CommunicationKind(StrEnum):
    BILATERAL = "bilateral"
    COALITION = "coalition"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class ExogenousOccurrence:
    """An outside event that shaped a turn's world update."""

    name: str
    kind: str  # scheduled, random, trend, conditional
    text: str


@dataclass(frozen=True, slots=True)
class WorldState:
    turn: int
    content: str
    exogenous_events: tuple[ExogenousOccurrence, ...] = ()


@dataclass(frozen=True, slots=True)
class ActorState:
    short_name: str
    name: str
    model: str
    control: str = "ai"  # "ai" or "human"


@dataclass(frozen=True, slots=True)
class Decision:
    turn: int
    actor: str
    long_term_goals: tuple[str, ...]
    short_term_priorities: tuple[str, ...]
    reasoning: str
    action: str
    model: str = ""
    provider: str = ""


@dataclass(frozen=True, slots=True)
class Communication:
    """One message. A bilateral or coalition negotiation is the messages sharing turn, kind and channel."""

    id: str
    turn: int
    kind: CommunicationKind
    sender: str
    recipients: tuple[str, ...]
    content: str
    in_reply_to: str | None = None

    @property
    def participants(self) -> tuple[str, ...]:
        return tuple(sorted({self.sender, *self.recipients}))

    def visible_to(self, actor: str) -> bool:
        return self.kind is CommunicationKind.PUBLIC or actor in self.participants


@dataclass(frozen=True, slots=True)
class CostRecord:
    """One model call in the ledger. `actor` is None for calls made for the whole world (world update)."""

    turn: int
    phase: PhaseName
    actor: str | None
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost: float
    cached: bool = False

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class MetricRecord:
    turn: int
    name: str
    value: float | str | bool | None
    actor: str | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class ValidationResult:
    turn: int
    check: str
    passed: bool
    severity: str
    actor: str | None = None
    issues: tuple[str, ...] = ()
    explanation: str = ""


@dataclass(frozen=True, slots=True)
class ContextSummary:
    """A model-written summary of turns `first_turn`..`last_turn`, read in place of their full text by prompts
    that cannot hold the whole history. Kept in the state so a resume or a branch never pays for it twice."""

    first_turn: int
    last_turn: int
    text: str

    @property
    def turn(self) -> int:
        return self.last_turn


@dataclass(frozen=True, slots=True)
class ScenarioState:
    """A run at one moment. `turn` is the last completed turn (0 before the first)."""

    run_id: str
    scenario_name: str
    actors: tuple[ActorState, ...]
    world_states: tuple[WorldState, ...]
    turn_duration: str = ""
    seed: int = 0
    status: RunStatus = RunStatus.PENDING
    turn: int = 0
    completed_phases: tuple[PhaseName, ...] = ()  # phases done within turn + 1, so a resume skips them
    # Steps within a phase that leave no record of their own (an actor who chose to say nothing), so a
    # resume does not pay for them twice. Cleared with each new turn.
    completed_steps: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = ()
    communications: tuple[Communication, ...] = ()
    costs: tuple[CostRecord, ...] = ()
    metrics: tuple[MetricRecord, ...] = ()
    validations: tuple[ValidationResult, ...] = ()
    summaries: tuple[ContextSummary, ...] = ()
    halt_reason: str | None = None
    error: str | None = None

    # ---- reading -------------------------------------------------------------------------------------
    @property
    def world(self) -> WorldState:
        return self.world_states[-1]

    @property
    def current_turn(self) -> int:
        """The turn being played (or about to be)."""
        return self.turn + 1

    def actor(self, short_name: str) -> ActorState:
        for actor in self.actors:
            if actor.short_name == short_name:
                return actor
        raise KeyError(f"no actor with short name {short_name!r}")

    def decisions_in(self, turn: int) -> dict[str, Decision]:
        return {d.actor: d for d in self.decisions if d.turn == turn}

    def communications_in(self, turn: int) -> tuple[Communication, ...]:
        return tuple(c for c in self.communications if c.turn == turn)

    def metrics_in(self, turn: int) -> tuple[MetricRecord, ...]:
        return tuple(m for m in self.metrics if m.turn == turn)

    def validations_in(self, turn: int) -> tuple[ValidationResult, ...]:
        return tuple(v for v in self.validations if v.turn == turn)

    @property
    def total_cost(self) -> float:
        return sum(record.cost for record in self.costs)

    @property
    def total_tokens(self) -> int:
        return sum(record.tokens for record in self.costs)

    def cost_by_actor(self) -> dict[str, float]:
        return _sum_by(self.costs, lambda r: r.actor or "world")

    def cost_by_phase(self) -> dict[str, float]:
        return _sum_by(self.costs, lambda r: r.phase.value)

    def cost_by_turn(self) -> dict[int, float]:
        return _sum_by(self.costs, lambda r: r.turn)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(sorted({record.provider for record in self.costs}))

    # ---- transformations -----------------------------------------------------------------------------
    def with_status(self, status: RunStatus, *, reason: str | None = None, error: str | None = None) -> ScenarioState:
        return replace(self, status=status, halt_reason=reason, error=error)

    def with_started(self) -> ScenarioState:
        return self.with_status(RunStatus.RUNNING)

    def with_world_state(self, world: WorldState) -> ScenarioState:
        kept = tuple(w for w in self.world_states if w.turn != world.turn)
        return replace(self, world_states=tuple(sorted((*kept, world), key=lambda w: w.turn)))

    def with_decision(self, decision: Decision) -> ScenarioState:
        kept = tuple(d for d in self.decisions if (d.turn, d.actor) != (decision.turn, decision.actor))
        return replace(self, decisions=(*kept, decision))

    def with_communication(self, communication: Communication) -> ScenarioState:
        return replace(self, communications=(*self.communications, communication))

    def with_costs(self, records: Iterable[CostRecord]) -> ScenarioState:
        return replace(self, costs=(*self.costs, *records))

    def with_metric(self, record: MetricRecord) -> ScenarioState:
        return replace(self, metrics=(*self.metrics, record))

    def with_validation(self, result: ValidationResult) -> ScenarioState:
        return replace(self, validations=(*self.validations, result))

    def with_summary(self, summary: ContextSummary) -> ScenarioState:
        kept = tuple(s for s in self.summaries if (s.first_turn, s.last_turn) != (summary.first_turn, summary.last_turn))
        return replace(self, summaries=(*kept, summary))

    def with_actor(self, actor: ActorState) -> ScenarioState:
        self.actor(actor.short_name)  # raises for an unknown actor
        return replace(self, actors=tuple(actor if a.short_name == actor.short_name else a for a in self.actors))

    def with_phase_completed(self, phase: PhaseName) -> ScenarioState:
        if phase in self.completed_phases:
            return self
        return replace(self, completed_phases=(*self.completed_phases, phase))

    def with_turn_sorted(self, field_name: str, turn: int, key: Any) -> ScenarioState:
        """Put a turn's records of one kind in a canonical order, so a turn played in pieces (a retry,
        a resume) ends with exactly the records of a turn played at once."""
        records = getattr(self, field_name)
        ordered = sorted((r for r in records if r.turn == turn), key=key)
        return replace(self, **{field_name: (*(r for r in records if r.turn != turn), *ordered)})

    def with_step_completed(self, step: str) -> ScenarioState:
        if step in self.completed_steps:
            return self
        return replace(self, completed_steps=(*self.completed_steps, step))

    def with_turn(self, turn: int) -> ScenarioState:
        """Mark `turn` as completed; the next turn starts with no phase or step done."""
        return replace(self, turn=turn, completed_phases=(), completed_steps=())

    def with_history_until(self, turn: int, *, context_window: int = 0) -> ScenarioState:
        """The run as it stood when `turn` had just completed: later turns' records and ledger lines dropped.
        What a branch at `turn` starts from. A summary of turns ..L is written in turn L + context_window + 1
        (when L leaves the window); one written after `turn` goes too, like its ledger line."""
        if not 0 <= turn <= self.turn:
            raise ValueError(f"turn {turn} is not a completed turn of this run (0 to {self.turn})")

        def upto(records: tuple) -> tuple:
            return tuple(r for r in records if r.turn <= turn)

        return replace(
            self,
            turn=turn,
            completed_phases=(),
            completed_steps=(),
            world_states=upto(self.world_states),
            decisions=upto(self.decisions),
            communications=upto(self.communications),
            costs=upto(self.costs),
            metrics=upto(self.metrics),
            validations=upto(self.validations),
            summaries=tuple(s for s in self.summaries if s.last_turn + context_window + 1 <= turn),
        )

    # ---- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ScenarioState:
        return _from_json(cls, raw)


def _sum_by(records: Iterable[CostRecord], key: Any) -> dict:
    totals: dict = defaultdict(float)
    for record in records:
        totals[key(record)] += record.cost
    return dict(totals)


# Which nested record type each tuple field holds, for from_dict.
_NESTED: dict[tuple[type, str], type] = {
    (ScenarioState, "actors"): ActorState,
    (ScenarioState, "world_states"): WorldState,
    (ScenarioState, "decisions"): Decision,
    (ScenarioState, "communications"): Communication,
    (ScenarioState, "costs"): CostRecord,
    (ScenarioState, "metrics"): MetricRecord,
    (ScenarioState, "validations"): ValidationResult,
    (ScenarioState, "summaries"): ContextSummary,
    (WorldState, "exogenous_events"): ExogenousOccurrence,
}
_ENUMS: dict[tuple[type, str], type] = {
    (ScenarioState, "status"): RunStatus,
    (ScenarioState, "completed_phases"): PhaseName,
    (Communication, "kind"): CommunicationKind,
    (CostRecord, "phase"): PhaseName,
}


def as_dict(record: Any) -> Any:
    """Any state record (or tuple of them) as plain JSON values: the one serialisation events reuse."""
    return _to_json(record)


def _to_json(record: Any) -> Any:
    if isinstance(record, StrEnum):
        return record.value
    if isinstance(record, tuple):
        return [_to_json(item) for item in record]
    if hasattr(record, "__dataclass_fields__"):
        return {f.name: _to_json(getattr(record, f.name)) for f in fields(record)}
    return record


def _from_json(cls: type, raw: Mapping[str, Any]) -> Any:
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in raw:
            continue  # the dataclass default applies
        value = raw[f.name]
        nested = _NESTED.get((cls, f.name))
        enum = _ENUMS.get((cls, f.name))
        if nested is not None:
            value = tuple(_from_json(nested, item) for item in value)
        elif enum is not None:
            value = tuple(enum(v) for v in value) if isinstance(value, list) else enum(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


__all__ = [
    "ActorState",
    "Communication",
    "CommunicationKind",
    "ContextSummary",
    "CostRecord",
    "Decision",
    "ExogenousOccurrence",
    "MetricRecord",
    "PhaseName",
    "RunStatus",
    "ScenarioState",
    "ValidationResult",
    "WorldState",
    "as_dict",
]
