"""Runs with an end condition end `completed` exactly at the turn it holds, never past their cap, and their
estimate is a range from one turn to the cap."""

from __future__ import annotations

from engine import Runner, ScenarioStatus
from engine.scenario.metrics import MetricDefinition, MetricExtraction, MetricsConfig


def with_condition(summit, condition: str, turns: int):
    counted = MetricDefinition(name="mentions", extraction=MetricExtraction(type="pattern", pattern="the"))
    metrics = MetricsConfig(metrics=[*summit.metric_definitions, counted])
    config = summit.config.model_copy(update={"end_condition": condition, "turns": turns})
    return summit.model_copy(update={"config": config, "metrics": metrics})


async def test_a_run_ends_completed_at_the_turn_its_condition_holds(summit):
    state = await Runner().run_async(with_condition(summit, "mentions >= 0 and turns >= 2", 5))
    assert state.status is ScenarioStatus.COMPLETED and state.turn == 2
    assert state.halt_reason.startswith("the end condition held after turn 2: mentions >= 0 and turns >= 2 (mentions = ")


async def test_a_condition_that_never_holds_stops_at_the_cap(summit):
    state = await Runner().run_async(with_condition(summit, "mentions >= 1000000", 2))
    assert state.status is ScenarioStatus.COMPLETED and state.turn == 2 and not state.halt_reason


def test_the_estimate_is_a_range_from_one_turn_to_the_cap(summit):
    from engine.estimate import estimate_run_cost
    from engine.llm.offline import OfflineProvider

    scenario = with_condition(summit, "mentions >= 5 or turns >= 4", 4)
    estimate = estimate_run_cost(scenario, OfflineProvider(scenario))
    fixed = estimate_run_cost(summit, OfflineProvider(summit), turns=4)
    one = estimate_run_cost(summit, OfflineProvider(summit), turns=1)
    assert (estimate.tokens.low, estimate.tokens.high) == (one.tokens.low, fixed.tokens.high)
    assert estimate.describe().startswith("Estimated cost for 1 to 4 turns (it ends once mentions >= 5 or turns >= 4)")
