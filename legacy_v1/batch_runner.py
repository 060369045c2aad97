"""V1's batch runner over the engine: `python legacy_v1/batch_runner.py BATCH_CONFIG [--resume] [--dry-run]`.

Same config (batch-config.yaml, see engine/batch.py) and the same files as V1 in `output_dir`:
batch-config.yaml (a copy), batch-state.json, batch-costs.json, batch-summary.json, runs/var-XXX-run-YYY/ (each
a V1 run directory written by engine/v1's V1RunDirectory), scenarios/var-XXX/ (the folder each variation
plays, so `run_scenario.py --resume` works on a single run) and, unless `aggregate_metrics: false`, the
analysis of batch_analyzer.py. There is no turn loop here: the engine plays each run.

Up to max_parallel runs play at once in this process. A run starts only if its credit limit (cost_per_run_limit,
else under a budget the estimate's worst case) fits in what the budget has left after finished runs' real
costs and the limits of runs under way; when nothing under way could give money back, the batch stops.
Costs are the runs' ledgers: batch-costs.json adds up exactly what the run directories say was spent.

--resume reads batch-state.json and batch-costs.json, skips completed runs, continues interrupted ones from
their directories (as `run_scenario.py --resume` does, in a process of its own) and starts the rest.

Exit codes: 0 every run was played (some may have failed: see batch-summary.json), 2 bad input, 3 stopped by
the budget, 130 Ctrl-C (the runs under way are saved halted; --resume continues them).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from engine import Runner, Scenario  # noqa: E402
from engine.batch import (  # noqa: E402
    BatchConfig,
    BatchConfigError,
    BatchScheduler,
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
from engine.estimate import estimate_run_cost  # noqa: E402
from engine.llm.provider import LLMProvider  # noqa: E402
from engine.llm.routing import RoutingError, provider_from_environment  # noqa: E402
from engine.scenario.errors import ScenarioLoadError  # noqa: E402
from engine.scenario.export import export_scenario_folder  # noqa: E402
from engine.state import ScenarioState  # noqa: E402
from engine.v1 import RunDirectoryError, V1RunDirectory, read_run_directory, v1_status  # noqa: E402
from legacy_v1.batch_files import BatchCosts, BatchState, RunLog, now, write_json  # noqa: E402

RUN_SCENARIO = Path(__file__).resolve().parent / "run_scenario.py"
STATE_FILE, COSTS_FILE, SUMMARY_FILE, CONFIG_COPY = "batch-state.json", "batch-costs.json", "batch-summary.json", "batch-config.yaml"
EXIT_BUDGET, EXIT_INTERRUPTED = 3, 130
log = logging.getLogger("scenario_lab.batch")


class BadInput(Exception):
    """Exit 2 with this message."""


# ---- the planned batch -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariationSetup:
    variation: Variation
    scenario: Scenario
    provider: LLMProvider
    provider_description: str
    cost_low: float
    cost_high: float
    credit_limit: float | None
    reserve: float | None  # what the budget holds while a run of it plays


def load_config(path: Path) -> BatchConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the batch config ({exc})") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    try:
        return BatchConfig.parse(data, source=str(path))
    except BatchConfigError as exc:
        raise BadInput(str(exc)) from None


def find_base_scenario(config: BatchConfig, config_path: Path) -> Path:
    """V1 read base_scenario relative to the folder it was started in; the config's own folder is tried next."""
    for candidate in (Path(config.base_scenario), config_path.resolve().parent / config.base_scenario):
        if candidate.is_dir():
            return candidate
    raise BadInput(f"{config_path}: base_scenario {config.base_scenario!r} is not a scenario folder "
                   "(relative to the current folder or to the config file)")


def set_up_variations(config: BatchConfig, base: Scenario) -> list[VariationSetup]:
    setups = []
    try:
        found = check_variations(config, base)
    except BatchConfigError as exc:
        raise BadInput(str(exc)) from None
    for variation in found:
        scenario = apply_variation(base, variation)
        if config.turns is not None:  # V1's runs complete when they have played the scenario's turns
            scenario = scenario.model_copy(update={"config": scenario.config.model_copy(update={"turns": config.turns})})
        try:
            choice = provider_from_environment(scenario, provider=config.provider or None)
        except RoutingError as exc:
            raise BadInput(f"variation {variation.variation_id} ({variation.description}): {exc}") from None
        estimate = estimate_run_cost(scenario, choice.provider, turns=scenario.config.turns)
        limit = run_credit_limit(config, estimate_high=estimate.cost.high, scenario_limit=scenario.config.credit_limit)
        setups.append(VariationSetup(variation, scenario, choice.provider, choice.description, estimate.cost.low,
                                     estimate.cost.high, limit, run_reserve(limit, estimate_high=estimate.cost.high)))
    return setups


