"""Telling people that a seat waits for them: by email (Django's email backend: the console by default, SMTP
by settings) and live in every page's header (each person's `seats` socket, `runs.consumers.SeatsConsumer`).

A seat's people are its players (users, and the members of groups given it); a seat no player holds is its
run's steerers' (the owner and facilitators). A run's wait starts once per turn (`waiting_since`), so each
person hears once per waiting seat, and again only when a facilitator nudges them.

Best effort: a mail server or channel layer that fails costs the notice, never the run (the "My seats" page
and API always show what waits).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.urls import reverse

from runs import selectors
from runs.models import Run, RunRole

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaitingSeat:
    """A seat waiting for a person, as "My seats" lists it."""

    run: Run
    actor: str
    name: str
    turn: int
    waiting_since: datetime | None

    @property
    def deadline(self) -> datetime | None:
        """When the model takes the seat (the run's seat timeout), None: it waits for the person."""
        if self.waiting_since is None or not self.run.human_timeout_minutes:
            return None
        return self.waiting_since + timedelta(minutes=self.run.human_timeout_minutes)

    @property
    def path(self) -> str:
        return reverse("runs:seat", args=[self.run.pk, self.actor])


def seats_waiting_for(user) -> list[WaitingSeat]:
    """Every seat waiting for `user` across runs, oldest wait first: the seats they play, and in the runs they
    own or facilitate the seats no player holds (the seats whose people they are: `seat_people`). Three
    queries, however many runs wait."""
    if not user.is_authenticated:
        return []
    pending = selectors.seats_pending(runs=selectors.runs_for(user))
    if not pending:
        return []
    groups = set(user.groups.values_list("pk", flat=True))
    parts: dict[int, list[RunRole]] = {}
    for part in RunRole.objects.filter(run_id__in={seat.run.pk for seat in pending}):
        parts.setdefault(part.run_id, []).append(part)

    def mine(part: RunRole) -> bool:
        return part.user_id == user.pk or part.group_id in groups

    waiting = []
    for seat in pending:
        players = [part for part in parts.get(seat.run.pk, []) if part.role == RunRole.Role.PLAYER and seat.actor in part.seats]
        steers = seat.run.owner_id == user.pk or any(
            mine(part) for part in parts.get(seat.run.pk, []) if part.role == RunRole.Role.FACILITATOR)
        if any(mine(part) for part in players) if players else steers:
            waiting.append(WaitingSeat(seat.run, seat.actor, seat.name, seat.turn, seat.waiting_since))
    return waiting


def _members(parts: Iterable[RunRole]) -> set[int]:
    users = {part.user_id for part in parts if part.user_id}
    groups = [part.group_id for part in parts if part.group_id]
    if groups:
        users |= set(get_user_model().objects.filter(groups__in=groups).values_list("pk", flat=True))
    return users


def seat_people(run: Run, actor: str) -> list:
    """Who is told that `actor`'s seat waits: its players, else the run's steerers."""
    parts = list(RunRole.objects.filter(run=run))
    players = [part for part in parts if part.role == RunRole.Role.PLAYER and actor in part.seats]
    ids = _members(players)
    if not ids:
        ids = _members(part for part in parts if part.role == RunRole.Role.FACILITATOR)
        if run.owner_id:
            ids.add(run.owner_id)
    return list(get_user_model().objects.filter(pk__in=ids, is_active=True).order_by("username"))


def people_group(user_id: int) -> str:
    return f"seats-{user_id}"


def run_people(run: Run) -> set[int]:
    """Everyone whose header counts the run's seats: its owner and everyone with a part in it."""
    ids = _members(RunRole.objects.filter(run=run))
    return ids | ({run.owner_id} if run.owner_id else set())


def refresh_headers(run: Run, *, also: Iterable[int] = ()) -> None:
    """Tell the open pages of the run's people (and of `also`: people who had a part) that the seats waiting for
    them changed."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for user_id in sorted(run_people(run) | set(also)):
            async_to_sync(layer.group_send)(people_group(user_id), {"type": "seats.changed"})
    except Exception as exc:  # noqa: BLE001 - a layer that is down costs the live notice; pages still list seats
        logger.warning("run %s: could not tell pages that its seats changed (%s: %s)", run.pk, type(exc).__name__, exc)


def _email(person, run: Run, seat: WaitingSeat, *, nudge: bool) -> bool:
    if not person.email:
        return False
    deadline = f"\nIf nobody decides by {seat.deadline:%Y-%m-%d %H:%M} UTC, the model takes the seat." if seat.deadline else ""
    subject = f"{'Reminder: ' if nudge else ''}{seat.name} waits for your decision ({run.scenario_name} run {run.number:03d}, turn {seat.turn})"
    body = (f"{run.scenario_name} run {run.number:03d} waits for a decision for {seat.name} in turn {seat.turn}.{deadline}\n\n"
            f"Decide here: {settings.SITE_URL}{seat.path}\n"
            f"Every seat waiting for you: {settings.SITE_URL}{reverse('runs:my_seats')}\n")
    try:
        send_mail(subject, body, None, [person.email])
    except Exception as exc:  # noqa: BLE001 - a mail server that refuses costs the email, not the run
        logger.warning("run %s: could not email %s about seat %s (%s: %s)", run.pk, person.get_username(), seat.actor,
                       type(exc).__name__, exc)
        return False
    return True


def notify_waiting(run: Run, *, actors: Iterable[str] | None = None, nudge: bool = False) -> list[str]:
    """Tell the people of each seat `run` waits for (of `actors` only, if given) by email and in their pages'
    headers; the usernames told."""
    wanted = None if actors is None else set(actors)
    told = []
    for pending in selectors.run_pending_seats(run=run):
        if wanted is not None and pending.actor not in wanted:
            continue
        seat = WaitingSeat(run, pending.actor, pending.name, pending.turn, pending.waiting_since)
        for person in seat_people(run, seat.actor):
            _email(person, run, seat, nudge=nudge)
            told.append(person.get_username())
    refresh_headers(run)
    return told


def notify_wait_started(run_id: int) -> None:
    """A run began waiting: tell each waiting seat's people (called once the wait is committed)."""
    run = selectors.run_get(run_id=run_id)
    if run is not None:
        notify_waiting(run)

