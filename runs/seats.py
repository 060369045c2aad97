"""Human seats of stored runs: who holds each seat, what a waiting seat shows, a person's decision, timeouts.

A run that reaches a human seat stops as WAITING_FOR_HUMAN with the models' decisions stored; no worker
waits with it. `seat_decide` stores the person's decision and queues the run again once no seat is pending.
Seats change hands through the run's `actors` row: an executing worker reads it at every turn
(`runs.desk.StoredSeats`); for a run at rest the change is announced here, as an event of the run. Which seats a run
waits for is a read: `runs.selectors.run_pending_seats`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from engine import Event, EventType
from engine.events import freeze_json
from engine.scenario.folder import Scenario as EngineScenario
from engine.phases.decision import decision_event_data
from engine.seats import (
    CONTROLS,
    HumanDecisionError,
    SeatView,
    human_decision,
    pending_human_seats,
    seat_view,
    with_human_decision,
)
from engine.state import as_dict
from runs import selectors
from runs.live import publish_stored
from runs.models import Run, RunEvent, RunStatus
from runs.persistence import load_run_state, record_event, save_run_state
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


def _worker_gone(run: Run) -> bool:
    """A run that stopped is at rest only once its executor has stored its last events and let go (claim
    released; for a waiting run `waiting_since` set with it): before that, an event stored here could take a
    seq the executor is about to use. A running run's seats change through its executor, not here."""
    if run.status == RunStatus.WAITING_FOR_HUMAN:
        return run.waiting_since is not None
    return run.status == RunStatus.RUNNING or not run.claim


def _still_saving(run: Run) -> RunConflict:
    return RunConflict(f"run {run.pk} is storing its last turn; try again in a moment")


WORKER_GRACE_SECONDS = 10.0


def _wait_for_worker(run_id: int) -> None:
    """A person who answers the moment the run starts waiting may be faster than the worker's last writes
    (a fraction of a second, more on a loaded machine): give it that time rather than refuse the answer."""
    deadline = time.monotonic() + WORKER_GRACE_SECONDS
    busy = Run.objects.filter(
        Q(status=RunStatus.WAITING_FOR_HUMAN, waiting_since__isnull=True)
        | (~Q(status__in=[RunStatus.RUNNING, RunStatus.WAITING_FOR_HUMAN]) & ~Q(claim="")), pk=run_id)
    while busy.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _announce(run: Run, event_type: EventType, data: Mapping) -> Event:
    """Store an event of a run no worker is executing (the caller holds the row lock), then relay it."""
    last = RunEvent.objects.filter(run=run).order_by("-seq").values_list("seq", flat=True).first() or 0
    event = Event(type=event_type, data=freeze_json(dict(data)), run_id=run.engine_run_id, seq=last + 1, timestamp=time.time(),
                  source="seats")
    record_event(run.pk, event)
    transaction.on_commit(lambda: publish_stored(run.pk, [event]))
    return event


def seat_set_control(*, run: Run, actor: str, control: str, reason: str = "") -> Run:
    """Give `actor`'s seat to a person ("human") or to the model ("ai"), now if the run is at rest, at the
    next turn if a worker is playing it. A waiting seat handed to the model lets the run go on."""
    if control not in CONTROLS:
        raise RunInputError(f"control must be 'ai' or 'human', not {control!r}")
    _wait_for_worker(run.pk)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status in (RunStatus.COMPLETED, RunStatus.CANCELLED):
            raise RunConflict(f"run {run.pk} is {run.status}: its seats can no longer change hands")
        seat = _seat(run, actor)
        if seat.get("control", "ai") == control:
            return run
        if not _worker_gone(run):
            raise _still_saving(run)
        run.actors = [{**a, "control": control} if a["short_name"] == actor else a for a in run.actors]
        run.save(update_fields=["actors"])
        if run.status != RunStatus.RUNNING:  # a worker announces the change itself when it reads it
            _announce(run, EventType.SEAT_CONTROL_CHANGED, {"actor": actor, "control": control, "reason": reason or "changed on request"})
        if run.status == RunStatus.WAITING_FOR_HUMAN and not selectors.run_pending_seats(run=run):
            run = run_resume(run=run)
    return run


def seat_decide(
    *, run: Run, actor: str, long_term_goals: str | list[str], short_term_priorities: str | list[str],
    reasoning: str, action: str, replies: Mapping[str, str] | None = None,
) -> Run:
    """Store a person's decision for the seat the run waits for, and its replies to proposals; the run is
    queued again when no other seat is pending. A decision that would not pass as a model's is refused
    (RunInputError naming each field)."""
    _wait_for_worker(run.pk)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        _seat(run, actor)
        state = load_run_state(run)
        if run.status != RunStatus.WAITING_FOR_HUMAN or actor not in {a.short_name for a in pending_human_seats(state)}:
            raise RunConflict(f"run {run.pk} is not waiting for a decision from {actor} (it is {selectors.run_display_status(run)})")
        if not _worker_gone(run):
            raise _still_saving(run)
        view = seat_view(state, EngineScenario.model_validate(run.snapshot), actor, max_turns=run.max_turns)
        try:
            decision = human_decision(long_term_goals=long_term_goals, short_term_priorities=short_term_priorities,
                                      reasoning=reasoning, action=action, replies=replies, proposals=view.proposals)
        except HumanDecisionError as exc:
            raise SeatDecisionError(exc.problems) from None
        decided = with_human_decision(state, actor, decision)
        save_run_state(run.pk, decided)
        for message in decided.communications[len(state.communications):]:
            _announce(run, EventType.COMMUNICATION_SENT, {**as_dict(message), "kind": message.kind.value})
        _announce(run, EventType.ACTOR_DECISION_COMPLETED, decision_event_data(decided.decisions_in(state.current_turn)[actor]))
        run.refresh_from_db()
        if not pending_human_seats(decided):
            run = run_resume(run=run)
    return run


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
        return run_resume(run=run)
