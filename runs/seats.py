"""Human seats of stored runs: who holds each seat, what a waiting seat shows, a person's decision, timeouts.

A run that reaches a human seat stops as WAITING_FOR_HUMAN with the models' decisions stored; no worker
waits with it. `seat_decide` checks a person's answer as a model's would be checked and stores it; once no
seat is pending the run goes back to the queue, and its executor applies the answers as it applies a model's
decision (its desk, `runs.execution.desk.StoredSeats`, hands them over), so a request never rewrites the
run. If the executor has not let go of the run yet, it queues the run itself as it lets go.

A part given in a run under way (`run_role_grant`) hands a player's seats to people. Seats change hands
through the run's `actors` row: an executing worker reads it at every turn; for a run at
rest the change is announced here, as an event of the run. Which seats a run waits for is a read:
`runs.selectors.run_pending_seats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from engine import Event, EventType
from engine.scenario.folder import Scenario as EngineScenario
from engine.seats import CONTROLS, HumanDecisionError, SeatView, human_decision, seat_view
from runs import notifications, selectors
from runs.execution.relay import publish_parts_changed, publish_stored
from runs.execution.store import append_events, load_run_state, store_human_decision
from runs.models import Run, RunRole, RunStatus
from runs.roles import RoleGrant, check_grants, give_part
from runs.services import RunConflict, RunInputError, run_resume


# ---- reading -------------------------------------------------------------------------------------------------
def seat_view_for(*, run: Run, actor: str) -> SeatView:
    """What the person in `actor`'s seat sees: the decision prompt a model would read, and the proposals."""
    _seat(run, actor)
    if actor not in {seat.actor for seat in selectors.run_pending_seats(run=run)}:
        raise RunConflict(f"run {run.pk} is not waiting for {actor}: it is {selectors.run_display_status(run)}")
    return seat_view(load_run_state(run), EngineScenario.model_validate(run.snapshot), actor, max_turns=run.max_turns)


# ---- writing -------------------------------------------------------------------------------------------------
def _seat(run: Run, actor: str) -> dict:
    for seat in run.actors:
        if seat["short_name"] == actor:
            return seat
    known = ", ".join(a["short_name"] for a in run.actors)
    raise RunInputError(f"run {run.pk} has no actor {actor!r} (its actors: {known})")


def _announce(run: Run, event_type: EventType, data: Mapping) -> None:
    """Store an event of the run (the store numbers it), then relay it to open pages once committed."""
    stored = append_events(run.pk, [Event(type=event_type, data=dict(data), run_id=run.engine_run_id, source="seats")])
    transaction.on_commit(lambda: publish_stored(run.pk, stored))


def _go_on_if_decided(run: Run) -> Run:
    """Queue a waiting run whose seats have all been answered or handed to the model, if its executor has let
    go of it (`waiting_since` is set as it does); an executor still letting go queues it itself."""
    if run.status == RunStatus.WAITING_FOR_HUMAN and run.waiting_since is not None and not selectors.run_pending_seats(run=run):
        return run_resume(run=run)
    return run


def seat_set_control(*, run: Run, actor: str, control: str, reason: str = "") -> Run:
    """Give `actor`'s seat to a person ("human") or to the model ("ai"), now if the run is at rest, at the
    next turn if a worker is playing it. A waiting seat handed to the model lets the run go on."""
    if control not in CONTROLS:
        raise RunInputError(f"control must be 'ai' or 'human', not {control!r}")
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status in (RunStatus.COMPLETED, RunStatus.CANCELLED):
            raise RunConflict(f"run {run.pk} is {run.status}: its seats can no longer change hands")
        seat = _seat(run, actor)
        if seat.get("control", "ai") == control:
            return run
        run.actors = [{**a, "control": control} if a["short_name"] == actor else a for a in run.actors]
        run.save(update_fields=["actors"])
        if run.status != RunStatus.RUNNING:  # a worker announces the change itself when it reads it
            _announce(run, EventType.SEAT_CONTROL_CHANGED, {"actor": actor, "control": control, "reason": reason or "changed on request"})
        transaction.on_commit(lambda: notifications.refresh_headers(run))
        return _go_on_if_decided(run)


def seat_decide(
    *, run: Run, actor: str, long_term_goals: str | list[str], short_term_priorities: str | list[str],
    reasoning: str, action: str, replies: Mapping[str, str] | None = None, by=None,
) -> Run:
    """Store a person's decision for the seat the run waits for, and its replies to proposals; the run is
    queued again when no other seat is pending. A decision that would not pass as a model's is refused
    (SeatDecisionError naming each field). `by`: who decided."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        _seat(run, actor)
        pending = {seat.actor: seat for seat in selectors.run_pending_seats(run=run)}
        if actor not in pending:
            raise RunConflict(f"run {run.pk} is not waiting for a decision from {actor} (it is {selectors.run_display_status(run)})")
        turn = pending[actor].turn
        try:
            decision = human_decision(long_term_goals=long_term_goals, short_term_priorities=short_term_priorities,
                                      reasoning=reasoning, action=action, replies=replies,
                                      proposals=selectors.seat_proposals(run=run, actor=actor, turn=turn))
        except HumanDecisionError as exc:
            raise SeatDecisionError(exc.problems) from None
        store_human_decision(run.pk, turn, actor, decision, by=by)
        transaction.on_commit(lambda: notifications.refresh_headers(run))
        return _go_on_if_decided(run)


class SeatDecisionError(RunInputError):
    """A submitted decision is not usable; `problems` maps each form field to what is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems.items()))


