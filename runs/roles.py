"""Parts in a run besides its owner's (`RunRole`): what a part may be, and the parts a run starts with (the
scenario's `roles`, those asked for at the start, its family's for a branch). Who may do what with a part is
`runs.rules`; how a part reads the run, `runs.reading`; giving or taking one on a run under way,
`runs.seats` (a player's seats change hands).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from engine.scenario.folder import Scenario as EngineScenario
from runs.errors import RunInputError
from runs.models import Run, RunRole

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleGrant:
    """A part for one user or one group: a facilitator, a player of `seats`, or an observer who sees `view`
    ("full" or "public"; None: what the scenario lets observers see)."""

    role: str
    user: Any = None
    group: Any = None
    seats: tuple[str, ...] = ()
    view: str | None = None

    @property
    def who(self) -> str:
        return self.user.get_username() if self.user is not None else f"group {self.group}"


GROUP_PREFIX = "group:"


def grant_named(role: str, *, user: str | None = None, group: str | None = None, seats: Sequence[str] = (),
                view: str | None = None) -> RoleGrant:
    """`role` for the user or the group of that name; RunInputError naming one the site does not have."""
    found_user = found_group = None
    if user is not None:
        found_user = get_user_model().objects.filter(username=user.strip()).first()
        if found_user is None:
            raise RunInputError(f"no user {user.strip()!r} on this site (write group:<name> for a group)")
    if group is not None:
        found_group = Group.objects.filter(name=group.strip()).first()
        if found_group is None:
            raise RunInputError(f"no group {group.strip()!r} on this site (groups are made in the admin)")
    return RoleGrant(role, user=found_user, group=found_group, seats=tuple(seats), view=view)


def grant_to(name: str, role: str, *, seats: Sequence[str] = (), view: str | None = None) -> RoleGrant:
    """`role` for the user `name`, or for the group `group:<name>` (as forms take them)."""
    name = name.strip()
    if not name:
        raise RunInputError("say who: a username, or group:<name> for everyone in a group")
    if name.startswith(GROUP_PREFIX):
        return grant_named(role, group=name.removeprefix(GROUP_PREFIX), seats=seats, view=view)
    return grant_named(role, user=name, seats=seats, view=view)


def role_problems(actors: Sequence[str], grant: RoleGrant) -> list[str]:
    """What is wrong with `grant` in a run of `actors` (short names): each problem says how to mend it."""
    problems = [] if (grant.user is None) != (grant.group is None) else ["give the role to one user or to one group"]
    if grant.role not in RunRole.Role.values:
        problems.append(f"role must be one of {', '.join(RunRole.Role.values)}, not {grant.role!r}")
    unknown = [seat for seat in grant.seats if seat not in actors]
    if unknown:
        problems.append(f"no actor {', '.join(map(repr, unknown))}: seats must be among {', '.join(actors)}")
    if grant.role == RunRole.Role.PLAYER and not grant.seats:
        problems.append("a player needs at least one seat (the actors they decide for)")
    if grant.role != RunRole.Role.PLAYER and grant.seats:
        problems.append(f"only a player has seats; a {grant.role} has none")
    if grant.view is not None and grant.view not in RunRole.View.values:
        problems.append(f"view must be one of {', '.join(RunRole.View.values)}, not {grant.view!r}")
    elif grant.view is not None and grant.role != RunRole.Role.OBSERVER:
        problems.append(f"only an observer has a view to choose; a {grant.role} sees "
                        + ("everything" if grant.role == RunRole.Role.FACILITATOR else "what their actors may know"))
    return problems


def check_grants(actors: Sequence[str], grants: Iterable[RoleGrant]) -> None:
    problems = [f"{grant.who}: {problem}" for grant in grants for problem in role_problems(actors, grant)]
    if problems:
        raise RunInputError("; ".join(problems))


def scenario_grants(config: EngineScenario) -> list[RoleGrant]:
    """The parts the scenario gives every run (`roles:` in scenario.yaml), to the site's groups of those names;
    a group the site does not have is skipped (and logged), so a scenario from another team still runs."""
    wanted = config.config.roles
    names = {*wanted.facilitators, *wanted.observers, *wanted.players}
    if not names:
        return []
    groups = {group.name: group for group in Group.objects.filter(name__in=names)}
    missing = sorted(names - set(groups))
    if missing:
        logger.warning("scenario %s gives roles to groups this site does not have (%s): skipped",
                       config.name, ", ".join(missing))
    grants = [RoleGrant(RunRole.Role.FACILITATOR, group=groups[n]) for n in wanted.facilitators if n in groups]
    grants += [RoleGrant(RunRole.Role.OBSERVER, group=groups[n]) for n in wanted.observers if n in groups]
    grants += [RoleGrant(RunRole.Role.PLAYER, group=groups[n], seats=tuple(seats))
               for n, seats in wanted.players.items() if n in groups]
    return grants


def family_grants(run: Run) -> list[RoleGrant]:
    """The parts of `run`, for a run of its family (a branch) to start with."""
    return [RoleGrant(part.role, user=part.user, group=part.group, seats=tuple(part.seats),
                      view=part.view if part.role == RunRole.Role.OBSERVER else None)
            for part in RunRole.objects.filter(run=run).select_related("user", "group")]


def player_seats(grants: Iterable[RoleGrant]) -> list[str]:
    """The seats `grants` give players: played by people from the start."""
    return list(dict.fromkeys(seat for grant in grants if grant.role == RunRole.Role.PLAYER for seat in grant.seats))


def observer_view(run: Run) -> str:
    """What the run's scenario lets observers see, "full" or "public"."""
    return (run.snapshot.get("config", {}).get("roles") or {}).get("observer_view", RunRole.View.FULL)


def give_part(run: Run, grant: RoleGrant) -> RunRole:
    """Store `grant` in `run`, replacing the part its user or group had (checked already: `check_grants`)."""
    view = grant.view or (observer_view(run) if grant.role == RunRole.Role.OBSERVER else RunRole.View.FULL)
    part, _ = RunRole.objects.update_or_create(
        run=run, user=grant.user, group=grant.group, defaults={"role": grant.role, "seats": list(grant.seats), "view": view})
    return part
