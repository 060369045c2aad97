"""`manage.py run_batch CONFIG [--dry-run] [--resume] [--background]`: a batch experiment from a config file.

By default the runs are played here, up to max_parallel at once (one thread each), with progress as runs end;
`--background` queues them for the workers (`make serve`) and returns. `--dry-run` prints the runs, the
estimated cost and time, and starts nothing. `--resume` goes on with the latest unfinished batch of the same
experiment name (paused, halted or interrupted), with the config's budget and max_parallel.

Exit codes: 0 completed, 1 cancelled, 2 bad input, 3 halted by the budget, 4 paused, 130 interrupted (Ctrl-C:
paused, resume with --resume).
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from django.urls import reverse

from accounts.quotas import QuotaExceeded, quota_batch
from batches import planning, selectors, services
from batches.models import Batch, BatchStatus
from runs.management.commands.run_scenario import acting_user
from runs.models import Run

EXIT_CODES = {BatchStatus.COMPLETED: 0, BatchStatus.CANCELLED: 1, BatchStatus.HALTED: 3, BatchStatus.PAUSED: 4}
INTERRUPTED = 130


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


class LocalWorkers:
    """Plays a batch's runs in this process, one thread per run, as workers would (run, then schedule)."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="batch-run")
        self.lock = threading.Lock()
        self.playing = 0

    def dispatch(self, run: Run) -> None:
        with self.lock:
            self.playing += 1
        self.pool.submit(self.play, run.pk)

    def play(self, run_id: int) -> None:
        try:
            services.batch_run_execute(run_id=run_id, dispatch=self.dispatch)
        except Exception:  # noqa: BLE001 - one run's failure is recorded on the run; the batch goes on
            import logging

            logging.getLogger(__name__).exception("batch run %s failed", run_id)
        finally:
            close_old_connections()
            with self.lock:
                self.playing -= 1

    @property
    def busy(self) -> bool:
        with self.lock:
            return self.playing > 0

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class Command(BaseCommand):
    help = "Run a batch experiment from a batch config (V1's batch-config.yaml): many runs, statistics per variation."

    def add_arguments(self, parser) -> None:
        parser.add_argument("config", help="the batch config file (YAML)")
        parser.add_argument("--dry-run", action="store_true", help="print the runs, estimated cost and time; start nothing")
        parser.add_argument("--resume", action="store_true", help="go on with the latest unfinished batch of this experiment")
        parser.add_argument("--background", action="store_true", help="queue the runs for the workers (make serve) and return")
        parser.add_argument("--as", dest="as_user", metavar="USERNAME",
                            help="act for this user: the batch is theirs (their batch list) and within their quota")

    def handle(self, *args, **options) -> None:
        self.owner = acting_user(options["as_user"])
        try:
            self.start(options)
        except (services.RunInputError, services.RunConflict, QuotaExceeded) as exc:  # the batch errors are kinds of these
            raise bad_input(str(exc)) from None

    def start(self, options) -> None:
        path = self.path = Path(options["config"])
        config = planning.batch_config_read(path=path)
        background = options["background"]
        if options["resume"]:
            batch = self.resume(config)
            if batch is None:
                self.stdout.write(self.style.WARNING(f"No unfinished batch named {config.experiment_name!r}: starting a new one."))
        else:
            batch = None
        workers = None if background else LocalWorkers(config.max_parallel)
        dispatch = None if workers is None else workers.dispatch
        if batch is None:
            base = planning.batch_base_scenario(name=config.base_scenario, folders=True, relative_to=path.resolve().parent)
            plan = planning.batch_within_quota(plan=planning.batch_plan(config=config, base=base), owner=self.owner)
            self.describe(plan)
            if options["dry_run"]:
                self.stdout.write(f"Dry run: nothing started. To run it: python manage.py run_batch {path}")
                return
            batch = services.batch_start(plan=plan, owner=self.owner, dispatch=dispatch)
        elif options["dry_run"]:
            self.stdout.write(f"Dry run: batch {batch.pk} would be resumed ({selectors.batch_progress(batch=batch).ended} runs ended).")
            return
        elif batch.status == BatchStatus.RUNNING:  # its player was stopped (killed, or its workers are gone)
            budget = quota_batch(self.owner, runs=batch.batch_runs.count(), budget_limit=config.budget_limit,
                                 max_parallel=config.max_parallel)
            Batch.objects.filter(pk=batch.pk).update(budget_limit=budget, max_parallel=config.max_parallel)
            batch.refresh_from_db()
            services.batch_keep_going(batch=batch, dispatch=dispatch, queued=True)
        else:
            batch = services.batch_resume(batch=batch, budget_limit=config.budget_limit, max_parallel=config.max_parallel,
                                          dispatch=dispatch, by=self.owner)
        self.stdout.write(f"Batch {batch.pk}: {self.page(batch)}")
        if workers is None:
            self.stdout.write(f"Queued for the workers (start them with `make serve`); follow it at {self.page(batch)}")
            return
        self.follow(batch, workers)

    # ---- planning ------------------------------------------------------------------------------------------
    def resume(self, config) -> Batch | None:
        mine = Batch.objects.filter(owner=self.owner) if self.owner is not None else Batch.objects.all()
        return (mine.filter(experiment_name=config.experiment_name)
                .exclude(status__in=[BatchStatus.COMPLETED, BatchStatus.CANCELLED]).order_by("-created_at", "-pk").first())

    def describe(self, plan: planning.BatchPlan) -> None:
        config, out = plan.config, self.stdout
        out.write(self.style.MIGRATE_HEADING(f"{config.experiment_name} — {plan.base.config.name}"))
        if config.description:
            out.write(config.description.strip())
        out.write(f"Provider: {plan.provider}")
        out.write(f"Variations: {len(plan.variations)} × {config.runs_per_variation} runs = {len(plan.runs)} runs, "
                  f"up to {config.max_parallel} at once")
        for v in plan.variations:
            limit = f"${v.run.credit_limit:.4f}" if v.run.credit_limit is not None else "none"
            turns = f"{v.run.max_turns} turn{'s' if v.run.max_turns != 1 else ''}"
            out.write(f"  {v.variation.variation_id:03d}  {v.variation.description}: {turns}, "
                      f"${v.run.estimate.cost.low:.4f}–${v.run.estimate.cost.high:.4f} per run, credit limit {limit}")
        out.write("Runs: " + ", ".join(f"{r.name} (seed {r.seed})" for r in plan.runs))
        out.write(f"Estimated cost: ${plan.cost_low:.4f} to ${plan.cost_high:.4f}")
        if config.budget_limit is not None:
            fit = plan.affordable_runs
            note = "all fit" if fit == len(plan.runs) else f"{fit} of {len(plan.runs)} fit at their worst case; cheaper runs make room for more"
            out.write(f"Budget: ${config.budget_limit:.2f} ({note})")
        out.write(f"Estimated time: about {duration(plan.seconds)}")

    # ---- following -----------------------------------------------------------------------------------------
    def page(self, batch: Batch) -> str:
        return f"{settings.SITE_URL}{reverse('batches:detail', args=[batch.pk])}"

    def follow(self, batch: Batch, workers: LocalWorkers) -> None:
        interrupted = threading.Event()

        def on_ctrl_c(*_) -> None:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C quits at once
            interrupted.set()

        previous = signal.signal(signal.SIGINT, on_ctrl_c)
        seen: dict[int, str] = {}
        checked = time.monotonic()
        try:
            while True:
                if time.monotonic() - checked > settings.RUN_STALE_SECONDS:  # a run whose thread died is resumed
                    checked = time.monotonic()
                    services.batch_keep_going(batch=batch, dispatch=workers.dispatch)
                if interrupted.is_set() and Batch.objects.filter(pk=batch.pk, status=BatchStatus.RUNNING).exists():
                    self.stdout.write(self.style.WARNING("Pausing the batch: running runs stop at their next phase…"))
                    services.batch_pause(batch=batch)
                self.report(batch, seen)
                batch.refresh_from_db()
                if batch.status != BatchStatus.RUNNING and not workers.busy:
                    break
                time.sleep(0.2)
        finally:
            workers.close()
            signal.signal(signal.SIGINT, previous)
        self.report(batch, seen)
        self.summary(batch)
        if interrupted.is_set():
            self.stdout.write(f"Interrupted: batch {batch.pk} is paused. Resume it with: python manage.py run_batch {self.path} --resume")
            self.stdout.flush()
            raise SystemExit(INTERRUPTED)
        code = EXIT_CODES.get(batch.status, 1)
        if code:
            self.stdout.flush()
            raise SystemExit(code)

    def report(self, batch: Batch, seen: dict[int, str]) -> None:
        progress = selectors.batch_progress(batch=batch)
        for row in progress.rows:
            if row.run is None or seen.get(row.run.pk) == row.status:
                continue
            seen[row.run.pk] = row.status
            if row.status in ("queued",):
                continue
            cost = f"${row.run.total_cost:.4f}"
            self.stdout.write(f"  {row.row.name} [{row.description}; seed {row.row.seed}] {row.status}, "
                              f"turn {row.run.turn}/{row.run.max_turns}, {cost}  [{progress.ended}/{progress.total} ended]")

    def summary(self, batch: Batch) -> None:
        batch.refresh_from_db()
        progress = selectors.batch_progress(batch=batch)
        status = self.style.SUCCESS(batch.status) if batch.status == BatchStatus.COMPLETED else self.style.WARNING(batch.status)
        self.stdout.write(f"\nBatch {batch.pk} {status}: {progress.ended} of {progress.total} runs ended, ${progress.spent:.4f} spent"
                          + (f" of ${batch.budget_limit:.2f}" if batch.budget_limit is not None else ""))
        if batch.halt_reason:
            self.stdout.write(f"Reason: {batch.halt_reason}")
        for stats in selectors.batch_statistics(batch=batch):
            rate = "—" if stats.success_rate is None else f"{100 * stats.success_rate:.0f} %"
            per_run = "—" if stats.cost_per_run is None else f"${stats.cost_per_run:.4f}"
            self.stdout.write(self.style.MIGRATE_HEADING(f"Variation {stats.variation_id:03d}: {stats.description}"))
            self.stdout.write(f"  success {rate} ({stats.successful}/{stats.ended}), cost per run {per_run}")
            for name, m in stats.metrics.items():
                spread = "" if m.stdev is None else f" ± {m.stdev:.3f} sd, 95 % CI {m.ci_low:.3f}–{m.ci_high:.3f}"
                self.stdout.write(f"  {name}: mean {m.mean:.3f}{spread}, min {m.min:g}, max {m.max:g} (n={m.count})")
        self.stdout.write(f"Page: {self.page(batch)}")
