"""Branches: a new run from a completed turn, with an intervention (`runs.branching`); a run's family tree."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.conf import settings
from django.urls import reverse
from ninja import Schema
from ninja.responses import Status
from pydantic import Field

from runs.reading import readable_family, readable_intervention, reader_of
from runs import selectors
from scenariolab_site.api_base import caller, errors

from runs.api.common import BIGINT, RunOut, Text, run_json, run_for, router


class ActorChangeIn(Schema):
    model: Text | None = Field(None, min_length=1, max_length=200)
    control: Literal["ai", "human"] | None = None
    system_prompt: Text | None = Field(None, max_length=50_000)
    goals: list[Annotated[Text, Field(max_length=2000)]] | None = Field(None, max_length=50)


class InterventionIn(Schema):
    actors: dict[Annotated[Text, Field(max_length=64)], ActorChangeIn] = Field(default_factory=dict, max_length=100, description="changes by actor short name")
    credit_limit: float | None = Field(None, gt=0, description="USD; default: the parent's")
    seed: int | None = Field(None, ge=-BIGINT - 1, le=BIGINT, description="default: the parent's")
    world_state: Text | None = Field(None, max_length=200_000, description="the world as it stood after the branch turn, rewritten")
    end_turn: int | None = Field(None, ge=2, le=1000, description="the last turn to play; default: the parent's")
    note: Text = Field("", max_length=2000, description="why, shown in the family tree")


class BranchIn(Schema):
    at_turn: int = Field(ge=1, le=1000, description="a completed turn of the parent: the branch shares turns up to it")
    intervention: InterventionIn = Field(default_factory=InterventionIn)
    start: bool = Field(False, description="queue the branch for a worker at once (else it waits, paused)")


class FamilyMemberOut(Schema):
    id: int
    parent: int | None
    depth: int = Field(description="0: the root")
    branch_turn: int | None
    number: int
    status: str
    turn: int
    max_turns: int
    owner: str | None
    changes: list[str] = Field(description="the intervention, as people read it")
    note: str
    intervention: dict[str, Any] | None
    current: bool = Field(description="the run asked about")
    page: str


class FamilyOut(Schema):
    root: int
    runs: list[FamilyMemberOut] = Field(description="root first, each run followed by its branches")


@router.post("/{run_id}/branch", response={201: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Branch a run at a completed turn, with an intervention (optionally started at once)")
def branch_run(request, run_id: int, payload: BranchIn):
    from runs.branching import Intervention, run_branch

    parent = run_for(request, run_id, write=True)
    intervention = Intervention.from_json(payload.intervention.dict(exclude_none=True))
    child = run_branch(run=parent, at_turn=payload.at_turn, intervention=intervention, owner=caller(request),
                       start=payload.start)
    return Status(201, run_json(request, child))


@router.get("/{run_id}/family", response={200: FamilyOut, **errors(401, 404)},
            summary="The run's family tree: its root, every branch, their branch turns and interventions")
def run_family(request, run_id: int):
    run = run_for(request, run_id)
    viewpoint = reader_of(run, caller(request)).viewpoint
    members = readable_family(viewpoint, selectors.run_family(run=run, user=None if settings.PUBLIC_READ else caller(request)))
    return {"root": members[0].run.pk, "runs": [{
        "id": m.run.pk, "parent": m.run.parent_id if m.depth else None, "depth": m.depth, "branch_turn": m.run.branch_turn,
        "number": m.run.number, "status": m.status, "turn": m.run.turn,
        "max_turns": m.run.max_turns, "owner": m.run.owner.get_username() if m.run.owner else None,
        "changes": m.changes, "note": m.note, "intervention": readable_intervention(viewpoint, m.run.intervention), "current": m.current,
        "page": request.build_absolute_uri(reverse("runs:detail", args=[m.run.pk])),
    } for m in members]}
