"""A run at one moment: `ScenarioState`, the status words and the state's JSON form.

`ScenarioState` is never changed in place: every `with_*` method returns a new state, so a phase is a
function from state to state, a paused or failed run keeps its last good state, and two runs can be
compared field by field. Totals (by actor, phase, turn) are computed from the records, never stored twice.
The records themselves are in `engine.records`; they are importable from here too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TextIO

from engine.event_types import EventType
from engine.records import (
    ActorState,
    Communication,
    CommunicationKind,
    ContextSummary,
    CostRecord,
    Decision,
    DecisionLog,
    ExogenousOccurrence,
    MetricRecord,
    PhaseName,
    PhaseType,
    ValidationResult,
    WORLD,
    WorldState,
    utc_now,
    stamp_field,
)


class ScenarioStatus(StrEnum):
    CREATED = "created"  # not started yet
    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"  # stopped by a rule: the credit limit, a critical metric, a fatal QA finding
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"
    # A human holds a seat and has not decided yet: the run is stored and no worker waits with it.
    WAITING_FOR_HUMAN = "waiting_for_human"
    PENDING = "created"  # the name CREATED had before the V2 document's; an alias, never listed

    @classmethod
    def _missing_(cls, value: object) -> ScenarioStatus | None:
        return cls.CREATED if value == "pending" else None  # states saved before the document's name was taken


RunStatus = ScenarioStatus  # the name scripts written before the V2 document's `ScenarioStatus` import

# The run's status once each lifecycle event has happened: what the orchestrator announces a stop with, and
# what a page following the events shows.
STATUS_AFTER: Mapping[EventType, ScenarioStatus] = {
    EventType.SCENARIO_STARTED: ScenarioStatus.RUNNING,
    EventType.SCENARIO_RESUMED: ScenarioStatus.RUNNING,
    EventType.SCENARIO_COMPLETED: ScenarioStatus.COMPLETED,
    EventType.SCENARIO_PAUSED: ScenarioStatus.PAUSED,
    EventType.SCENARIO_HALTED: ScenarioStatus.HALTED,
    EventType.SCENARIO_CANCELLED: ScenarioStatus.CANCELLED,
    EventType.SCENARIO_FAILED: ScenarioStatus.FAILED,
    EventType.SCENARIO_WAITING: ScenarioStatus.WAITING_FOR_HUMAN,
}


class Amount(float):
    """A sum of USD that may also be called: `state.total_cost` and the V2 document's `state.total_cost()` both
    give it."""

    __slots__ = ()

    def __call__(self) -> float:
        return float(self)


@dataclass(frozen=True, slots=True)
class ScenarioState:
    """A run at one moment. `turn` is the last completed turn (0 before the first)."""

    run_id: str
    scenario_name: str
    actors: tuple[ActorState, ...] = ()
    world_states: tuple[WorldState, ...] = (WorldState(turn=0, content=""),)
    turn_duration: str = ""
    seed: int = 0
    status: ScenarioStatus = ScenarioStatus.CREATED
    turn: int = 0
    completed_phases: tuple[PhaseType, ...] = ()  # phases done within turn + 1, so a resume skips them
    # Steps within a phase that leave no record of their own (an actor who chose to say nothing), so a
    # resume does not pay for them twice. Cleared with each new turn.
    completed_steps: tuple[str, ...] = ()
    decisions: DecisionLog = DecisionLog()
    communications: tuple[Communication, ...] = ()
    costs: tuple[CostRecord, ...] = ()
    metrics: tuple[MetricRecord, ...] = ()
    validations: tuple[ValidationResult, ...] = ()
    summaries: tuple[ContextSummary, ...] = ()
    halt_reason: str | None = None
    error: str | None = None
    # Where the run is and came from, not what it holds: the scenario's folder name where known (V1 files and the
    # site's rows keep it elsewhere), the phase in flight (None between turns) and when the run first started.
    scenario_id: str = field(default="", compare=False)
    current_phase: PhaseType | None = field(default=None, compare=False)
    started_at: datetime | None = stamp_field()

    def __post_init__(self) -> None:
        if type(self.decisions) is not DecisionLog:
            object.__setattr__(self, "decisions", DecisionLog(self.decisions))

    # ---- reading -------------------------------------------------------------------------------------
    @property
    def world_state(self) -> WorldState:
        return self.world_states[-1]

    @property
    def world(self) -> WorldState:
        """`world_state` under the name scripts written before the V2 document's use."""
        return self.world_states[-1]

    @property
    def current_turn(self) -> int:
        """The turn being played (or about to be)."""
        return self.turn + 1

    @property
    def turns(self) -> int:
        """The turns played: what the V2 document's run result calls `turns`."""
        return self.turn

    @property
    def state(self) -> ScenarioState:
        """The state itself: a run's result is its final state (`Runner().run(...).state` in the V2 document)."""
        return self

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
    def total_cost(self) -> Amount:
        return Amount(sum(record.cost for record in self.costs))

    @property
    def total_tokens(self) -> int:
        return sum(record.tokens for record in self.costs)

    def actor_cost(self, actor: str | None) -> float:
        return sum(record.cost for record in self.costs if record.actor == actor)

    def phase_cost(self, phase: PhaseType | str) -> float:
        return sum(record.cost for record in self.costs if record.phase == phase)

    def cost_by_actor(self) -> dict[str, float]:
        return _sum_by(self.costs, lambda r: r.actor or WORLD)

    def cost_by_phase(self) -> dict[str, float]:
        return _sum_by(self.costs, lambda r: r.phase.value)

    def cost_by_turn(self) -> dict[int, float]:
        return _sum_by(self.costs, lambda r: r.turn)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(sorted({record.provider for record in self.costs}))

    # ---- transformations -----------------------------------------------------------------------------
    def with_status(self, status: ScenarioStatus, *, reason: str | None = None, error: str | None = None) -> ScenarioState:
        return replace(self, status=status, halt_reason=reason, error=error)

    def with_started(self) -> ScenarioState:
        return replace(self, status=ScenarioStatus.RUNNING, halt_reason=None, error=None,
                       started_at=self.started_at or utc_now())

    def with_phase(self, phase: PhaseType | None) -> ScenarioState:
        return replace(self, current_phase=phase)

    def with_world_state(self, world: WorldState) -> ScenarioState:
        kept = tuple(w for w in self.world_states if w.turn != world.turn)
        return replace(self, world_states=tuple(sorted((*kept, world), key=lambda w: w.turn)))

    def with_decision(self, decision_or_actor: Decision | str, decision: Decision | None = None) -> ScenarioState:
        """Record a decision (replacing the same actor's in the same turn): `with_decision(decision)`, or the
        document's `with_decision(actor, decision)`."""
        if isinstance(decision_or_actor, str):
            if decision is None or decision.actor != decision_or_actor:
                raise ValueError(f"with_decision({decision_or_actor!r}, decision) needs that actor's decision, "
                                 f"not {decision.actor if decision else None!r}'s")
        else:
            decision = decision_or_actor
        kept = tuple(d for d in self.decisions if (d.turn, d.actor) != (decision.turn, decision.actor))
        return replace(self, decisions=DecisionLog((*kept, decision)))

    def with_communication(self, communication: Communication) -> ScenarioState:
        return replace(self, communications=(*self.communications, communication))

    def with_cost(self, record: CostRecord) -> ScenarioState:
        return self.with_costs((record,))

    def with_costs(self, records: Iterable[CostRecord]) -> ScenarioState:
        return replace(self, costs=(*self.costs, *records))

    def with_metric(self, record: MetricRecord) -> ScenarioState:
        return replace(self, metrics=(*self.metrics, record))

    def with_validation(self, result: ValidationResult) -> ScenarioState:
        return replace(self, validations=(*self.validations, result))

    def with_summary(self, summary: ContextSummary) -> ScenarioState:
        kept = tuple(s for s in self.summaries if (s.first_turn, s.last_turn) != (summary.first_turn, summary.last_turn))
        return replace(self, summaries=(*kept, summary))

    def with_actor(self, actor_or_name: ActorState | str, actor: ActorState | None = None) -> ScenarioState:
        """Replace an actor's record: `with_actor(actor)`. The document's `with_actor(short_name, actor)` also
        adds an actor the state does not have yet."""
        if isinstance(actor_or_name, str):
            if actor is None or actor.short_name != actor_or_name:
                raise ValueError(f"with_actor({actor_or_name!r}, actor) needs the actor whose short name that is")
            if all(a.short_name != actor.short_name for a in self.actors):
                return replace(self, actors=(*self.actors, actor))
        else:
            actor = actor_or_name
            self.actor(actor.short_name)  # raises for an unknown actor: adding one is said with its name
        return replace(self, actors=tuple(actor if a.short_name == actor.short_name else a for a in self.actors))

    def with_phase_completed(self, phase: PhaseType) -> ScenarioState:
        if phase in self.completed_phases:
            return self
        return replace(self, completed_phases=(*self.completed_phases, phase))

    def with_turn_sorted(self, field_name: str, turn: int, key: Any) -> ScenarioState:
        """Put a turn's records of one kind in a canonical order, so a turn played in pieces (a retry,
        a resume) ends with exactly the records of a turn played at once."""
        records = getattr(self, field_name)
        ordered = sorted((r for r in records if r.turn == turn), key=key)
        return replace(self, **{field_name: (*(r for r in records if r.turn != turn), *ordered)})

    def with_validations_of(self, turn: int, results: Iterable[ValidationResult]) -> ScenarioState:
        """`results` as the validation results of `turn`, in place of those the state holds (checks of a
        turn played apart from it, alongside the next one)."""
        return replace(self, validations=(*(v for v in self.validations if v.turn != turn), *results))

    def with_step_completed(self, step: str) -> ScenarioState:
        if step in self.completed_steps:
            return self
        return replace(self, completed_steps=(*self.completed_steps, step))

    def with_turn(self, turn: int) -> ScenarioState:
        """Mark `turn` as completed; the next turn starts with no phase or step done."""
        return replace(self, turn=turn, completed_phases=(), completed_steps=(), current_phase=None)

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
            current_phase=None,
            started_at=None,  # a branch is a run of its own, started when it is
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
    def to_dict(self, *, stamps: bool = True) -> dict[str, Any]:
        """The state as JSON values. Without `stamps`, only what the run says, not when or where it was: no
        timestamps, phase in flight or metadata, so two plays of the same run give the same dict (what `==`
        compares)."""
        return _to_json(self, stamps=stamps)

    def write_json(self, handle: TextIO) -> None:
        """Write `to_dict()` as JSON to an open file, record by record: the state is never copied whole into
        plain dicts and one string first (for a long run that copy was the largest thing a save held)."""
        json.dump(self, handle, indent=2, ensure_ascii=False, default=_shallow_json)

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
    (ActorState, "recent_decisions"): Decision,
}
_ENUMS: dict[tuple[type, str], type] = {
    (ScenarioState, "status"): ScenarioStatus,
    (ScenarioState, "completed_phases"): PhaseType,
    (ScenarioState, "current_phase"): PhaseType,
    (Communication, "kind"): CommunicationKind,
    (CostRecord, "phase"): PhaseType,
}


