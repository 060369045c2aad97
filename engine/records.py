"""The records a run is made of: the world each turn, the actors, their decisions, messages, ledger lines,
metrics, QA findings and summaries. Frozen: a record once made is never changed, so states can share them.

`engine.state` holds the state that gathers them (`ScenarioState`) and re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class PhaseType(StrEnum):
    """The phases of a turn, in the order they run. The standard turn has no coalition or persistence phase:
    those are slots for custom phases (`ScenarioOrchestrator.register_phase`); coalitions are negotiated in the
    communication phase and a state is saved after each turn."""

    SUMMARY = "summary"  # model-written summaries of turns older than the context window
    COMMUNICATION = "communication"
    COALITION = "coalition"
    DECISION = "decision"
    WORLD_UPDATE = "world_update"
    METRICS = "metrics"
    VALIDATION = "validation"
    PERSISTENCE = "persistence"


PhaseName = PhaseType  # the name scripts written before the V2 document's `PhaseType` import


# The ledger's actor for calls made for the whole world (world update, judged metrics, QA checks), in every cost
# breakdown: the engine's, the site's pages and API, the terminal's and the comparison's.
WORLD = "world"


class CommunicationKind(StrEnum):
    BILATERAL = "bilateral"
    COALITION = "coalition"
    PUBLIC = "public"


def utc_now() -> datetime:
    return datetime.now(UTC)


# Timestamps and metadata ride along with a record but are not part of what it says: two plays of the same turn
# (one at once, one resumed) are equal records, and records stay hashable.
def stamp_field(default_now: bool = False) -> Any:
    return field(default_factory=utc_now, compare=False) if default_now else field(default=None, compare=False)


def metadata_field() -> Any:
    return field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class ExogenousOccurrence:
    """An outside event that shaped a turn's world update."""

    name: str
    kind: str  # scheduled, random, trend, conditional
    text: str


@dataclass(frozen=True, slots=True)
class WorldState:
    turn: int
    content: str  # Markdown
    exogenous_events: tuple[ExogenousOccurrence, ...] = ()
    timestamp: datetime = stamp_field(default_now=True)
    metadata: Mapping[str, Any] = metadata_field()

    def with_content(self, content: str) -> WorldState:
        return replace(self, content=content, timestamp=utc_now())


@dataclass(frozen=True, slots=True, init=False)
class Decision:
    """What one actor decided in one turn. `goals` is the document's name for `long_term_goals`."""

    turn: int
    actor: str
    long_term_goals: tuple[str, ...]
    short_term_priorities: tuple[str, ...]
    reasoning: str
    action: str
    model: str
    provider: str
    timestamp: datetime | None = stamp_field()
    metadata: Mapping[str, Any] = metadata_field()

    def __init__(
        self,
        turn: int,
        actor: str,
        long_term_goals: Sequence[str] = (),
        short_term_priorities: Sequence[str] = (),
        reasoning: str = "",
        action: str = "",
        model: str = "",
        provider: str = "",
        timestamp: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        goals: Sequence[str] | None = None,
    ) -> None:
        if goals is not None:
            if long_term_goals and tuple(long_term_goals) != tuple(goals):
                raise ValueError("give a decision's goals once: `goals` and `long_term_goals` are the same field")
            long_term_goals = goals
        values = dict(turn=turn, actor=actor, long_term_goals=tuple(long_term_goals),
                      short_term_priorities=tuple(short_term_priorities), reasoning=reasoning, action=action,
                      model=model, provider=provider, timestamp=timestamp, metadata=dict(metadata or {}))
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def goals(self) -> tuple[str, ...]:
        return self.long_term_goals


@dataclass(frozen=True, slots=True)
class ActorState:
    """An actor of a run. `current_goals` and `recent_decisions` (the last five) are kept by `with_decision` for
    code that follows one actor; a run's state keeps every decision once, in `ScenarioState.decisions`."""

    short_name: str
    name: str
    model: str
    control: str = "ai"  # "ai" or "human"
    current_goals: tuple[str, ...] = ()
    recent_decisions: tuple[Decision, ...] = ()
    private_information: str = ""
    metadata: Mapping[str, Any] = metadata_field()

    def with_decision(self, decision: Decision) -> ActorState:
        return replace(self, recent_decisions=(*self.recent_decisions, decision)[-RECENT_DECISIONS:],
                       current_goals=decision.goals)


RECENT_DECISIONS = 5


@dataclass(frozen=True, slots=True, init=False)
class Communication:
    """One message. A bilateral or coalition negotiation is the messages sharing turn, kind and channel.
    `type` is the document's name for `kind`."""

    id: str
    turn: int
    kind: CommunicationKind
    sender: str
    recipients: tuple[str, ...]
    content: str
    in_reply_to: str | None = None
    timestamp: datetime | None = stamp_field()
    metadata: Mapping[str, Any] = metadata_field()

    def __init__(
        self,
        id: str,  # noqa: A002 - the record's field name
        turn: int,
        kind: CommunicationKind | str | None = None,
        sender: str = "",
        recipients: Sequence[str] = (),
        content: str = "",
        in_reply_to: str | None = None,
        timestamp: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        type: CommunicationKind | str | None = None,  # noqa: A002 - the document's name
    ) -> None:
        if (kind is None) == (type is None):
            raise ValueError("give a message's kind once (bilateral, coalition or public), as `kind` or `type`")
        values = dict(id=id, turn=turn, kind=CommunicationKind(kind if kind is not None else type), sender=sender,
                      recipients=tuple(recipients), content=content, in_reply_to=in_reply_to, timestamp=timestamp,
                      metadata=dict(metadata or {}))
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def type(self) -> CommunicationKind:
        return self.kind

    @property
    def participants(self) -> tuple[str, ...]:
        return tuple(sorted({self.sender, *self.recipients}))

    def visible_to(self, actor: str) -> bool:
        return self.kind is CommunicationKind.PUBLIC or actor in self.participants


@dataclass(frozen=True, slots=True)
class CostRecord:
    """One model call in the ledger. `actor` is None for calls made for the whole world (world update).
    `phase` may be given by name; `turn` 0 in a record a custom phase books means the turn being played."""

    turn: int = 0
    phase: PhaseType = None  # type: ignore[assignment] - required: checked below
    actor: str | None = None
    model: str = ""
    provider: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cached: bool = False
    timestamp: datetime | None = stamp_field()
    metadata: Mapping[str, Any] = metadata_field()

    def __post_init__(self) -> None:
        if not isinstance(self.phase, PhaseType):
            try:
                object.__setattr__(self, "phase", PhaseType(self.phase))
            except ValueError:
                raise ValueError(f"a cost record's phase is one of {', '.join(PhaseType)}, not {self.phase!r}") from None

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


class DecisionLog(tuple):
    """A run's decisions, in the order they were made. Also read by actor, as the V2 document's
    `decisions[actor]`: `state.decisions["upland"]` is that actor's latest decision."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for decision in reversed(self):
                if decision.actor == key:
                    return decision
            raise KeyError(key)
        return tuple.__getitem__(self, key)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return any(decision.actor == item for decision in self)
        return tuple.__contains__(self, item)

    def get(self, actor: str, default: Decision | None = None) -> Decision | None:
        try:
            return self[actor]
        except KeyError:
            return default
