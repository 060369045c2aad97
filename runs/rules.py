"""Who may do what with a run: the one set of rules behind pages, the API, sockets and downloads.

Object permissions (django-rules), asked as `user.has_perm("runs.see_run", run)`:
- `runs.see_run`: staff, the owner, anyone with a part in the run (`RunRole`: facilitator, player, observer).
- `runs.steer_run`: staff, the owner, a facilitator (pause, resume, cancel, seats changing hands, roles).
- `runs.decide_for_seat` on a `Seat(run, actor)`: whoever steers the run, or the player the seat is assigned to.
"""

from __future__ import annotations

from typing import NamedTuple

import rules

from runs.models import Run, RunRole
from runs.selectors import run_part


class Seat(NamedTuple):
    run: Run
    actor: str


@rules.predicate
def is_owner(user, run: Run) -> bool:
    return user.is_authenticated and run.owner_id == user.pk


@rules.predicate
def has_a_part(user, run: Run) -> bool:
    return run_part(run, user) is not None


@rules.predicate
def is_facilitator(user, run: Run) -> bool:
    part = run_part(run, user)
    return part is not None and part.role == RunRole.Role.FACILITATOR


@rules.predicate
def steers_the_seats_run(user, seat: Seat) -> bool:
    return user.is_staff or is_owner(user, seat.run) or is_facilitator(user, seat.run)


@rules.predicate
def plays_the_seat(user, seat: Seat) -> bool:
    part = run_part(seat.run, user)
    return part is not None and part.role == RunRole.Role.PLAYER and seat.actor in part.seats


may_steer = rules.is_staff | is_owner | is_facilitator

rules.add_perm("runs.see_run", rules.is_authenticated & (may_steer | has_a_part))
rules.add_perm("runs.steer_run", rules.is_authenticated & may_steer)
rules.add_perm("runs.decide_for_seat", rules.is_authenticated & (steers_the_seats_run | plays_the_seat))
