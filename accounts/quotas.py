"""Quotas: how much a user may start (runs, batches, credit limits) and where their runs stand in the queue.

The limits come from the user's `Quota`, else their groups' (the most generous, field by field), else the site's
defaults (settings.QUOTA_DEFAULTS); staff are unlimited unless a quota names them. A request past a limit it
could never have is refused with `QuotaRefused` (HTTP 403); one that only has to wait for runs under way to end,
with `QuotaBusy` (HTTP 409). Both name the limit and where it comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from django.conf import settings

from accounts.models import Quota


class QuotaExceeded(Exception):
    status = 403
    code = "quota_exceeded"


class QuotaRefused(QuotaExceeded):
    """More than the user may ever ask for (a credit limit, a batch's size, budget or parallelism)."""


class QuotaBusy(QuotaExceeded):
    """The user has as many runs under way as they may: a start must wait for one to end."""

    status = 409
    code = "quota_busy"


@dataclass(frozen=True)
class Limits:
    max_credit_limit: float | None = None
    max_runs_under_way: int | None = None
    max_batch_runs: int | None = None
    max_batch_budget: float | None = None
    max_batch_parallel: int | None = None
    priority: int = 0
    source: str = "no quota"  # said in refusals: which quota applied

    @classmethod
    def of(cls, quota: Quota, source: str) -> Limits:
        return cls(**{f.name: getattr(quota, f.name) for f in fields(cls) if f.name != "source"}, source=source)


UNLIMITED = Limits(source="unlimited")
LIMIT_FIELDS = ("max_credit_limit", "max_runs_under_way", "max_batch_runs", "max_batch_budget", "max_batch_parallel")


def _most_generous(quotas: list[Quota], source: str) -> Limits:
    values: dict = {}
    for name in LIMIT_FIELDS:
        given = [getattr(quota, name) for quota in quotas]
        values[name] = None if any(value is None for value in given) else max(given)
    return Limits(**values, priority=max(quota.priority for quota in quotas), source=source)


def user_limits(user) -> Limits:
    """The limits that apply to `user` (None, as for a command run by the machine's operator: unlimited)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return UNLIMITED
    own = Quota.objects.filter(user=user).first()
    if own is not None:
        return Limits.of(own, f"{user.get_username()}'s quota")
    if user.is_staff and settings.QUOTA_STAFF_UNLIMITED:
        return Limits(source="staff")
    groups = list(Quota.objects.filter(group__user=user).select_related("group"))
    if groups:
        return _most_generous(groups, "the quota of " + " and ".join(sorted(q.group.name for q in groups)))
    return Limits(**settings.QUOTA_DEFAULTS, source="the site's default quota")


def user_queue_priority(user) -> int:
    return user_limits(user).priority if user is not None else 0


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def quota_credit_limit(user, *, requested: float | None, planned: float | None) -> float | None:
    """The credit limit a run of `user` gets: `requested` (asked for explicitly) if within their largest, else
    refused; with none asked for, the plan's (the scenario's default) capped at their largest."""
    limits = user_limits(user)
    largest = limits.max_credit_limit
    if largest is None:
        return requested if requested is not None else planned
    if requested is not None and requested > largest:
        raise QuotaRefused(f"a credit limit of {_usd(requested)} is above {_usd(largest)}, the largest {limits.source} "
                           "allows for one run: ask for less, or ask a staff member to raise the quota")
    chosen = requested if requested is not None else planned
    return largest if chosen is None or not math.isfinite(chosen) or chosen > largest else chosen


def quota_check_room(user, *, room: int | None) -> None:
    """Refuse (QuotaBusy) a start when `user` has no `room` left under way (None: no limit)."""
    if room is None or room > 0:
        return
    limits = user_limits(user)
    most = limits.max_runs_under_way
    raise QuotaBusy(f"{user.get_username()} has {most - room} run(s) queued, running or waiting for a person, and "
                    f"{limits.source} allows {most} at once: wait for one to end (or pause or cancel one), then "
                    "start again")


def quota_batch(user, *, runs: int, budget_limit: float | None, max_parallel: int) -> float | None:
    """Refuse (QuotaRefused) a batch larger than `user` may start; return the budget it gets (a batch without a
    budget gets the largest allowed)."""
    limits = user_limits(user)
    problems = []
    if limits.max_batch_runs is not None and runs > limits.max_batch_runs:
        problems.append(f"{runs} runs (at most {limits.max_batch_runs})")
    if limits.max_batch_parallel is not None and max_parallel > limits.max_batch_parallel:
        problems.append(f"max_parallel {max_parallel} (at most {limits.max_batch_parallel})")
    if limits.max_batch_budget is not None and budget_limit is not None and budget_limit > limits.max_batch_budget:
        problems.append(f"a budget of {_usd(budget_limit)} (at most {_usd(limits.max_batch_budget)})")
    if problems:
        raise QuotaRefused(f"this batch asks for {', '.join(problems)}, more than {limits.source} allows: make it "
                           "smaller, or ask a staff member to raise the quota")
    return budget_limit if budget_limit is not None else limits.max_batch_budget
