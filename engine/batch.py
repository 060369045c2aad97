"""Batch experiments: the batch config (V1's batch-config.yaml), its variations, the budget rule and statistics.

A batch plays one base scenario many times: every combination of its variations (the Cartesian product of
`actor_model` and `scenario_parameter` values) `runs_per_variation` times. Everything here is plain data and
pure functions, shared by the site (`batches/`) and V1's batch command line (`legacy_v1/batch_runner.py`):

- `BatchConfig` reads the V1 keys (plus `seeds`, `provider` and `turns`); `variations()` expands the product;
  `planned_runs()` lists the runs in the order they start (run 1 of every variation, then run 2, …, so a
  batch that runs out of budget still has comparable numbers of runs per variation).
- `apply_variation()` makes the scenario a variation plays.
- `budget_allows()`: a run starts only if its credit limit fits in what the budget has left after every
  finished run's cost and every unfinished run's limit. A run never spends more than its credit limit (the
  cost tracker refuses any call that could pass it), so the batch never spends more than its budget.
- `summarize()` and `variation_statistics()`: mean, standard deviation, 95 % confidence interval (Student's
  t), min, max, success rate and cost per run.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.llm.routing import PROVIDER_CHOICES
from engine.scenario.schema import Scenario, ScenarioConfig

MAX_RUNS = 10_000
# A dry run's time estimate: the dependent model calls of a turn (outreach, replies, decisions, world update,
# metrics, validation), each round as slow as its slowest call. Seconds per round are a guess from real runs.
MODEL_ROUNDS_PER_TURN = 6
SECONDS_PER_ROUND = {"offline": 0.02, "model": 4.0}


class BatchConfigError(ValueError):
    """The batch config cannot be played; the message names the key and what would be right."""


# ---- the config ----------------------------------------------------------------------------------------------
class VariationDimension(BaseModel):
    """One entry of `variations:`: an actor's model or a scenario.yaml key, and the values to try."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["actor_model", "scenario_parameter"]
    actor: str | None = Field(None, min_length=1, max_length=64, description="actor_model: the actor's short name")
    parameter: str | None = Field(None, min_length=1, max_length=200,
                                  description="scenario_parameter: a scenario.yaml key, dotted for nested ones")
    values: list[Any] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _complete(self) -> VariationDimension:
        if self.type == "actor_model":
            if not self.actor:
                raise ValueError("an actor_model variation needs `actor:` (the actor's short name)")
            if not all(isinstance(v, str) and v.strip() for v in self.values):
                raise ValueError("an actor_model variation's values are model names (text)")
        elif not self.parameter:
            raise ValueError("a scenario_parameter variation needs `parameter:` (a scenario.yaml key)")
        return self


