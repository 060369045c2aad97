"""The budget rule: which run may start, with what credit limit, and how long a batch may take."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from engine.batch.config import BatchConfig

# A dry run's time estimate: the dependent model calls of a turn (outreach, replies, decisions, world update,
# metrics, validation), each round as slow as its slowest call. Seconds per round are a guess from real runs.
MODEL_ROUNDS_PER_TURN = 6
SECONDS_PER_ROUND = {"offline": 0.02, "model": 4.0}

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
