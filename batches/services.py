"""Batch experiments: plan (dry run), start, schedule runs on workers, pause, resume, cancel.

Scheduling: `batch_schedule` starts a batch's next planned runs while fewer than `max_parallel` are active
and the budget has room for the next run's credit limit (engine.batch.budget_allows). It runs under a lock
on the batch's row, so two runs ending at once never both take the last slot or the last dollar. It is
called when a batch starts or resumes, and when one of its runs ends: batch runs are queued as
`batches.tasks.execute_batch_run`, which plays the run (runs.services.run_execute) and then schedules its
batch, in the worker that played it, so the next run starts at once without a hook in the runs app. A
periodic task (`batches_keep_going`, once a minute) catches what no run's end announces: a run resumed or
cancelled from its own page, a worker killed mid-run (its run is resumed), a run that escaped a pause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from django.db import transaction
from django.db.models.functions import Now
from django.utils.text import slugify

from accounts.quotas import quota_batch, quota_credit_limit, user_limits
from batches.models import Batch, BatchRun, BatchStatus
from batches.selectors import ACTIVE, ENDED
from engine import Scenario
from engine.batch import (
    BatchConfig,
    BatchConfigError,
    PlannedRun,
    RunSpending,
    Variation,
    apply_variation,
    budget_allows,
    check_variations,
    committed,
    estimated_seconds,
    planned_runs,
    run_credit_limit,
    run_reserve,
)
from engine.scenario.errors import ScenarioLoadError
from engine.scenario.loader import MAX_FILE_BYTES, yaml_size_problem
from runs import selectors as run_selectors
from runs.models import Run, RunStatus
from runs.services import (
    RunConflict,
    RunInputError,
    RunPlan,
    run_cancel,
    run_create,
    run_pause,
    run_plan,
    run_resume,
    runs_room,
)

logger = logging.getLogger(__name__)

Dispatch = Callable[[Run], None]


class BatchInputError(RunInputError):
    """The batch config is wrong (the API answers 400); the message names the key."""


class BatchConflict(RunConflict):
    """The batch is not in a state that allows this (the API answers 409)."""


# ---- the config and its plan ---------------------------------------------------------------------------------
def batch_config_parse(*, text: str, source: str = "the batch config") -> BatchConfig:
    """A batch config from YAML (or JSON) text, within the limits of a scenario file (1 MiB, aliases expanded
    to at most 100,000 values: a few lines of YAML aliases would otherwise stand for billions)."""
    if len(text) > MAX_FILE_BYTES:
        raise BatchInputError(f"{source}: larger than 1 MiB, the limit for a batch config")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        too_big = yaml_size_problem(root) if root is not None else None
        data = loader.construct_document(root) if root is not None and not too_big else None
    except yaml.YAMLError as exc:
        raise BatchInputError(f"{source}: not valid YAML ({exc})".replace("\n", " ")) from None
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:  # e.g. `!!int abc`, 2025-13-45
        raise BatchInputError(f"{source}: a value could not be read ({exc})".replace("\n", " ")) from None
    finally:
        loader.dispose()
    if too_big:
        raise BatchInputError(f"{source}: {too_big}")
    try:
        return BatchConfig.parse(data, source=source)
    except BatchConfigError as exc:
        raise BatchInputError(str(exc)) from None


def batch_config_read(*, path: str | Path) -> BatchConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchInputError(f"{path}: cannot read the batch config ({exc})") from None
    return batch_config_parse(text=text, source=str(path))


@dataclass(frozen=True)
class BaseScenario:
    stored: object | None  # scenarios.models.Scenario, when the batch names a stored one
    config: Scenario
    slug: str


def batch_base_scenario(*, name: str, folders: bool = False, relative_to: Path | None = None) -> BaseScenario:
    """The scenario a batch varies: a stored (or bundled) scenario's slug, or with `folders` a scenario folder
    (as V1 gave it: relative to the current folder, else to the config file's folder)."""
    from scenarios.selectors import scenario_get
    from scenarios.services import scenario_import_library, scenario_to_engine

    scenario_import_library()  # bundled scenarios are there on a fresh database; idempotent
    stored = scenario_get(slug=name)
    if stored is not None:
        try:
            return BaseScenario(stored, scenario_to_engine(scenario=stored), stored.slug)
        except ScenarioLoadError as exc:
            raise BatchConflict(f"scenario {stored.slug} does not validate, so it cannot run: {exc}") from None
    if folders:
        for candidate in [Path(name), *([relative_to / name] if relative_to else [])]:
            if candidate.is_dir():
                folder = candidate.resolve()
                label = folder.parent.name if folder.name == "definition" else folder.name
                try:
                    config = Scenario.load(folder)
                except ScenarioLoadError as exc:
                    raise BatchInputError(f"base_scenario: {exc}") from None
                return BaseScenario(None, config, slugify(label) or "scenario")
    where = "a stored scenario's slug or a scenario folder" if folders else "a stored scenario's slug"
    raise BatchInputError(f"base_scenario: no scenario {name!r}; give {where}")


@dataclass(frozen=True)
class VariationPlan:
    variation: Variation
    run: RunPlan  # what each run of the variation will be (its seed set per run)
    reserve: float | None  # what a run may spend at most: its credit limit (None: unbounded)


@dataclass(frozen=True)
class BatchPlan:
    """A batch before it exists: what a dry run prints and the API's plan returns."""

    config: BatchConfig
    base: BaseScenario
    variations: tuple[VariationPlan, ...]
    runs: tuple[PlannedRun, ...]

    @property
    def offline(self) -> bool:
        return all(v.run.choice.offline for v in self.variations)

    @property
    def provider(self) -> str:
        return self.variations[0].run.choice.description

    def variation(self, variation_id: int) -> VariationPlan:
        return self.variations[variation_id - 1]

    @property
    def cost_low(self) -> float:
        return sum(self.variation(r.variation_id).run.estimate.cost.low for r in self.runs)

    @property
    def cost_high(self) -> float:
        return sum(self.variation(r.variation_id).run.estimate.cost.high for r in self.runs)

    @property
    def affordable_runs(self) -> int:
        """How many runs start, in order, if each spent its whole limit: all of them unless the budget binds."""
        spent = 0.0
        for count, planned in enumerate(self.runs):
            reserve = self.variation(planned.variation_id).reserve
            if not budget_allows(budget_limit=self.config.budget_limit, committed=spent, run_limit=reserve):
                return count
            spent += reserve or 0.0
        return len(self.runs)

    @property
    def seconds(self) -> float:
        turns = max(v.run.max_turns for v in self.variations)
        return estimated_seconds(runs=len(self.runs), max_parallel=self.config.max_parallel, turns=turns, offline=self.offline)

    def summary(self) -> dict:
        """As JSON: the API's plan and `run_batch --dry-run --json`."""
        return {
            "experiment_name": self.config.experiment_name,
            "scenario": self.base.slug,
            "provider": self.provider,
            "offline": self.offline,
            "total_runs": len(self.runs),
            "affordable_runs": self.affordable_runs,
            "max_parallel": self.config.max_parallel,
            "budget_limit": self.config.budget_limit,
            "cost": {"low": self.cost_low, "high": self.cost_high},
            "estimated_seconds": self.seconds,
            "variations": [
                {"variation_id": v.variation.variation_id, "description": v.variation.description,
                 "modifications": v.variation.to_v1()["modifications"], "turns": v.run.max_turns,
                 "credit_limit": v.run.credit_limit,
                 "cost_per_run": {"low": v.run.estimate.cost.low, "high": v.run.estimate.cost.high}}
                for v in self.variations
            ],
            "runs": [{"name": r.name, "variation_id": r.variation_id, "run_number": r.run_number, "seed": r.seed}
                     for r in self.runs],
        }


def _variation_plan(config: BatchConfig, base: Scenario, variation: Variation, *, largest: float | None = None) -> VariationPlan:
    """`largest`: the largest credit limit the batch's owner may give a run (their quota), if any."""
    plan = run_plan(config=apply_variation(base, variation), turns=config.turns, provider=config.provider)
    high = plan.estimate.cost.high
    offline = plan.choice.offline
    limit = run_credit_limit(config, estimate_high=high, scenario_limit=plan.credit_limit, offline=offline)
    limit = limit if limit is not None else plan.credit_limit
    if largest is not None:
        limit = largest if limit is None else min(limit, largest)
    plan = replace(plan, credit_limit=limit)
    return VariationPlan(variation, plan, run_reserve(plan.credit_limit, estimate_high=high, offline=offline))


def batch_plan(*, config: BatchConfig, base: BaseScenario, owner=None) -> BatchPlan:
    """Every variation checked against the scenario and planned (provider, estimate, credit limit, capped at the
    largest `owner`'s quota allows)."""
    try:
        found = check_variations(config, base.config)
    except BatchConfigError as exc:
        raise BatchInputError(str(exc)) from None
    largest = user_limits(owner).max_credit_limit
    plans = tuple(_variation_plan(config, base.config, variation, largest=largest) for variation in found)
    runs = tuple(planned_runs(config, base_seeds=[v.run.config.config.seed for v in plans]))
    return BatchPlan(config, base, plans, runs)


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


def batch_within_quota(*, plan: BatchPlan, owner) -> BatchPlan:
    """The plan as `owner` may start it: refused (QuotaRefused) if it has more runs, a larger budget, more runs
    at once or a larger run credit limit than their quota allows; a batch without a budget gets their largest,
    its runs' credit limits capped at their largest."""
    config = plan.config
    budget = quota_batch(owner, runs=len(plan.runs), budget_limit=config.budget_limit, max_parallel=config.max_parallel)
    quota_credit_limit(owner, requested=config.cost_per_run_limit, planned=None)
    if budget != config.budget_limit:
        try:
            config = BatchConfig.model_validate({**config.model_dump(mode="json"), "budget_limit": budget})
        except ValueError as exc:
            raise BatchInputError(f"with the budget of your quota (${budget:.2f}): {exc}") from None
    return batch_plan(config=config, base=plan.base, owner=owner)


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
        active = sum(run.status in ACTIVE for run in runs)
        spent = committed(_spending(row) for row in rows if row.run is not None)
        pending = [row for row in rows if row.run is None]
        plans: dict[int, VariationPlan] = {}
        config = BatchConfig.model_validate(batch.config)
        base = Scenario.model_validate(batch.snapshot)
        # The owner's quota: the largest credit limit of a run, and runs under way at once (theirs, of any kind:
        # their row stays locked until the commit, as when they start a run themselves).
        limits = user_limits(batch.owner)
        room = runs_room(owner=batch.owner)
        for row in pending:
            if active >= batch.max_parallel or (room is not None and room <= 0):
                break
            try:
                if row.variation not in plans:
                    plans[row.variation] = _variation_plan(config, base, Variation.from_v1(batch.variations[row.variation - 1]),
                                                           largest=limits.max_credit_limit)
            except (RunInputError, BatchConfigError) as exc:
                _halt(batch, f"{row.name} cannot start: {exc}")
                break
            variation = plans[row.variation]
            if not budget_allows(budget_limit=batch.budget_limit, committed=spent, run_limit=variation.reserve):
                if active == 0:  # nothing under way can give money back: the batch stops here
                    need = "an unbounded run" if variation.reserve is None else f"up to ${variation.reserve:.4f}"
                    _halt(batch, f"budget: ${max(0.0, batch.budget_limit - spent):.4f} of ${batch.budget_limit:.2f} "
                                 f"left, and {row.name} may cost {need}")
                break
            run = run_create(plan=replace(variation.run, seed=row.seed), slug=batch.scenario_slug,
                             scenario=batch.scenario, owner=batch.owner)
            row.run, row.reserved = run, variation.reserve
            row.save(update_fields=["run", "reserved"])
            spent += variation.reserve or 0.0
            active += 1
            room = None if room is None else room - 1
            started.append(run)
        if batch.status == BatchStatus.RUNNING and len(pending) == len(started) and active == 0 \
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
    from runs.services import run_execute

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
