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
from runs.selectors import RunPart, run_part


class Seat(NamedTuple):
    run: Run
    actor: str


def _run(target: Run | Seat) -> Run:
    """The run a rule is asked about: a seat's rules are its run's, and its player's."""
    return target.run if isinstance(target, Seat) else target


@rules.predicate
def is_owner(user, target: Run | Seat) -> bool:
    return user.is_authenticated and _run(target).owner_id == user.pk


def _part(predicate, user, target: Run | Seat) -> RunPart | None:
    """`user`'s part in the run, read once per permission check: the check's predicates share its context."""
    if "part" not in predicate.context:
        predicate.context["part"] = run_part(_run(target), user)
    return predicate.context["part"]


@rules.predicate(bind=True)
def has_a_part(self, user, target: Run | Seat) -> bool:
    return _part(self, user, target) is not None


@rules.predicate(bind=True)
def is_facilitator(self, user, target: Run | Seat) -> bool:
    part = _part(self, user, target)
    return part is not None and part.role == RunRole.Role.FACILITATOR


@rules.predicate(bind=True)
def plays_the_seat(self, user, seat: Seat) -> bool:
    part = _part(self, user, seat)
    return part is not None and part.role == RunRole.Role.PLAYER and seat.actor in part.seats


may_steer = rules.is_staff | is_owner | is_facilitator


rules.add_perm("runs.see_run", rules.is_authenticated & (may_steer | has_a_part))
rules.add_perm("runs.steer_run", rules.is_authenticated & may_steer)
rules.add_perm("runs.decide_for_seat", rules.is_authenticated & (may_steer | plays_the_seat))