_DATETIMES = frozenset({"timestamp", "started_at"})


def as_dict(record: Any) -> Any:
    """Any state record (or tuple of them) as plain JSON values: the one serialisation events reuse."""
    return _to_json(record)


def _shallow_json(value: Any) -> Any:
    """One level of a record as JSON types, for json.dump's `default` (which encodes what this returns)."""
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not part of a state's JSON")


def _to_json(record: Any, *, stamps: bool = True) -> Any:
    if isinstance(record, StrEnum):
        return record.value
    if isinstance(record, tuple):
        return [_to_json(item, stamps=stamps) for item in record]
    if isinstance(record, datetime):
        return record.isoformat()
    if isinstance(record, Mapping):
        return {key: _to_json(value, stamps=stamps) for key, value in record.items()}
    if hasattr(record, "__dataclass_fields__"):
        return {f.name: _to_json(getattr(record, f.name), stamps=stamps) for f in fields(record) if stamps or f.compare}
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
        elif enum is not None and value is not None:
            value = tuple(enum(v) for v in value) if isinstance(value, list) else enum(value)
        elif f.name in _DATETIMES and isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


__all__ = [
    "ActorState",
    "Amount",
    "Communication",
    "CommunicationKind",
    "ContextSummary",
    "CostRecord",
    "Decision",
    "DecisionLog",
    "ExogenousOccurrence",
    "MetricRecord",
    "PhaseName",
    "PhaseType",
    "RunStatus",
    "ScenarioState",
    "ScenarioStatus",
    "ValidationResult",
    "WORLD",
    "WorldState",
    "as_dict",
]
