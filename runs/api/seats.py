"""Human seats (`runs.seats`): pending seats, what a seat sees, a person's decision, taking a seat over."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from django.http import HttpRequest
from django.urls import reverse
from ninja import Schema
from pydantic import Field

from django.utils import timezone

from runs import notifications, seats, selectors
from runs.rules import Seat
from scenariolab_site.api_base import ApiError, caller, errors

from runs.api.common import RunOut, Text, run_for, run_json, steer, router
from runs.roles import grant_named


class SeatOut(Schema):
    actor: str
    name: str
    control: str = Field(description="ai or human")
    model: str
    waiting: bool = Field(description="the run waits for this seat's decision")


class ProposalOut(Schema):
    id: str
    kind: str
    sender: str
    recipients: list[str]
    content: str


class SeatViewOut(Schema):
    run: int
    actor: str
    actor_name: str
    turn: int
    system: str = Field(description="the seat's system prompt, as a model would read it")
    user: str = Field(description="the decision prompt, as a model would read it")
    proposals: list[ProposalOut] = Field(description="proposals addressed to the seat that await its reply (a reply "
                                                     "left out leaves the proposal unanswered)")
    long_term_goals: list[str] = Field(description="the actor's goals as they stand (its last decision's, else its brief's)")
    short_term_priorities: list[str] = Field(description="its priorities as they stand (its last decision's)")


class PendingSeatOut(Schema):
    run: int
    scenario: str
    actor: str
    name: str
    turn: int
    waiting_since: datetime | None
    waited_seconds: float | None = Field(description="how long the seat has waited")
    deadline: datetime | None = Field(description="when the model takes the seat (the run's seat timeout); null: it waits")
    page: str


class NudgeOut(Schema):
    told: list[str] = Field(description="the usernames reminded (the seat's players, else the run's steerers)")


class AssignIn(Schema):
    user: Text | None = Field(None, max_length=150, description="a username; or give `group`")
    group: Text | None = Field(None, max_length=150, description="a Django group's name; or give `user`")


class SeatDecisionIn(Schema):
    long_term_goals: list[Annotated[Text, Field(max_length=2000)]] = Field(min_length=1, max_length=8)
    short_term_priorities: list[Annotated[Text, Field(max_length=2000)]] = Field(min_length=1, max_length=8)
    reasoning: Text = Field(max_length=20000)
    action: Text = Field(max_length=20000)
    replies: dict[Annotated[Text, Field(max_length=200)], Annotated[Text, Field(max_length=20000)]] = Field(
        default_factory=dict, max_length=50, description="proposal id -> your reply; every pending proposal needs one")


class SeatControlIn(Schema):
    control: Literal["ai", "human"] = Field(description="human: take the seat over; ai: hand it back to the model")


def _seat_run(request: HttpRequest, run_id: int, actor: str):
    """The run, if the caller may decide for `actor`'s seat in it: whoever steers the run, or its player."""
    run = run_for(request, run_id)
    if not caller(request).has_perm("runs.decide_for_seat", Seat(run, actor)):
        raise ApiError(403, "forbidden", f"the seat {actor} of run {run_id} is not yours to play")
    return run


def _seat_page(request: HttpRequest, run_id: int, actor: str) -> str:
    return request.build_absolute_uri(reverse("runs:seat", args=[run_id, actor]))


@router.get("/seats/pending", response={200: list[PendingSeatOut], **errors(401)},
            summary="My seats: every seat waiting for you, oldest wait first (those you play, and in the runs you steer those no player holds)")
def pending_seats(request):
    now = timezone.now()
    return [
        {"run": seat.run.pk, "scenario": seat.run.scenario_slug, "actor": seat.actor, "name": seat.name, "turn": seat.turn,
         "waiting_since": seat.waiting_since, "deadline": seat.deadline,
         "waited_seconds": (now - seat.waiting_since).total_seconds() if seat.waiting_since else None,
         "page": _seat_page(request, seat.run.pk, seat.actor)}
        for seat in notifications.seats_waiting_for(caller(request))
    ]


@router.get("/{run_id}/seats", response={200: list[SeatOut], **errors(401, 404)},
            summary="Who plays each actor, and which seats the run waits for")
def run_seats(request, run_id: int):
    run = run_for(request, run_id)
    waiting = {seat.actor for seat in selectors.run_pending_seats(run=run)}
    return [{"actor": a["short_name"], "name": a["name"], "control": a.get("control", "ai"), "model": a["model"],
             "waiting": a["short_name"] in waiting} for a in run.actors]


@router.get("/{run_id}/seats/{actor}", response={200: SeatViewOut, **errors(400, 401, 403, 404, 409)},
            summary="What the person in a waiting seat sees: the model's prompts and the proposals to answer")
def seat_view(request, run_id: int, actor: str):
    run = _seat_run(request, run_id, actor)  # a seat's prompt holds the actor's private information
    view = seats.seat_view_for(run=run, actor=actor)
    return {"run": run.pk, "actor": view.actor, "actor_name": view.actor_name, "turn": view.turn, "system": view.system,
            "user": view.user, "proposals": [{"id": p.id, "kind": p.kind.value, "sender": p.sender,
                                              "recipients": list(p.recipients), "content": p.content} for p in view.proposals],
            "long_term_goals": list(view.long_term_goals), "short_term_priorities": list(view.short_term_priorities)}


@router.post("/{run_id}/seats/{actor}/decision", response={200: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Decide for a waiting human seat; the run goes on once no seat is pending")
def decide_seat(request, run_id: int, actor: str, payload: SeatDecisionIn):
    run = _seat_run(request, run_id, actor)
    return run_json(request, seats.seat_decide(run=run, actor=actor, by=request.user, **payload.dict()))


@router.post("/{run_id}/seats/{actor}/control", response={200: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Take a seat over (human) or hand it back to the model (ai)")
def control_seat(request, run_id: int, actor: str, payload: SeatControlIn):
    who = caller(request).get_username()
    reason = f"{'taken over' if payload.control == 'human' else 'handed back'} by {who}"
    return steer(request, run_id, lambda run: seats.seat_set_control(run=run, actor=actor, control=payload.control, reason=reason))


@router.post("/{run_id}/seats/{actor}/nudge", response={200: NudgeOut, **errors(400, 401, 403, 404)},
             summary="Remind the people of a waiting seat (email and their pages' headers)")
def nudge_seat(request, run_id: int, actor: str):
    return {"told": seats.seat_nudge(run=run_for(request, run_id, write=True), actor=actor)}


@router.post("/{run_id}/seats/{actor}/assign", response={200: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Hand a seat to a person (or a group): they play it from the next decision, instead of whoever did")
def assign_seat(request, run_id: int, actor: str, payload: AssignIn):
    return steer(request, run_id, lambda run: seats.seat_assign(
        run=run, actor=actor, to=grant_named("player", user=payload.user, group=payload.group)))