class BatchConfig(BaseModel):
    """batch-config.yaml. V1's other keys (timeout_per_run, save_individual_runs, aggregate_metrics) are kept."""

    model_config = ConfigDict(extra="allow")

    experiment_name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)
    base_scenario: str = Field(min_length=1, max_length=500,
                               description="a stored scenario's slug or a scenario folder")
    variations: list[VariationDimension] = Field(default_factory=list, max_length=20)
    runs_per_variation: int = Field(1, ge=1, le=1000)
    max_parallel: int = Field(1, ge=1, le=64)
    budget_limit: float | None = Field(None, gt=0, allow_inf_nan=False, description="USD for the whole batch")
    cost_per_run_limit: float | None = Field(None, gt=0, allow_inf_nan=False, description="USD: each run's credit limit")
    output_dir: str = Field("", max_length=500)
    seeds: list[int] | None = Field(None, max_length=1000, description="run N of every variation plays seeds[N-1]")
    provider: str = Field("", description="offline, openrouter, openai, ollama or local; empty: by model")
    turns: int | None = Field(None, ge=1, le=1000, description="turns each run plays; default: the scenario's")

    @field_validator("variations", mode="before")
    @classmethod
    def _v1_dict_form(cls, value: Any) -> Any:
        """V1 also accepted `variations: {actor_models: {actor: [models]}}`."""
        if value is None:
            return []
        if isinstance(value, dict):
            unknown = set(value) - {"actor_models"}
            if unknown:
                raise ValueError(f"unknown variation kind {sorted(unknown)[0]!r}: use a list of "
                                 "{type: actor_model|scenario_parameter, ...}")
            return [{"type": "actor_model", "actor": actor, "values": models}
                    for actor, models in (value.get("actor_models") or {}).items()]
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value and value not in PROVIDER_CHOICES:
            raise ValueError(f"unknown provider {value!r}: choose one of {', '.join(PROVIDER_CHOICES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BatchConfig:
        if self.seeds is not None and len(self.seeds) < self.runs_per_variation:
            raise ValueError(f"seeds: {len(self.seeds)} given, but runs_per_variation is {self.runs_per_variation} "
                             "(one seed per run of a variation)")
        if self.total_runs > MAX_RUNS:
            raise ValueError(f"the batch would play {self.total_runs} runs; at most {MAX_RUNS}")
        if self.budget_limit is not None and self.cost_per_run_limit is not None and self.cost_per_run_limit > self.budget_limit:
            raise ValueError(f"cost_per_run_limit ({self.cost_per_run_limit}) is above budget_limit "
                             f"({self.budget_limit}): not even one run would fit")
        return self

    @classmethod
    def parse(cls, data: Any, *, source: str = "the batch config") -> BatchConfig:
        """The config, or BatchConfigError naming every wrong key."""
        if not isinstance(data, dict):
            raise BatchConfigError(f"{source}: expected a mapping of keys (experiment_name, base_scenario, …)")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"]) or "(top level)"
                problems.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
            raise BatchConfigError(f"{source}: " + "; ".join(problems)) from None

    @property
    def variation_count(self) -> int:
        return math.prod(len(d.values) for d in self.variations) if self.variations else 1

    @property
    def total_runs(self) -> int:
        return self.variation_count * self.runs_per_variation

    def default_output_dir(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.experiment_name.lower()).strip("-") or "batch"
        return self.output_dir or f"experiments/{slug}"

    def seed_for(self, run_number: int, *, base_seed: int) -> int:
        """Run N plays seeds[N-1], else its scenario's seed + N - 1: every variation meets the same draws
        (unless a variation varies `seed` itself)."""
        return self.seeds[run_number - 1] if self.seeds else base_seed + run_number - 1


# ---- variations ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variation:
    variation_id: int  # 1-based, in the order of the Cartesian product
    description: str
    actor_models: Mapping[str, str] = field(default_factory=dict)
    scenario_overrides: Mapping[str, Any] = field(default_factory=dict)

    def to_v1(self) -> dict[str, Any]:
        """As V1's batch-state.json lists it."""
        if not self.actor_models and not self.scenario_overrides:
            return {"variation_id": self.variation_id, "description": self.description, "modifications": {}}
        return {"variation_id": self.variation_id, "description": self.description,
                "modifications": {"actor_models": dict(self.actor_models), "scenario_overrides": dict(self.scenario_overrides)}}

    @classmethod
    def from_v1(cls, data: Mapping[str, Any]) -> Variation:
        modifications = data.get("modifications") or {}
        return cls(int(data["variation_id"]), str(data.get("description") or ""),
                   dict(modifications.get("actor_models") or {}), dict(modifications.get("scenario_overrides") or {}))


def variations(config: BatchConfig) -> list[Variation]:
    """Every combination of the variation values (the first dimension varies slowest), numbered from 1."""
    if not config.variations:
        return [Variation(1, "Base configuration")]
    found = []
    for number, combination in enumerate(itertools.product(*(d.values for d in config.variations)), start=1):
        models: dict[str, str] = {}
        overrides: dict[str, Any] = {}
        parts = []
        for dimension, value in zip(config.variations, combination):
            if dimension.type == "actor_model":
                models[dimension.actor] = value
                parts.append(f"{dimension.actor}={value.rsplit('/', 1)[-1]}")
            else:
                overrides[dimension.parameter] = value
                parts.append(f"{dimension.parameter}={value}")
        found.append(Variation(number, ", ".join(parts), models, overrides))
    return found


@dataclass(frozen=True)
class PlannedRun:
    variation_id: int
    run_number: int  # 1-based within its variation
    seed: int

    @property
    def name(self) -> str:
        return run_name(self.variation_id, self.run_number)


def run_name(variation_id: int, run_number: int) -> str:
    """V1's run id and folder name: var-001-run-003."""
    return f"var-{variation_id:03d}-run-{run_number:03d}"


def planned_runs(config: BatchConfig, *, base_seeds: Sequence[int]) -> list[PlannedRun]:
    """Every run of the batch in the order they start: run 1 of each variation, then run 2, and so on.
    `base_seeds`: each variation's scenario seed (a variation may set `seed`), by variation id - 1."""
    return [PlannedRun(variation, number, config.seed_for(number, base_seed=base_seeds[variation - 1]))
            for number in range(1, config.runs_per_variation + 1) for variation in range(1, config.variation_count + 1)]


def _field_name(parameter: str) -> str:
    """A scenario.yaml key as ScenarioConfig names it (V1's `num_turns` is `turns`)."""
    for name, info in ScenarioConfig.model_fields.items():
        aliases = getattr(info.validation_alias, "choices", None) or ()
        if parameter == name or parameter in aliases:
            return name
    return parameter


def apply_variation(scenario: Scenario, variation: Variation) -> Scenario:
    """The scenario a variation plays: actors' models replaced, scenario.yaml keys set (and validated)."""
    known = {a.short_name for a in scenario.actors}
    for actor in variation.actor_models:
        if actor not in known:
            raise BatchConfigError(f"variation {variation.variation_id}: no actor {actor!r} in {scenario.name} "
                                   f"(actors: {', '.join(sorted(known))})")
    actors = [a.model_copy(update={"llm_model": variation.actor_models[a.short_name]}) if a.short_name in variation.actor_models else a
              for a in scenario.actors]
    config = scenario.config
    if variation.scenario_overrides:
        data = config.model_dump(mode="json")
        for parameter, value in variation.scenario_overrides.items():
            path = parameter.split(".")
            path[0] = _field_name(path[0])
            target = data
            for part in path[:-1]:
                if not isinstance(target.get(part), dict):
                    target[part] = {}
                target = target[part]
            target[path[-1]] = value
        try:
            config = ScenarioConfig.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise BatchConfigError(f"variation {variation.variation_id} ({variation.description}): scenario.yaml "
                                   f"{where}: {str(error['msg']).removeprefix('Value error, ')}") from None
    return scenario.model_copy(update={"config": config, "actors": actors})


def check_variations(config: BatchConfig, scenario: Scenario) -> list[Variation]:
    """The variations, each checked to apply to `scenario` (BatchConfigError names the first that does not)."""
    found = variations(config)
    for variation in found:
        apply_variation(scenario, variation)
    return found


# ---- the budget ------------------------------------------------------------------------------------------
# Money is compared to a millionth of a cent, so a sum of float costs equal to the budget still fits.
EPSILON = 1e-8


@dataclass(frozen=True)
class RunSpending:
    """What a started run of a batch holds of its budget: its cost once it has ended, until then what was
    reserved for it when it started (its credit limit: it may still spend up to that)."""

    cost: float
    reserved: float | None
    ended: bool

    @property
    def committed(self) -> float:
        return self.cost if self.ended or self.reserved is None else max(self.cost, self.reserved)


def committed(spending: Iterable[RunSpending]) -> float:
    return sum(run.committed for run in spending)


def budget_allows(*, budget_limit: float | None, committed: float, run_limit: float | None) -> bool:
    """Whether a run with this credit limit may start. Without a budget anything may; with one, a run needs
    a limit (None: it could spend without bound) that fits in what is left."""
    if budget_limit is None:
        return True
    if run_limit is None:
        return False
    return committed + run_limit <= budget_limit + EPSILON


# Under a budget, a run of models our price table calls free still gets a limit: a provider may report a
# real cost for them, and then the run stops at its next call instead of spending without bound.
FREE_MODEL_LIMIT = 0.01


def run_credit_limit(config: BatchConfig, *, estimate_high: float, scenario_limit: float | None,
                     offline: bool = False) -> float | None:
    """Each run's credit limit: cost_per_run_limit, else (under a budget) the estimate's worst case (a small
    one for models priced free), else the scenario's own. An offline run calls no model and needs none."""
    if config.cost_per_run_limit is not None:
        return config.cost_per_run_limit
    if config.budget_limit is not None:
        if estimate_high > 0:
            return estimate_high
        return None if offline else FREE_MODEL_LIMIT
    return scenario_limit


def run_reserve(limit: float | None, *, estimate_high: float, offline: bool = False) -> float | None:
    """What the budget holds for a run while it plays: nothing for an offline run (it calls no model), else
    its credit limit (None: unbounded)."""
    return 0.0 if offline or (estimate_high <= 0 and limit is None) else limit


def estimated_seconds(*, runs: int, max_parallel: int, turns: int, offline: bool) -> float:
    """A rough duration for a dry run: runs go `max_parallel` at a time, each turn a fixed number of rounds."""
    per_run = turns * MODEL_ROUNDS_PER_TURN * SECONDS_PER_ROUND["offline" if offline else "model"]
    return math.ceil(runs / max_parallel) * per_run


# ---- statistics ------------------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
            last = d * c
        if abs(last - 1.0) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function."""
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value below which a fraction `p` of Student's t distribution with `df` degrees of freedom lies."""
    if not 0 < p < 1:
        raise ValueError("p must be between 0 and 1")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):  # bisection: plenty for double precision
        middle = (low + high) / 2
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-13 * max(1.0, high):
            break
    return (low + high) / 2


