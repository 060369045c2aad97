"""Reads about runs: lookups, whether a run has crashed, cost breakdowns."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from runs.models import CostRecord, Run, RunStatus

CRASHED = "crashed"
RESUMABLE = {RunStatus.PAUSED, RunStatus.HALTED, RunStatus.FAILED, RunStatus.COMPLETED}


def run_get(*, run_id: int) -> Run | None:
    return Run.objects.filter(pk=run_id).first()


def run_is_crashed(run: Run, *, now: datetime | None = None) -> bool:
    """A running run whose worker stopped writing its heartbeat: the process died (kill -9, a reboot)."""
    if run.status != RunStatus.RUNNING:
        return False
    if run.heartbeat_at is None:
        return True
    return (now or timezone.now()) - run.heartbeat_at > timedelta(seconds=settings.RUN_STALE_SECONDS)


def runs_with_status(runs: QuerySet[Run], status: str) -> QuerySet[Run]:
    """Filter by the status people see: "crashed" is running with a stale heartbeat, "running" a live one."""
    stale = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
    crashed = Q(status=RunStatus.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))
    if status == CRASHED:
        return runs.filter(crashed)
    if status == RunStatus.RUNNING:
        return runs.filter(status=RunStatus.RUNNING).exclude(crashed)
    return runs.filter(status=status)


def run_display_status(run: Run) -> str:
    return CRASHED if run_is_crashed(run) else run.status


def run_is_resumable(run: Run) -> bool:
    return run.status in RESUMABLE or run_is_crashed(run)


def run_progress(run: Run) -> str:
    return f"{run.turn}/{run.max_turns}"


def run_cost_breakdown(*, run: Run) -> dict[str, dict]:
    """Cost, tokens and calls by actor, phase and turn, summed by the database from the ledger."""
    ledger = CostRecord.objects.filter(run=run)

    def grouped(field: str) -> dict:
        rows = ledger.values(field).annotate(cost=Sum("cost"), input=Sum("input_tokens"), output=Sum("output_tokens"), calls=Count("id"))
        return {
            (row[field] if row[field] != "" else "world"): {
                "cost": row["cost"], "tokens": row["input"] + row["output"], "calls": row["calls"],
            }
            for row in rows.order_by(field)
        }

    return {"by_actor": grouped("actor"), "by_phase": grouped("phase"), "by_turn": grouped("turn")}


def runs_for(user) -> QuerySet[Run]:
    """The runs a person may see: staff see every run, everyone else their own, anonymous visitors none."""
    if not user.is_authenticated:
        return Run.objects.none()
    runs = Run.objects.select_related("owner", "scenario")
    return runs if user.is_staff else runs.filter(owner=user)


def run_visible_to(run: Run, user) -> bool:
    return user.is_authenticated and (user.is_staff or run.owner_id == user.pk)
