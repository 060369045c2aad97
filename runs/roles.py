"""Parts in a run besides its owner's (`RunRole`): granting and withdrawing them. Who may do what with a part
is `runs.rules`; which runs someone has a part in is `runs.selectors.runs_for`."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from runs import seats as seat_services
from runs.models import Run, RunRole
from runs.services import RunInputError


def role_problems(run: Run, *, role: str, seats: Sequence[str], user=None, group=None) -> list[str]:
    """What is wrong with giving `role` (and, to a player, `seats`) in `run` to `user` or `group`: each problem
    says how to mend it."""
    problems = [] if (user is None) != (group is None) else ["give the role to one user or to one group"]
    if role not in RunRole.Role.values:
        problems.append(f"role must be one of {', '.join(RunRole.Role.values)}, not {role!r}")
    known = [a["short_name"] for a in run.actors]
    unknown = [seat for seat in seats if seat not in known]
    if unknown:
        problems.append(f"no actor {', '.join(map(repr, unknown))} in run {run.pk}: seats must be among {', '.join(known)}")
    if role == RunRole.Role.PLAYER and not seats:
        problems.append("a player needs at least one seat (the actors they decide for)")
    if role != RunRole.Role.PLAYER and seats:
        problems.append(f"only a player has seats; a {role} has none")
    return problems


def seats_to_people(part: RunRole) -> None:
    """A player's seats are played by a person from the next decision on (a seat the model held changes hands)."""
    who = part.user.get_username() if part.user_id else f"group {part.group}"
    for actor in part.seats:
        if next(a for a in part.run.actors if a["short_name"] == actor).get("control", "ai") != "human":
            part.run = seat_services.seat_set_control(run=part.run, actor=actor, control="human", reason=f"assigned to {who}")


def run_role_grant(*, run: Run, role: str, user=None, group=None, seats: Sequence[str] = (),
                   view: str = RunRole.View.FULL) -> RunRole:
    """Give `user` (or everyone in `group`) `role` in `run`, replacing the part they had; a player's seats go to
    people. RunInputError naming what is wrong otherwise."""
    problems = role_problems(run, role=role, seats=seats, user=user, group=group)
    if view not in RunRole.View.values:
        problems.append(f"view must be one of {', '.join(RunRole.View.values)}, not {view!r}")
    if problems:
        raise RunInputError("; ".join(problems))
    with transaction.atomic():
        part, _ = RunRole.objects.update_or_create(
            run=run, user=user, group=group, defaults={"role": role, "seats": list(seats), "view": view})
        seats_to_people(part)
    return part


def run_role_withdraw(*, part: RunRole) -> None:
    """Take a part back. Its seats stay with people (the facilitator hands them to the model if they wish)."""
    part.delete()
