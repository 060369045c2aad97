"""Batch configs and batches for tests, made through the services."""

from __future__ import annotations

from typing import Any

from batches import planning, services
from batches.models import Batch
from engine.batch import BatchConfig


def batch_config(**changes: Any) -> BatchConfig:
    """Two variations (the summit's seed 1 and 11) × 3 runs of one offline turn, two at a time."""
    data = {
        "experiment_name": "Seed study",
        "description": "Does the offline summit depend on its seed?",
        "base_scenario": "ai-summit",
        "variations": [{"type": "scenario_parameter", "parameter": "seed", "values": [1, 11]}],
        "runs_per_variation": 3,
        "max_parallel": 2,
        "turns": 1,
        "provider": "offline",
        **changes,
    }
    return BatchConfig.parse({k: v for k, v in data.items() if v is not None})


def plan_batch(config: BatchConfig | None = None) -> planning.BatchPlan:
    config = config or batch_config()
    return planning.batch_plan(config=config, base=planning.batch_base_scenario(name=config.base_scenario))


def start_batch(config: BatchConfig | None = None, *, owner=None, dispatch=None) -> Batch:
    """A started batch; by default its runs are only recorded as handed out (nothing plays them)."""
    return services.batch_start(plan=plan_batch(config), owner=owner, dispatch=dispatch or (lambda run: None))


def play_queued(batch: Batch) -> None:
    """Play the batch's queued runs here, one by one, until none is left (each end starts the next ones)."""
    from runs.models import Run, RunStatus

    while True:
        queued = Run.objects.filter(batch_run__batch=batch, status=RunStatus.QUEUED).order_by("batch_run__position").first()
        if queued is None:
            return
        services.batch_run_execute(run_id=queued.pk, dispatch=lambda run: None)