def seats_hand_over_expired(*, now: datetime | None = None) -> list[Run]:
    """Give the model every seat that has kept its run waiting longer than the run's timeout. Each seat is
    checked again under the run's lock, so a decision that lands meanwhile keeps its seat with its person."""
    now = now or timezone.now()
    handed: list[Run] = []
    waiting = Run.objects.filter(status=RunStatus.WAITING_FOR_HUMAN, human_timeout_minutes__isnull=False, waiting_since__isnull=False)
    for run_id in waiting.values_list("pk", flat=True):
        try:
            run = seat_timeout(run_id=run_id, now=now)
        except (RunConflict, RunInputError):  # the run moved on meanwhile: nothing to hand over
            continue
        if run is not None:
            handed.append(run)
    return handed


def seat_timeout(*, run_id: int, now: datetime) -> Run | None:
    """Hand the waiting seats of one run to the model if its wait is past the timeout; None if it is not."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if (run.status != RunStatus.WAITING_FOR_HUMAN or run.waiting_since is None or run.human_timeout_minutes is None
                or run.waiting_since + timedelta(minutes=run.human_timeout_minutes) > now):
            return None
        pending = selectors.run_pending_seats(run=run)
        if not pending:
            return None
        reason = f"no decision within {run.human_timeout_minutes:g} minutes: the model takes the seat"
        run.actors = [{**a, "control": "ai"} if a["short_name"] in {p.actor for p in pending} else a for a in run.actors]
        run.save(update_fields=["actors"])
        for seat in pending:
            _announce(run, EventType.SEAT_CONTROL_CHANGED, {"actor": seat.actor, "control": "ai", "reason": reason})
        transaction.on_commit(lambda: notifications.refresh_headers(run))
        return run_resume(run=run)


# ---- parts given and taken on a run under way -------------------------------------------------------------------
def seats_to_people(part: RunRole) -> None:
    """A player's seats are played by a person from the next decision on (a seat the model held changes hands)."""
    who = part.user.get_username() if part.user_id else f"group {part.group}"
    for actor in part.seats:
        if next(a for a in part.run.actors if a["short_name"] == actor).get("control", "ai") != "human":
            part.run = seat_set_control(run=part.run, actor=actor, control="human", reason=f"assigned to {who}")


def _parts_changed(run: Run, before: set[int]) -> None:
    """Once committed: the run's sockets read their person's part again; the headers of everyone who had or has a
    part count their seats again."""
    def tell() -> None:
        publish_parts_changed(run.pk)
        notifications.refresh_headers(run, also=before)

    transaction.on_commit(tell)


def _take_seats_from_other_players(run: Run, seats: list[str], keep: RunRole | None) -> None:
    """A seat has one player: whoever else played one of `seats` no longer does (a player left without seats
    follows the run as an observer of the public view)."""
    for part in RunRole.objects.filter(run=run, role=RunRole.Role.PLAYER).exclude(pk=getattr(keep, "pk", None)):
        if set(seats) & set(part.seats):
            part.seats = [seat for seat in part.seats if seat not in seats]
            if not part.seats:
                part.role, part.view = RunRole.Role.OBSERVER, RunRole.View.PUBLIC
            part.save(update_fields=["seats", "role", "view"])


def run_role_grant(*, run: Run, grant: RoleGrant) -> RunRole:
    """Give `grant` in `run`, replacing the part its user or group had; a player's seats go to people, and from
    whoever played them before. RunInputError naming what is wrong otherwise."""
    check_grants([a["short_name"] for a in run.actors], [grant])
    before = notifications.run_people(run)
    with transaction.atomic():
        part = give_part(run, grant)
        _take_seats_from_other_players(run, list(grant.seats), keep=part)
        seats_to_people(part)
        _parts_changed(run, before)
    return part


def seat_assign(*, run: Run, actor: str, to: RoleGrant) -> Run:
    """Hand `actor`'s seat to the user or group of `to` (a grant without role or seats: who): they play it
    from the next decision, alongside any seat they play already; whoever played it before no longer does (a
    player left without seats follows the run as an observer of the public view). A facilitator given a seat
    decides for it as for every seat. Their people are told if the seat waits."""
    _seat(run, actor)
    check_grants([a["short_name"] for a in run.actors], [RoleGrant(RunRole.Role.PLAYER, user=to.user, group=to.group, seats=(actor,))])
    before = notifications.run_people(run)
    with transaction.atomic():
        theirs = RunRole.objects.filter(run=run, user=to.user, group=to.group).first()
        _take_seats_from_other_players(run, [actor], keep=theirs)
        if theirs is None or theirs.role != RunRole.Role.FACILITATOR:
            seats = [*theirs.seats, actor] if theirs is not None and theirs.role == RunRole.Role.PLAYER else [actor]
            give_part(run, RoleGrant(RunRole.Role.PLAYER, user=to.user, group=to.group, seats=tuple(dict.fromkeys(seats))))
        run = seat_set_control(run=run, actor=actor, control="human", reason=f"assigned to {to.who}")
        _parts_changed(run, before)
        transaction.on_commit(lambda: notifications.notify_waiting(run, actors=[actor]))
    return run


def seat_nudge(*, run: Run, actor: str) -> list[str]:
    """Remind the people of `actor`'s seat, if the run waits for it; the usernames reminded."""
    _seat(run, actor)
    return notifications.notify_waiting(run, actors=[actor], nudge=True)


def run_role_withdraw(*, part: RunRole) -> None:
    """Take a part back. Its seats stay with people (the facilitator hands them to the model if they wish)."""
    run = part.run
    before = notifications.run_people(run)
    with transaction.atomic():
        part.delete()
        _parts_changed(run, before)
