"""The run table: the runs someone may see, filtered and sorted, as the run list page and `GET /api/runs/` show
them. Filters narrow by scenario, status (as people see it), owner, batch, family, a seat's model and tag."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet, TextField
from django.db.models.functions import Cast

from runs import selectors
from runs.models import Run, RunTag

# How the table may be sorted: the name people choose, and the order it means (newest first breaks ties).
SORTS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "cost": ("-total_cost", "-created_at", "-id"),
    "scenario": ("scenario_name", "-created_at", "-id"),
    "status": ("status", "-created_at", "-id"),
}


@dataclass(frozen=True)
class RunFilters:
    scenario: str = ""  # a scenario's slug
    status: str = ""  # as people see it: "crashed" included
    owner: str = ""  # a username
    batch: int | None = None  # a batch's id: its runs
    family: int | None = None  # a run's id: every run of its family tree the reader may see
    model: str = ""  # a seat's model, exactly
    tag: str = ""
    sort: str = "newest"


def runs_listed(*, user, filters: RunFilters = RunFilters()) -> QuerySet[Run]:
    """The runs `user` may read narrowed by `filters`, in its sort, with their tags, without the frozen scenario
    (often the largest column, not part of a run's summary)."""
    runs = selectors.runs_readable(user)
    if filters.scenario:
        runs = runs.filter(scenario_slug=filters.scenario)
    if filters.status:
        runs = selectors.runs_with_status(runs, filters.status)
    if filters.owner:
        runs = runs.filter(owner__username=filters.owner)
    if filters.batch is not None:
        runs = runs.filter(batch_run__batch_id=filters.batch)
    if filters.family is not None:
        runs = runs.filter(pk__in=_family_ids(filters.family, user))
    if filters.model:
        # A seat's model inside the stored seats (JSON as text, the same on SQLite and PostgreSQL).
        pattern = r'"model": *"' + re.escape(filters.model) + '"'
        runs = runs.annotate(seats_text=Cast("actors", TextField())).filter(seats_text__regex=pattern)
    if filters.tag:
        runs = runs.filter(tags__name=filters.tag)
    order = SORTS.get(filters.sort, SORTS["newest"])
    return runs.order_by(*order).defer("snapshot").prefetch_related(Prefetch("tags", queryset=RunTag.objects.order_by("name")))


def _family_ids(run_id: int, user) -> list[int]:
    run = selectors.run_by_id(run_id)
    if run is None or not user.has_perm("runs.see_run", run):
        return []
    return [member.run.pk for member in selectors.run_family(run=run, user=user)]


def tags_in_use(user) -> list[str]:
    """Every tag on a run `user` may read, for the table's tag filter."""
    return list(RunTag.objects.filter(run__in=selectors.runs_readable(user).values("pk"))
                .order_by("name").values_list("name", flat=True).distinct())