# ---- the batch ---------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    run_id: str
    variation_id: int
    success: bool
    status: str  # V1's: success, cost_limit_exceeded, failed
    cost: float
    error: str | None


class BatchRunner:
    def __init__(self, config_path: Path, *, resume: bool, progress: bool, out: TextIO) -> None:
        self.config_path = config_path
        self.config = load_config(config_path)
        self.base_path = find_base_scenario(self.config, config_path)
        try:
            self.base = Scenario.load(self.base_path)
        except ScenarioLoadError as exc:
            raise BadInput(str(exc)) from None
        self.setups = set_up_variations(self.config, self.base)
        self.runs = planned_runs(self.config, base_seeds=[s.scenario.config.seed for s in self.setups])
        self.output = Path(self.config.default_output_dir())
        self.resume, self.progress, self.out = resume, progress, out
        self.stop_reason: str | None = None

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def setup(self, variation_id: int) -> VariationSetup:
        return self.setups[variation_id - 1]

    # ---- dry run ---------------------------------------------------------------------------------------------
    def preview(self) -> int:
        config = self.config
        total = len(self.runs)
        self.say("=" * 70)
        self.say(f"{'BATCH PREVIEW':^70}")
        self.say("=" * 70)
        self.say(f"Experiment: {config.experiment_name}")
        if config.description:
            self.say(f"   {config.description.strip()}")
        self.say(f"Base scenario: {self.base_path} ({self.base.name})")
        self.say(f"Provider: {self.setups[0].provider_description}")
        self.say(f"Variations: {len(self.setups)}   Runs per variation: {config.runs_per_variation}   Total runs: {total}")
        self.say(f"Execution: {'parallel, ' + str(config.max_parallel) + ' runs at once' if config.max_parallel > 1 else 'sequential'}")
        self.say(f"Budget limit: {'$%.2f' % config.budget_limit if config.budget_limit is not None else 'none (unlimited)'}")
        if config.cost_per_run_limit is not None:
            self.say(f"Per-run cost limit: ${config.cost_per_run_limit:.2f}")
        low = sum(self.setup(r.variation_id).cost_low for r in self.runs)
        high = sum(self.setup(r.variation_id).cost_high for r in self.runs)
        self.say(f"Estimated cost: ${low:.4f} to ${high:.4f} (per run ${low / total:.4f} to ${high / total:.4f})")
        if config.budget_limit is not None:
            spent, fit = 0.0, 0
            for planned in self.runs:
                reserve = self.setup(planned.variation_id).reserve
                if not budget_allows(budget_limit=config.budget_limit, committed=spent, run_limit=reserve):
                    break
                spent, fit = spent + (reserve or 0.0), fit + 1
            self.say(f"Budget: {fit} of {total} runs fit if each spent its whole limit; cheaper runs make room for more")
        seconds = estimated_seconds(runs=total, max_parallel=config.max_parallel, turns=max(s.scenario.config.turns for s in self.setups),
                                    offline=all("offline" in s.provider_description for s in self.setups))
        self.say(f"Estimated time: about {seconds / 60:.0f} min" if seconds >= 60 else f"Estimated time: about {seconds:.0f} s")
        self.say("Variations:")
        for setup in self.setups:
            limit = f"${setup.credit_limit:.4f}" if setup.credit_limit is not None else "none"
            self.say(f"   {setup.variation.variation_id}. {setup.variation.description}  "
                     f"(${setup.cost_low:.4f} to ${setup.cost_high:.4f} per run, credit limit {limit})")
        self.say("Runs: " + ", ".join(f"{r.name} (seed {r.seed})" for r in self.runs))
        self.say(f"Output directory: {self.output}")
        self.say("=" * 70)
        self.say(f"To execute this batch, run without --dry-run: python legacy_v1/batch_runner.py {self.config_path}")
        return 0

    # ---- running -----------------------------------------------------------------------------------------------
    def prepare(self) -> tuple[BatchState, BatchCosts]:
        (self.output / "runs").mkdir(parents=True, exist_ok=True)
        (self.output / "analysis").mkdir(exist_ok=True)
        if not (self.output / CONFIG_COPY).exists():
            shutil.copyfile(self.config_path, self.output / CONFIG_COPY)
        for setup in self.setups:  # each variation's folder: what its runs' scenario-state.json points at
            export_scenario_folder(setup.scenario, self.scenario_folder(setup.variation.variation_id))
        state = BatchState.read(self.output / STATE_FILE) if self.resume else None
        if self.resume and state is None:
            log.warning("No previous batch state in %s: starting fresh", self.output)
        costs = BatchCosts.read(self.output / COSTS_FILE, self.config) if state is not None else BatchCosts(
            self.config.budget_limit, self.config.cost_per_run_limit)
        state = state or BatchState()
        state.start_time = state.start_time or now()
        costs.start_time = costs.start_time or state.start_time
        costs.end_time = None
        return state, costs

    def scenario_folder(self, variation_id: int) -> Path:
        return self.output / "scenarios" / f"var-{variation_id:03d}"

    def save(self, state: BatchState, costs: BatchCosts) -> None:
        write_json(self.output / STATE_FILE, {
            "experiment_name": self.config.experiment_name,
            "config_path": str(self.config_path),
            "start_time": state.start_time,
            "completed_runs": state.completed_runs,
            "failed_runs": state.failed_runs,
            "variations": [s.variation.to_v1() for s in self.setups],
            "runs_per_variation": self.config.runs_per_variation,
        })
        write_json(self.output / COSTS_FILE, costs.document())

    def write_summary(self, state: BatchState, costs: BatchCosts) -> dict[str, Any]:
        duration = None
        if state.start_time:
            duration = (datetime.now() - datetime.fromisoformat(state.start_time)).total_seconds()
        summary = {
            "experiment_name": self.config.experiment_name,
            "base_scenario": self.config.base_scenario,
            "total_variations": len(self.setups),
            "runs_per_variation": self.config.runs_per_variation,
            "total_runs_planned": len(self.runs),
            "runs_completed": len(state.completed_runs),
            "runs_failed": len(state.failed_runs),
            "duration_seconds": duration,
            "cost_summary": costs.summary(),
            "failed_runs": state.failed_runs,
            "stopped": self.stop_reason,
        }
        write_json(self.output / SUMMARY_FILE, summary)
        return summary

    async def play(self, planned: PlannedRun) -> Outcome:
        setup = self.setup(planned.variation_id)
        folder = self.output / "runs" / planned.name
        scenario_path = str(self.scenario_folder(planned.variation_id))
        total_turns = setup.scenario.config.turns
        if (folder / "scenario-state.json").is_file():
            final = await self.continue_run(folder, scenario_path, setup.credit_limit)
        else:
            persistence = V1RunDirectory(folder, setup.scenario, scenario_path=scenario_path, credit_limit=setup.credit_limit)
            runner = Runner(provider=setup.provider, persistence=persistence)
            runner.on("*")(RunLog(folder))
            final = await runner.run_async(setup.scenario, max_turns=total_turns, credit_limit=setup.credit_limit, seed=planned.seed)
        status = v1_status(final, total_turns)
        success = status.status == "completed"
        kind = "success" if success else "cost_limit_exceeded" if status.halt_reason == "credit_limit" else "failed"
        error = None if success else (final.error or final.halt_reason or status.halt_reason)
        return Outcome(planned.name, planned.variation_id, success, kind, final.total_cost, error)

    async def continue_run(self, folder: Path, scenario_path: str, credit_limit: float | None) -> ScenarioState:
        """An interrupted run goes on from its directory, as `run_scenario.py --resume` continues it."""
        command = [sys.executable, str(RUN_SCENARIO), scenario_path, "--resume", str(folder)]
        if credit_limit is not None:
            command += ["--credit-limit", repr(credit_limit)]
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await process.wait()
        except asyncio.CancelledError:  # Ctrl-C: it halts the run as run_scenario.py does (saved), then we go
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            await asyncio.shield(process.wait())
            raise
        state, _ = read_run_directory(folder)
        return state

    async def run_all(self, state: BatchState, costs: BatchCosts) -> None:
        pending = [r for r in self.runs if r.name not in state.completed_runs]
        playing: dict[asyncio.Task, PlannedRun] = {}
        holding: dict[str, RunSpending] = {
            run_id: RunSpending(entry["cost"], None, ended=True) for run_id, entry in costs.run_costs.items()}
        try:
            while pending or playing:
                scheduler = BatchScheduler(budget_limit=self.config.budget_limit, max_parallel=self.config.max_parallel,
                                           active=len(playing), committed=committed(holding.values()))
                while pending and scheduler.has_slot:
                    planned = pending[0]
                    reserve = self.setup(planned.variation_id).reserve
                    previous = holding.get(planned.name)
                    if not scheduler.admit(planned.name, reserve, held=previous.committed if previous else 0.0):
                        if scheduler.halt_reason:
                            self.stop_reason = scheduler.halt_reason
                            pending = []
                        break
                    pending.pop(0)
                    holding[planned.name] = RunSpending(previous.cost if previous else 0.0, reserve, ended=False)
                    if self.progress:
                        self.say(f"▶ [{len(state.completed_runs) + len(playing) + 1}/{len(self.runs)}] {planned.name}: "
                                 f"{self.setup(planned.variation_id).variation.description} (seed {planned.seed})")
                    playing[asyncio.create_task(self.play(planned))] = planned
                if not playing:
                    break
                done, _ = await asyncio.wait(playing, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    planned = playing.pop(task)
                    try:
                        outcome = task.result()
                    except (RunDirectoryError, OSError, ValueError) as exc:
                        outcome = Outcome(planned.name, planned.variation_id, False, "failed",
                                          holding[planned.name].cost, f"{type(exc).__name__}: {exc}")
                    self.settle(outcome, state, costs, holding)
        except asyncio.CancelledError:
            # Ctrl-C: each run saves itself halted ("manual") as its task is cancelled; wait for those saves, then
            # book what each spent, so batch-costs.json still adds up to the runs' ledgers.
            for task in playing:
                task.cancel()
            await asyncio.gather(*playing, return_exceptions=True)
            for task, planned in playing.items():
                if not task.cancelled() and task.exception() is None:
                    self.settle(task.result(), state, costs, holding)
                    continue
                folder = self.output / "runs" / planned.name
                spent = read_run_directory(folder)[0].total_cost if (folder / "scenario-state.json").is_file() else 0.0
                self.settle(Outcome(planned.name, planned.variation_id, False, "failed", spent, "interrupted (manual); --resume continues it"),
                            state, costs, holding)
            raise

    def settle(self, outcome: Outcome, state: BatchState, costs: BatchCosts, holding: dict[str, RunSpending]) -> None:
        holding[outcome.run_id] = RunSpending(outcome.cost, None, ended=True)
        costs.record(outcome.run_id, outcome.variation_id, outcome.cost, success=outcome.success,
                     over_limit=outcome.status == "cost_limit_exceeded")
        state.settle(outcome.run_id, success=outcome.success, status=outcome.status, error=outcome.error)
        self.save(state, costs)
        if self.progress:
            mark = "✓" if outcome.success else "✗"
            detail = "completed" if outcome.success else f"{outcome.status}: {outcome.error}"
            self.say(f"{mark} {outcome.run_id}: {detail} (${outcome.cost:.4f})")

    def run(self) -> int:
        state, costs = self.prepare()
        config = self.config
        self.say(f"Batch experiment: {config.experiment_name} ({len(self.runs)} runs, up to {config.max_parallel} at once)")
        if config.budget_limit is not None:
            self.say(f"Budget limit: ${config.budget_limit:.2f}")
        self.save(state, costs)
        interrupted = False
        try:
            asyncio.run(self.run_all(state, costs))
        except KeyboardInterrupt:
            interrupted = True
        costs.end_time = now()
        self.save(state, costs)
        summary = self.write_summary(state, costs)
        self.say(f"Runs completed: {summary['runs_completed']}/{summary['total_runs_planned']}   failed: {summary['runs_failed']}")
        spent = costs.total_spent
        budget = f" of ${config.budget_limit:.2f} ({100 * spent / config.budget_limit:.1f} %)" if config.budget_limit else ""
        self.say(f"Total cost: ${spent:.4f}{budget}")
        if self.stop_reason:
            self.say(f"Stopped: {self.stop_reason}")
        if (config.model_extra or {}).get("aggregate_metrics", True) is not False:
            from legacy_v1.batch_analyzer import BatchAnalyzer

            BatchAnalyzer(self.output).save_analysis_data()
            self.say(f"Analysis: {self.output / 'analysis'}")
        self.say(f"Results: {self.output}   Summary: {self.output / SUMMARY_FILE}")
        if interrupted or self.stop_reason:
            self.say(f"Resume with: python legacy_v1/batch_runner.py {self.config_path} --resume")
        if interrupted:
            return EXIT_INTERRUPTED
        return EXIT_BUDGET if self.stop_reason else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batch_runner.py", description="Run batch scenario experiments for statistical analysis (V1 command line).")
    parser.add_argument("config", help="the batch configuration YAML file")
    parser.add_argument("--resume", action="store_true", help="resume an incomplete batch from its output directory")
    parser.add_argument("--no-progress", action="store_true", help="print no line per run, only the summary")
    parser.add_argument("--dry-run", action="store_true", help="show what would run, the estimated cost and time; run nothing")
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        runner = BatchRunner(Path(args.config), resume=args.resume, progress=not args.no_progress, out=out)
        return runner.preview() if args.dry_run else runner.run()
    except BadInput as exc:
        print(f"error: {exc}", file=err)
        return 2


if __name__ == "__main__":
    # Ctrl-C saves the batch and its runs even when a shell started this in the background, which ignores SIGINT
    # (as the manage.py commands do).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
