"""Parts in a run besides its owner's (`runs.roles`): list, grant, withdraw. Whoever steers the run grants."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from ninja import Schema
from ninja.responses import Status
from pydantic import Field

from runs import seats as seat_services
from runs import selectors
from runs.models import RunRole
from runs.roles import RoleGrant, grant_named
from scenariolab_site.api_base import ApiError, errors

from runs.api.common import Text, router, run_for


class RoleIn(Schema):
    role: Literal["facilitator", "player", "observer"]
    user: Text | None = Field(None, max_length=150, description="a username; or give `group`")
    group: Text | None = Field(None, max_length=150, description="a Django group's name; or give `user`")
    seats: list[Annotated[Text, Field(max_length=64)]] = Field(default_factory=list, max_length=100,
                                                              description="a player's actors (short names)")
    view: Literal["full", "public"] | None = Field(None, description="what an observer sees (default: what the scenario lets observers see)")


class RoleOut(Schema):
    id: int
    role: str
    user: str | None
    group: str | None
    seats: list[str]
    view: str
    granted_at: datetime


def _out(part: RunRole) -> dict:
    return {"id": part.pk, "role": part.role, "user": part.user.get_username() if part.user_id else None,
            "group": part.group.name if part.group_id else None, "seats": part.seats, "view": part.view,
            "granted_at": part.granted_at}


@router.get("/{run_id}/roles", response={200: list[RoleOut], **errors(401, 404)},
            summary="Who has a part in the run besides its owner: facilitators, players (with their seats), observers")
def list_roles(request, run_id: int):
    return [_out(part) for part in selectors.run_roles(run_for(request, run_id))]


def role_grant(payload: RoleIn | dict) -> RoleGrant:
    """The part a request asks for, its user or group looked up by name (400 naming an unknown one)."""
    payload = payload if isinstance(payload, RoleIn) else RoleIn(**payload)
    return grant_named(payload.role, user=payload.user, group=payload.group, seats=payload.seats, view=payload.view)


@router.post("/{run_id}/roles", response={201: RoleOut, **errors(400, 401, 403, 404, 422)},
             summary="Give a user or a group a part in the run (replacing the one they had); a player's seats go to people")
def grant_role(request, run_id: int, payload: RoleIn):
    run = run_for(request, run_id, write=True)
    return Status(201, _out(seat_services.run_role_grant(run=run, grant=role_grant(payload))))


@router.delete("/{run_id}/roles/{role_id}", response={204: None, **errors(401, 403, 404)},
               summary="Take a part back (its seats stay with people)")
def withdraw_role(request, run_id: int, role_id: int):
    run = run_for(request, run_id, write=True)
    part = selectors.run_role(run=run, role_id=role_id)
    if part is None:
        raise ApiError(404, "not_found", f"run {run_id} has no role {role_id}")
    seat_services.run_role_withdraw(part=part)
    return Status(204, None)
