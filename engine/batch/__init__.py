"""Batch experiments: the batch config (V1's batch-config.yaml), its variations, the budget rule and statistics.

A batch plays one base scenario many times: every combination of its variations (the Cartesian product of
`actor_model` and `scenario_parameter` values) `runs_per_variation` times. Everything here is plain data and
pure functions, shared by the site (`batches/`) and V1's batch command line (`legacy_v1/batch_runner.py`):

- `BatchConfig` reads the V1 keys (plus `seeds`, `provider` and `turns`); `variations()` expands the product;
  `planned_runs()` lists the runs in the order they start (run 1 of every variation, then run 2, …, so a
  batch that runs out of budget still has comparable numbers of runs per variation).
- `apply_variation()` makes the scenario a variation plays.
- `BatchScheduler` admits the planned runs in order, as slots, the owner's room and the budget allow, and
  says why a batch stops when the budget cannot start the next run.
- `budget_allows()`: a run starts only if its credit limit fits in what the budget has left after every
  finished run's cost and every unfinished run's limit. A run never spends more than its credit limit (the
  cost tracker refuses any call that could pass it), so the batch never spends more than its budget.
- `summarize()` and `variation_statistics()`: mean, standard deviation, 95 % confidence interval (Student's
  t), min, max, success rate and cost per run.
"""

from engine.batch.budget import (
    EPSILON,
    FREE_MODEL_LIMIT,
    MODEL_ROUNDS_PER_TURN,
    SECONDS_PER_ROUND,
    RunSpending,
    budget_allows,
    committed,
    estimated_seconds,
    run_credit_limit,
    run_reserve,
)
from engine.batch.scheduler import BatchScheduler
from engine.batch.config import (
    MAX_RUNS,
    BatchConfig,
    BatchConfigError,
    PlannedRun,
    Variation,
    VariationDimension,
    apply_variation,
    check_variations,
    planned_runs,
    run_name,
    variations,
)
from engine.batch.statistics import (
    MetricSummary,
    RunOutcome,
    VariationStatistics,
    final_metric_values,
    is_number,
    metric_key,
    summarize,
    t_quantile,
    variation_statistics,
)

__all__ = [
    "EPSILON", "FREE_MODEL_LIMIT", "MAX_RUNS", "MODEL_ROUNDS_PER_TURN", "SECONDS_PER_ROUND", "BatchConfig", "BatchScheduler",
    "BatchConfigError", "MetricSummary", "PlannedRun", "RunOutcome", "RunSpending", "Variation", "VariationDimension",
    "VariationStatistics", "apply_variation", "budget_allows", "check_variations", "committed", "estimated_seconds",
    "final_metric_values", "is_number", "metric_key", "planned_runs", "run_credit_limit", "run_name", "run_reserve",
    "summarize", "t_quantile", "variation_statistics", "variations",
]
