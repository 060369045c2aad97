"""What one reader of a run may know: the one rule behind every player's and observer's view of a run.

A wargame's players each see what their actor may know, as the actor's prompts do: the world, public
statements, the messages their actor sent or received, their own private information, goals, reasoning and
decisions, and every actor's actions (their results are in the world). Another actor's private information,
goals, priorities and reasoning, the bilateral or coalition messages their actor was not part of, the QA
findings (whose judge read everything) and the model calls (their prompts and answers) stay hidden. An observer sees everything (`FULL`) or only what is
public (`PUBLIC`: a player of no actor).

The rule reads records, states and events alike, so pages, sockets, the API and downloads filter with it and
cannot disagree. An event outside a view keeps its seq as a `hidden` event with no content, so whoever follows
the stream sees no gap and learns nothing but that something happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from engine.event_types import EventType
from engine.state import (ActorState, Communication, CommunicationKind, Decision, ScenarioState,
                          ValidationResult)

HIDDEN = "hidden"  # the type of an event outside a view, which keeps its seq and nothing else
# The fields of a decision that show an actor's mind rather than what it did.
MIND_FIELDS = ("long_term_goals", "short_term_priorities", "reasoning")


@dataclass(frozen=True, slots=True)
class Viewpoint:
    """Whose knowledge a reader shares: every actor's (`actors` None), or only that of `actors` (none: the
    public's)."""

    actors: frozenset[str] | None = None

    @classmethod
    def of(cls, actors: Iterable[str]) -> Viewpoint:
        return cls(frozenset(actors))

    @property
    def full(self) -> bool:
        return self.actors is None

    # ---- records -----------------------------------------------------------------------------------------
    def knows_mind_of(self, actor: str | None) -> bool:
        """Whether the reader may read `actor`'s private information, goals and reasoning."""
        return self.actors is None or actor in self.actors

    def sees_message(self, kind: str, sender: str, recipients: Iterable[str]) -> bool:
        if self.actors is None or kind == CommunicationKind.PUBLIC:
            return True
        return not self.actors.isdisjoint({sender, *recipients})

    def sees(self, message: Communication) -> bool:
        return self.sees_message(message.kind, message.sender, message.recipients)

    def sees_finding(self, actor: str | None) -> bool:
        """QA findings are the full view's: to check one actor the judge reads the others' private information
        and talks, and its findings quote them, whichever actor they are about."""
        return self.actors is None

    @property
    def sees_calls(self) -> bool:
        """Model calls (their prompts and answers) are the full view's: the world model's and the judges'
        prompts hold every actor's secrets."""
        return self.actors is None

    def decision(self, decision: Decision) -> Decision:
        if self.knows_mind_of(decision.actor):
            return decision
        return replace(decision, long_term_goals=(), short_term_priorities=(), reasoning="", metadata={})

    def actor(self, actor: ActorState) -> ActorState:
        if self.knows_mind_of(actor.short_name):
            return actor
        return replace(actor, private_information="", current_goals=(), metadata={},
                       recent_decisions=tuple(self.decision(d) for d in actor.recent_decisions))

    def messages(self, messages: Iterable[Communication]) -> tuple[Communication, ...]:
        return tuple(m for m in messages if self.sees(m))

    def findings(self, findings: Iterable[ValidationResult]) -> tuple[ValidationResult, ...]:
        return tuple(f for f in findings if self.sees_finding(f.actor))

    def state(self, state: ScenarioState) -> ScenarioState:
        """The run as the reader may know it: the files, JSON and pages drawn from it need no rule of their own."""
        if self.actors is None:
            return state
        return replace(
            state,
            actors=tuple(self.actor(a) for a in state.actors),
            decisions=type(state.decisions)(self.decision(d) for d in state.decisions),
            communications=self.messages(state.communications),
            validations=self.findings(state.validations),
        )

    # ---- events ------------------------------------------------------------------------------------------
    def event_data(self, event_type: str, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """An event's data as the reader may know it; None when the whole event is outside the view."""
        if self.actors is None:
            return data
        if event_type == EventType.COMMUNICATION_SENT:
            visible = self.sees_message(data.get("kind", ""), data.get("sender", ""), data.get("recipients", ()))
            return data if visible else None
        if event_type in (EventType.ACTOR_DECISION_COMPLETED, EventType.ACTOR_DECISION_FAILED):
            if self.knows_mind_of(data.get("actor")):
                return data
            # An answer that failed may quote the model's reasoning; one that worked keeps only its action.
            hidden = (*MIND_FIELDS, "error", "metadata")
            return {key: value for key, value in data.items() if key not in hidden}
        if event_type == EventType.VALIDATION_COMPLETED:
            results = [r for r in data.get("results", ()) if self.sees_finding(r.get("actor"))]
            return {**data, "results": results}
        if event_type == EventType.VALIDATION_FAILED:
            return data if self.sees_finding(data.get("actor")) else None
        if event_type == EventType.MODEL_CALLED:
            return data if self.sees_calls else None
        return data


FULL = Viewpoint()
PUBLIC = Viewpoint(frozenset())
