"""Reads about batches: who may see one, its progress, and its statistics per variation and metric."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Prefetch, QuerySet, Sum

from batches.models import Batch, BatchRun
from engine import Scenario
from engine.batch import RunOutcome, RunSpending, Variation, VariationStatistics, committed, final_metric_values, variation_statistics
from runs import selectors as run_selectors
from runs.models import CostRecord, MetricRecord, RunStatus

# A run in one of these will not play on: its cost is final. ACTIVE runs hold a worker slot.
ENDED = frozenset({RunStatus.COMPLETED, RunStatus.HALTED, RunStatus.FAILED, RunStatus.CANCELLED})
ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_FOR_HUMAN})


def batch_get(*, batch_id: int) -> Batch | None:
    return Batch.objects.select_related("owner", "scenario").filter(pk=batch_id).first()


def batches_for(user) -> QuerySet[Batch]:
    """Staff see every batch, everyone else their own, anonymous visitors none (as runs)."""
    if not user.is_authenticated:
        return Batch.objects.none()
    batches = Batch.objects.select_related("owner", "scenario")
    return batches if user.is_staff else batches.filter(owner=user)


def batches_readable(user) -> QuerySet[Batch]:
    """The batches `user` may read: every batch when reading is public (SCENARIOLAB_PUBLIC_READ), else `batches_for`."""
    return Batch.objects.select_related("owner") if settings.PUBLIC_READ else batches_for(user)


def batch_visible_to(batch: Batch, user) -> bool:
    return user.is_authenticated and (user.is_staff or batch.owner_id == user.pk)


@dataclass(frozen=True)
class BatchRunRow:
    """One planned run as the batch page lists it."""

    row: BatchRun
    status: str  # "pending" until it starts, then the run's status as people see it (crashed included)
    description: str

    @property
    def run(self):
        return self.row.run


@dataclass(frozen=True)
class BatchProgress:
    total: int
    counts: dict[str, int]  # pending, queued, running, paused, completed, halted, failed, cancelled, …
    ended: int
    active: int
    spent: float  # every started run's cost so far
    committed: float  # ended runs' costs and the others' credit limits: what the budget counts
    budget_limit: float | None
    rows: list[BatchRunRow]

    @property
    def percent(self) -> int:
        return round(100 * self.ended / self.total) if self.total else 0

    @property
    def remaining(self) -> float | None:
        return None if self.budget_limit is None else max(0.0, self.budget_limit - self.committed)

    @property
    def finished(self) -> bool:
        return self.ended == self.total


def _with_runs(rows: QuerySet[BatchRun]) -> QuerySet[BatchRun]:
    # A run's frozen scenario (its largest column) is never part of a batch's progress.
    return rows.select_related("run").defer("run__snapshot").order_by("position")


def with_progress(batches: QuerySet[Batch]) -> QuerySet[Batch]:
    """`batches` with every planned run (and its run) read in one query for all of them: a list that shows
    each batch's progress costs the same queries for 1 batch as for 50."""
    return batches.prefetch_related(Prefetch("batch_runs", queryset=_with_runs(BatchRun.objects.all())))


def _batch_rows(batch: Batch) -> list[BatchRun]:
    if "batch_runs" in getattr(batch, "_prefetched_objects_cache", {}):
        return list(batch.batch_runs.all())
    return list(_with_runs(batch.batch_runs.all()))


def batch_progress(*, batch: Batch) -> BatchProgress:
    rows = _batch_rows(batch)
    descriptions = {v["variation_id"]: v.get("description", "") for v in batch.variations}
    listed, counts = [], defaultdict(int)
    for row in rows:
        status = "pending" if row.run is None else run_selectors.run_display_status(row.run)
        counts[status] += 1
        listed.append(BatchRunRow(row, status, descriptions.get(row.variation, "")))
    runs = [row.run for row in rows if row.run is not None]
    return BatchProgress(
        total=len(rows),
        counts=dict(counts),
        ended=sum(run.status in ENDED for run in runs),
        active=sum(run.status in ACTIVE for run in runs),
        spent=sum(run.total_cost for run in runs),
        committed=committed(RunSpending(row.run.total_cost, row.reserved, row.run.status in ENDED) for row in rows if row.run),
        budget_limit=batch.budget_limit,
        rows=listed,
    )


def batch_outcomes(*, batch: Batch) -> list[RunOutcome]:
    """Every started run as statistics see it: status, the ledger's total, each metric's final value."""
    rows = list(batch.batch_runs.filter(run__isnull=False).select_related("run").defer("run__snapshot"))
    run_ids = [row.run_id for row in rows]
    costs = dict(CostRecord.objects.filter(run_id__in=run_ids).values("run").annotate(total=Sum("cost")).values_list("run", "total"))
    records = defaultdict(list)
    for record in MetricRecord.objects.filter(run_id__in=run_ids).only("run_id", "turn", "name", "actor", "value"):
        records[record.run_id].append(record)
    scenario = Scenario.model_validate(batch.snapshot)
    return [
        RunOutcome(
            variation_id=row.variation, run_number=row.number, ended=row.run.status in ENDED,
            success=row.run.status == RunStatus.COMPLETED, cost=costs.get(row.run_id) or 0.0,
            metrics=final_metric_values(records[row.run_id], scenario),
        )
        for row in rows
    ]


def batch_statistics(*, batch: Batch) -> list[VariationStatistics]:
    """Per variation: success rate and cost per run over ended runs; per metric (its final value in each
    completed run) mean, standard deviation, 95 % confidence interval, min and max."""
    return variation_statistics([Variation.from_v1(v) for v in batch.variations], batch_outcomes(batch=batch))