@dataclass(frozen=True)
class MetricSummary:
    """A metric over runs: count, mean, sample standard deviation, 95 % confidence interval of the mean
    (Student's t; None with fewer than two values), min and max."""

    count: int
    mean: float
    stdev: float | None
    ci_low: float | None
    ci_high: float | None
    min: float
    max: float
    median: float

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "stdev": self.stdev, "ci95_low": self.ci_low,
                "ci95_high": self.ci_high, "min": self.min, "max": self.max, "median": self.median}


def summarize(values: Sequence[float]) -> MetricSummary:
    if not values:
        raise ValueError("no values to summarize")
    values = [float(v) for v in values]
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return MetricSummary(n, mean, None, None, None, min(values), max(values), mean)
    stdev = statistics.stdev(values)
    half = t_quantile(0.975, n - 1) * stdev / math.sqrt(n)
    return MetricSummary(n, mean, stdev, mean - half, mean + half, min(values), max(values), statistics.median(values))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_key(name: str, actor: str | None, scenario: Scenario | None = None) -> str:
    """A metric's name in a batch's statistics, as V1's metrics.json keys it: a metric measured for every
    actor has one key per actor (`name_actor`), a metric of one named actor keeps its name."""
    if not actor:
        return name
    for definition in scenario.metric_definitions if scenario else ():
        if definition.name == name and definition.actor:
            return name
    return f"{name}_{actor}"


