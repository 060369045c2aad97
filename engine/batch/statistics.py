"""Statistics over a batch's runs: each metric's mean, spread and 95 % confidence interval, per variation."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


from engine.scenario.folder import Scenario
from engine.batch.config import Variation


def t_quantile(p: float, df: float) -> float:
    """The t value below which a fraction `p` of Student's t distribution with `df` degrees of freedom lies."""
    if not 0 < p < 1:
        raise ValueError("p must be between 0 and 1")
    from scipy.stats import t  # scipy is large and only statistics need it: loaded on first use

    return float(t.ppf(p, df))


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
