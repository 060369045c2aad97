"""Batch experiments before they start: the config (YAML, within limits), the base scenario, the plan of every
variation (provider, estimate, each run's credit limit) that a dry run shows, and that plan fitted to its owner's
quota."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from django.utils.text import slugify

from accounts.quotas import quota_batch, quota_credit_limit, user_limits
from engine import Scenario
from engine.batch import (
    BatchConfig,
    BatchConfigError,
    PlannedRun,
    Variation,
    apply_variation,
    budget_allows,
    check_variations,
    estimated_seconds,
    planned_runs,
    run_credit_limit,
    run_reserve,
)
from engine.scenario.errors import ScenarioLoadError
from engine.scenario.reader import MAX_FILE_BYTES, yaml_size_problem
from runs.services import RunConflict, RunInputError, RunPlan, run_plan


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


def variation_plan(config: BatchConfig, base: Scenario, variation: Variation, *, largest: float | None = None) -> VariationPlan:
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
    plans = tuple(variation_plan(config, base.config, variation, largest=largest) for variation in found)
    runs = tuple(planned_runs(config, base_seeds=[v.run.config.config.seed for v in plans]))
    return BatchPlan(config, base, plans, runs)


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
