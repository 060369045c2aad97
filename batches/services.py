"""Batch experiments: start, schedule runs on workers, pause, resume, cancel (planning: batches.planning).

Scheduling: `batch_schedule` starts a batch's next planned runs while fewer than `max_parallel` are active
and the budget has room for the next run's credit limit (engine.batch.BatchScheduler). It runs under a lock
on the batch's row, so two runs ending at once never both take the last slot or the last dollar. It is
called when a batch starts or resumes, and when one of its runs ends: batch runs are queued as
`batches.tasks.execute_batch_run`, which plays the run (runs.execution.executor.run_execute) and then schedules its
batch, in the worker that played it, so the next run starts at once without a hook in the runs app. A
periodic task (`batches_keep_going`, once a minute) catches what no run's end announces: a run resumed or
cancelled from its own page, a worker killed mid-run (its run is resumed), a run that escaped a pause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from django.db import transaction
from django.db.models.functions import Now

from accounts.quotas import quota_batch, user_limits
from batches.models import Batch, BatchRun, BatchStatus
from batches.planning import BatchConflict, BatchInputError, BatchPlan, VariationPlan, batch_within_quota, variation_plan
from batches.selectors import ACTIVE, ENDED
from engine import Scenario
from engine.batch import BatchConfig, BatchConfigError, BatchScheduler, RunSpending, Variation, committed
from runs import selectors as run_selectors
from runs.models import Run, RunStatus
from runs.services import RunConflict, RunInputError, run_cancel, run_create, run_pause, run_resume, runs_room

logger = logging.getLogger(__name__)

Dispatch = Callable[[Run], None]


# ---- starting ------------------------------------------------------------------------------------------------
def _enqueue(run: Run) -> None:
    from batches.tasks import execute_batch_run  # tasks import this module

    execute_batch_run(run.pk, priority=run_selectors.run_queue_priority(run))


def batch_create(*, plan: BatchPlan, owner=None) -> Batch:
    """The batch and a row per planned run, RUNNING; nothing started yet (see batch_start)."""
    config = plan.config
    with transaction.atomic():
        batch = Batch.objects.create(
            experiment_name=config.experiment_name,
            description=config.description,
            config=config.model_dump(mode="json", exclude_none=True),
            scenario=plan.base.stored,
            scenario_name=plan.base.config.name,
            scenario_slug=plan.base.slug,
            snapshot=plan.base.config.model_dump(mode="json", exclude={"source", "warnings"}),
            variations=[v.variation.to_v1() for v in plan.variations],
            owner=owner,
            max_parallel=config.max_parallel,
            budget_limit=config.budget_limit,
        )
        BatchRun.objects.bulk_create(
            BatchRun(batch=batch, position=position, variation=r.variation_id, number=r.run_number, seed=r.seed)
            for position, r in enumerate(plan.runs, start=1)
        )
    return batch

def batch_start(*, plan: BatchPlan, owner=None, dispatch: Dispatch | None = None) -> Batch:
    """Create the batch within `owner`'s quota and start its first runs (on workers, unless `dispatch` plays
    them elsewhere)."""
    plan = batch_within_quota(plan=plan, owner=owner)
    batch = batch_create(plan=plan, owner=owner)
    batch_schedule(batch_id=batch.pk, dispatch=dispatch)
    batch.refresh_from_db()
    return batch


def _spending(row: BatchRun) -> RunSpending:
    return RunSpending(cost=row.run.total_cost, reserved=row.reserved, ended=row.run.status in ENDED)


def batch_schedule(*, batch_id: int, dispatch: Dispatch | None = None) -> list[Run]:
    """Start the batch's next runs while a slot is free and the budget has room for each one's limit; mark the
    batch completed when every planned run has ended, halted when the budget cannot start the next one and
    nothing running could give money back. Returns the runs started (handed to `dispatch` after commit)."""
    dispatch = dispatch or _enqueue
    started: list[Run] = []
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None or batch.status != BatchStatus.RUNNING:
            return []
        rows = list(batch.batch_runs.select_related("run").order_by("position"))
        runs = [row.run for row in rows if row.run is not None]
        pending = [row for row in rows if row.run is None]
        plans: dict[int, VariationPlan] = {}
        config = BatchConfig.model_validate(batch.config)
        base = Scenario.model_validate(batch.snapshot)
        # The owner's quota: the largest credit limit of a run, and runs under way at once (theirs, of any kind:
        # their row stays locked until the commit, as when they start a run themselves).
        limits = user_limits(batch.owner)
        scheduler = BatchScheduler(
            budget_limit=batch.budget_limit, max_parallel=batch.max_parallel, room=runs_room(owner=batch.owner),
            active=sum(run.status in ACTIVE for run in runs), committed=committed(_spending(row) for row in rows if row.run is not None),
        )
        for row in pending:
            if not scheduler.has_slot:
                break
            try:
                if row.variation not in plans:
                    plans[row.variation] = variation_plan(config, base, Variation.from_v1(batch.variations[row.variation - 1]),
                                                           largest=limits.max_credit_limit)
            except (RunInputError, BatchConfigError) as exc:
                _halt(batch, f"{row.name} cannot start: {exc}")
                break
            variation = plans[row.variation]
            if not scheduler.admit(row.name, variation.reserve):
                if scheduler.halt_reason:  # nothing under way can give money back: the batch stops here
                    _halt(batch, scheduler.halt_reason)
                break
            run = run_create(plan=replace(variation.run, seed=row.seed), slug=batch.scenario_slug,
                             scenario=batch.scenario, owner=batch.owner)
            row.run, row.reserved = run, variation.reserve
            row.save(update_fields=["run", "reserved"])
            started.append(run)
        if batch.status == BatchStatus.RUNNING and len(pending) == len(started) and scheduler.active == 0 \
                and all(run.status in ENDED for run in runs):
            batch.status = BatchStatus.COMPLETED
            batch.save(update_fields=["status"])
            Batch.objects.filter(pk=batch.pk).update(finished_at=Now())
        for run in started:
            transaction.on_commit(lambda run=run: dispatch(run))
    return started


def _halt(batch: Batch, reason: str) -> None:
    batch.status, batch.halt_reason = BatchStatus.HALTED, reason
    batch.save(update_fields=["status", "halt_reason"])
    logger.info("batch %s halted: %s", batch.pk, reason)


def batch_run_execute(*, run_id: int, dispatch: Dispatch | None = None, **options) -> Run | None:
    """Play a batch's run here (a worker's task, or `run_batch` in the terminal), then start what can start.
    A run of a batch that is not running stays queued: resuming the batch hands it out again."""
    from runs.execution.executor import run_execute

    row = BatchRun.objects.select_related("batch").filter(run_id=run_id).first()
    if row is not None and row.batch.status != BatchStatus.RUNNING:
        return None
    try:
        # A worker that stops mid-run queues it again as a batch run, so its end still schedules the batch.
        return run_execute(run_id=run_id, requeue=dispatch or _enqueue, **options)
    finally:
        if row is not None:
            batch_schedule(batch_id=row.batch_id, dispatch=dispatch)


# ---- steering ------------------------------------------------------------------------------------------------
def _started_runs(batch: Batch) -> list[Run]:
    return list(Run.objects.filter(batch_run__batch=batch).order_by("batch_run__position"))


def batch_pause(*, batch: Batch) -> Batch:
    """No run starts; running runs pause at their next phase boundary, queued ones stay queued."""
    if not Batch.objects.filter(pk=batch.pk, status=BatchStatus.RUNNING).update(status=BatchStatus.PAUSED):
        batch.refresh_from_db()
        raise BatchConflict(f"batch {batch.pk} is {batch.status}: only a running batch can be paused")
    _pause_running(batch)
    batch.refresh_from_db()
    return batch


def _pause_running(batch: Batch) -> None:
    for run in _started_runs(batch):
        if run.status == RunStatus.RUNNING and not run.pause_requested and not run_selectors.run_is_crashed(run):
            try:
                run_pause(run=run)
            except RunConflict:
                pass  # it ended meanwhile


def batch_resume(*, batch: Batch, budget_limit: float | None = None, max_parallel: int | None = None,
                 dispatch: Dispatch | None = None, by=None) -> Batch:
    """Go on with a paused or halted batch (optionally with a larger budget or more runs at once): runs it
    paused, crashed runs and queued runs are handed out again, then new runs start as slots and budget allow.
    `by`: the person asking, whose quota a new budget and max_parallel must fit."""
    if budget_limit is not None and not budget_limit > 0:
        raise BatchInputError(f"the budget must be a positive number of USD, not {budget_limit}")
    if max_parallel is not None and not 1 <= max_parallel <= 64:
        raise BatchInputError(f"max_parallel must be between 1 and 64, not {max_parallel}")
    if by is not None and (budget_limit is not None or max_parallel is not None):
        quota_batch(by, runs=batch.batch_runs.count(), budget_limit=budget_limit,
                    max_parallel=max_parallel if max_parallel is not None else batch.max_parallel)
    changes: dict = {"status": BatchStatus.RUNNING, "halt_reason": ""}
    if budget_limit is not None:
        changes["budget_limit"] = budget_limit
    if max_parallel is not None:
        changes["max_parallel"] = max_parallel
    if not Batch.objects.filter(pk=batch.pk, status__in=[BatchStatus.PAUSED, BatchStatus.HALTED]).update(**changes):
        batch.refresh_from_db()
        raise BatchConflict(f"batch {batch.pk} is {batch.status}: only a paused or halted batch can be resumed")
    batch.refresh_from_db()
    _hand_out_again(batch, dispatch or _enqueue)
    batch_schedule(batch_id=batch.pk, dispatch=dispatch)
    batch.refresh_from_db()
    return batch


def _hand_out_again(batch: Batch, dispatch: Dispatch, *, crashed_only: bool = False) -> None:
    """Queued runs (their task may have passed while the batch paused: a second task for a run finds it
    claimed) and crashed ones go to workers again; paused ones too, while the owner has room under way (the rest
    wait for the next time the batch keeps going)."""
    with transaction.atomic():
        room = None if crashed_only else runs_room(owner=batch.owner)
        for run in _started_runs(batch):
            if run.status == RunStatus.QUEUED and not crashed_only:
                transaction.on_commit(lambda run=run: dispatch(run))
                continue
            paused = run.status == RunStatus.PAUSED and not crashed_only and (room is None or room > 0)
            if not paused and not run_selectors.run_is_crashed(run):  # a crashed run is under way already
                continue
            try:
                run = run_resume(run=run, enqueue=False)
            except RunConflict:
                continue
            if paused and room is not None:
                room -= 1
            transaction.on_commit(lambda run=run: dispatch(run))


def batch_cancel(*, batch: Batch) -> Batch:
    """No run starts again; runs under way are cancelled (an executing one at its worker's next heartbeat)."""
    open_states = [BatchStatus.RUNNING, BatchStatus.PAUSED, BatchStatus.HALTED]
    if not Batch.objects.filter(pk=batch.pk, status__in=open_states).update(status=BatchStatus.CANCELLED, finished_at=Now()):
        batch.refresh_from_db()
        raise BatchConflict(f"batch {batch.pk} is already {batch.status}")
    for run in _started_runs(batch):
        if run.status not in ENDED:
            try:
                run_cancel(run=run)
            except RunConflict:
                pass
    batch.refresh_from_db()
    return batch


def batch_keep_going(*, batch: Batch, dispatch: Dispatch | None = None, queued: bool = False) -> None:
    """What no run's end announces: a running batch resumes its crashed runs (and with `queued` hands out its
    queued runs again: their player is gone) and starts what can start (a run resumed or cancelled from its
    own page ends without its batch's task); a paused batch pauses runs claimed as it paused."""
    if batch.status == BatchStatus.RUNNING:
        _hand_out_again(batch, dispatch or _enqueue, crashed_only=not queued)
        batch_schedule(batch_id=batch.pk, dispatch=dispatch)
    elif batch.status == BatchStatus.PAUSED:
        _pause_running(batch)


def batches_keep_going(*, dispatch: Dispatch | None = None) -> None:
    """Once a minute, for every running or paused batch (see batch_keep_going)."""
    for batch in Batch.objects.filter(status__in=[BatchStatus.RUNNING, BatchStatus.PAUSED]):
        batch_keep_going(batch=batch, dispatch=dispatch)
