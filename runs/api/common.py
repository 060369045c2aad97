"""What the runs API's routers share: the routers, the request checks (who may read or change a run), a run as
JSON, and the text type every input uses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from django.conf import settings
from django.http import Http404, HttpRequest
from django.urls import reverse
from ninja import Router, Schema
from pydantic import AfterValidator, Field

from runs import selectors
from runs import record_selectors
from runs.models import Run
from runs.reading import MIND_CHANGES, readable_intervention, reader_of
from scenariolab_site.api_base import ApiError, caller

router = Router(tags=["runs"])
# Mounted under /api/scenarios/: the V2 document's `POST /api/scenarios/{id}/execute`, which starts a run.
scenario_router = Router(tags=["runs"])
MAX_LIMIT = 200


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL cannot store it; refused where it is, not as a server error
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
BIGINT = 2**63 - 1


class RunOut(Schema):
    id: int
    scenario: str
    scenario_name: str
    number: int
    status: str = Field(description="queued, running, paused, halted, cancelled, completed, failed, or crashed")
    turn: int = Field(description="last completed turn")
    max_turns: int
    credit_limit: float | None
    total_cost: float
    total_tokens: int
    calls: int
    provider: str
    offline: bool
    models: list[str]
    seed: int
    halt_reason: str
    error: str
    owner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    page: str
    last_seq: int
    parent: int | None = Field(None, description="the run this one was branched from")
    branch_turn: int | None = Field(None, description="the parent's last turn this run shares")
    intervention: dict[str, Any] | None = Field(None, description="what was changed at the branch point, with `before`")
    tags: list[str] = Field(default_factory=list, description="labels people put on the run")
    notes: str = Field("", description="the researchers' notes on the run (for readers of its full view; empty for others)")



def may_read(run: Run, user) -> bool:
    return settings.PUBLIC_READ or user.has_perm("runs.see_run", run)


def run_for(request: HttpRequest, run_id: int, *, write: bool = False) -> Run:
    """The run if the caller may see it (and change it, with `write`); 404 otherwise, as pages answer."""
    run = selectors.run_by_id(run_id)
    user = caller(request)
    if run is None or not may_read(run, user):
        raise Http404(f"no run {run_id}")
    if write and not user.has_perm("runs.steer_run", run):
        raise ApiError(403, "forbidden", f"run {run_id} is not yours to steer: only its owner, a facilitator or staff may change it")
    return run


def run_json(request: HttpRequest, run: Run, last_seq: int | None = None) -> dict[str, Any]:
    if last_seq is None:
        last_seq = record_selectors.last_seq(run)
    return {
        "id": run.pk, "scenario": run.scenario_slug, "scenario_name": run.scenario_name, "number": run.number,
        "status": selectors.run_display_status(run), "turn": run.turn, "max_turns": run.max_turns,
        "credit_limit": run.credit_limit, "total_cost": run.total_cost, "total_tokens": run.total_tokens,
        "calls": run.calls, "provider": run.provider, "offline": run.offline,
        "models": sorted({a["model"] for a in run.actors}), "seed": run.seed, "halt_reason": run.halt_reason,
        "error": run.error, "owner": run.owner.get_username() if run.owner else None, "created_at": run.created_at,
        "started_at": run.started_at, "finished_at": run.finished_at,
        "page": request.build_absolute_uri(reverse("runs:detail", args=[run.pk])), "last_seq": last_seq,
        "parent": run.parent_id, "branch_turn": run.branch_turn, "intervention": _intervention(request, run),
        "tags": [tag.name for tag in run.tags.all()], "notes": _notes(request, run),
    }





def _notes(request: HttpRequest, run: Run) -> str:
    """The run's notes for readers of its full view only: whoever steers may write any actor's secrets there."""
    return run.notes if run.notes and reader_of(run, caller(request)).viewpoint.full else ""


def _intervention(request: HttpRequest, run: Run) -> dict | None:
    """A branch's intervention as the caller may know it; read only for one that rewrote an actor's brief."""
    changes = (run.intervention or {}).get("actors") or {}
    if not any(key in change for change in changes.values() for key in MIND_CHANGES):
        return run.intervention
    return readable_intervention(reader_of(run, caller(request)).viewpoint, run.intervention)


def steer(request, run_id: int, action) -> dict:
    run = run_for(request, run_id, write=True)
    return run_json(request, action(run))
