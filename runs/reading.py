"""What one person may read of a run, and which of its seats they decide for: the site's side of the engine's
one rule (`engine.visibility`). Pages, sockets, the API, downloads and the comparison all ask `reader_of` and
read through its viewpoint; none has a rule of its own.

- The owner, a facilitator and staff read everything and decide for every seat.
- A player reads what the actors they play may know and decides for those seats.
- An observer reads everything or only what is public, as their role says (by default, as the scenario says).
- Anyone reading a run in which they have no part (SCENARIOLAB_PUBLIC_READ) reads it as an observer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from engine.visibility import FULL, HIDDEN, PUBLIC, Viewpoint
from runs.models import Run, RunRole
from runs.roles import observer_view
from runs.selectors import FamilyMember, intervention_changes, run_part


@dataclass(frozen=True)
class Reader:
    viewpoint: Viewpoint
    seats: frozenset[str] | None  # the seats they decide for; None: every seat

    def decides(self, actor: str) -> bool:
        return self.seats is None or actor in self.seats

    @property
    def steers(self) -> bool:
        """Whoever decides for every seat steers the run (`runs.rules`: the owner, a facilitator, staff)."""
        return self.seats is None

    @property
    def key(self) -> tuple:
        """What a rendering for this reader depends on (pages of readers with the same key share renderings)."""
        return (self.viewpoint.actors, self.seats)


EVERYTHING = Reader(FULL, None)


def _viewpoint(view: str) -> Viewpoint:
    return FULL if view == RunRole.View.FULL else PUBLIC


def reader_of(run: Run, user) -> Reader:
    """How `user` reads `run`; ask only once they may see it (`runs.see_run`, or public reading)."""
    if user.has_perm("runs.steer_run", run):
        return EVERYTHING
    part = run_part(run, user)
    if part is None:
        return Reader(_viewpoint(observer_view(run)), frozenset())
    if part.view == RunRole.View.FULL:
        return Reader(FULL, part.seats)
    return Reader(Viewpoint.of(part.seats), part.seats)


def readable_event(viewpoint: Viewpoint, event: dict[str, Any]) -> dict[str, Any]:
    """A stored event (`seq`, `type`, `data`, ...) as the viewpoint may know it: redacted, or `hidden` with its
    seq and nothing else."""
    data = viewpoint.event_data(event["type"], event["data"])
    if data is event["data"]:
        return event
    if data is None:
        return {"seq": event["seq"], "type": HIDDEN, "data": {}, "timestamp": event.get("timestamp"), "source": ""}
    return {**event, "data": data}


# A branch's intervention may rewrite an actor's brief: its prompt and goals are that actor's mind.
MIND_CHANGES = ("system_prompt", "goals")


def readable_intervention(viewpoint: Viewpoint, intervention: dict | None) -> dict | None:
    """A branch's recorded intervention as the viewpoint may know it: the new and old prompt and goals of an
    actor whose mind it may not read are left out (None: "rewritten", without the text)."""
    if viewpoint.full or not intervention or not intervention.get("actors"):
        return intervention
    actors = {actor: {key: (None if key in MIND_CHANGES else value) for key, value in change.items()}
              if not viewpoint.knows_mind_of(actor) else change
              for actor, change in intervention["actors"].items()}
    before = dict(intervention.get("before") or {})
    if before.get("actors"):
        before["actors"] = {actor: {key: value for key, value in was.items() if key not in MIND_CHANGES}
                            if not viewpoint.knows_mind_of(actor) else was
                            for actor, was in before["actors"].items()}
    return {**intervention, "actors": actors, **({"before": before} if before else {})}


def readable_family(viewpoint: Viewpoint, members: list[FamilyMember]) -> list[FamilyMember]:
    """A family tree as the viewpoint may know it (its changes drawn from readable interventions)."""
    if viewpoint.full:
        return members
    return [replace(member, changes=intervention_changes(readable_intervention(viewpoint, member.run.intervention)))
            for member in members]