def final_metric_values(records: Iterable[Any], scenario: Scenario | None = None) -> dict[str, float]:
    """Each numeric metric's value at the last turn it was measured. `records` have turn, name, actor, value
    (the engine's MetricRecord, or rows with those attributes)."""
    latest: dict[str, tuple[int, float]] = {}
    for record in records:
        if not is_number(record.value):
            continue
        key = metric_key(record.name, record.actor, scenario)
        if key not in latest or record.turn >= latest[key][0]:
            latest[key] = (record.turn, float(record.value))
    return {key: value for key, (_, value) in sorted(latest.items())}


@dataclass(frozen=True)
class RunOutcome:
    """One run of a batch as statistics see it. `ended`: it will not play on (completed, halted, failed,
    cancelled); `success`: it completed every turn."""

    variation_id: int
    run_number: int
    ended: bool
    success: bool
    cost: float
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VariationStatistics:
    variation_id: int
    description: str
    runs: int  # started
    ended: int
    successful: int
    success_rate: float | None  # successful ÷ ended
    total_cost: float
    cost_per_run: float | None  # total cost ÷ ended runs
    metrics: Mapping[str, MetricSummary]  # over successful runs

    def to_dict(self) -> dict[str, Any]:
        return {"variation_id": self.variation_id, "description": self.description, "runs": self.runs,
                "ended": self.ended, "successful": self.successful, "success_rate": self.success_rate,
                "total_cost": self.total_cost, "cost_per_run": self.cost_per_run,
                "metrics": {name: summary.to_dict() for name, summary in self.metrics.items()}}


def variation_statistics(found: Sequence[Variation], outcomes: Iterable[RunOutcome]) -> list[VariationStatistics]:
    """Per variation: success rate and cost per run over the runs that ended, each metric over the runs that
    completed (a run cut short would bias a metric's final value)."""
    by_variation: dict[int, list[RunOutcome]] = {v.variation_id: [] for v in found}
    for outcome in outcomes:
        by_variation.setdefault(outcome.variation_id, []).append(outcome)
    descriptions = {v.variation_id: v.description for v in found}
    result = []
    for variation_id, runs in sorted(by_variation.items()):
        ended = [r for r in runs if r.ended]
        successful = [r for r in ended if r.success]
        values: dict[str, list[float]] = {}
        for run in successful:
            for name, value in run.metrics.items():
                values.setdefault(name, []).append(value)
        total = sum(r.cost for r in runs)
        result.append(VariationStatistics(
            variation_id=variation_id,
            description=descriptions.get(variation_id, ""),
            runs=len(runs),
            ended=len(ended),
            successful=len(successful),
            success_rate=len(successful) / len(ended) if ended else None,
            total_cost=total,
            cost_per_run=sum(r.cost for r in ended) / len(ended) if ended else None,
            metrics={name: summarize(series) for name, series in sorted(values.items())},
        ))
    return result
