"""Batch configs, variations, the budget rule and the statistics (engine/batch.py)."""

import math
import statistics

import pytest

from engine.batch import (
    BatchConfig,
    BatchConfigError,
    RunOutcome,
    RunSpending,
    Variation,
    apply_variation,
    budget_allows,
    check_variations,
    committed,
    estimated_seconds,
    final_metric_values,
    planned_runs,
    FREE_MODEL_LIMIT,
    run_credit_limit,
    run_reserve,
    summarize,
    t_quantile,
    variation_statistics,
    variations,
)
from engine.state import MetricRecord

V1_CONFIG = {
    "experiment_name": "Model Comparison",
    "description": "Compare models",
    "base_scenario": "scenarios/test-regulation-negotiation",
    "runs_per_variation": 5,
    "max_parallel": 2,
    "timeout_per_run": 1800,
    "budget_limit": 10.0,
    "cost_per_run_limit": 0.5,
    "variations": [
        {"type": "actor_model", "actor": "regulator", "values": ["openai/gpt-4o-mini", "anthropic/claude-3-haiku"]},
        {"type": "actor_model", "actor": "tech-company", "values": ["openai/gpt-4o-mini", "anthropic/claude-3-haiku"]},
    ],
    "output_dir": "experiments/model-comparison",
    "save_individual_runs": True,
    "aggregate_metrics": True,
}


def test_a_v1_config_reads_with_its_extra_keys_kept():
    config = BatchConfig.parse(V1_CONFIG)
    assert config.variation_count == 4 and config.total_runs == 20
    assert (config.timeout_per_run, config.save_individual_runs, config.aggregate_metrics) == (1800, True, True)
    assert config.default_output_dir() == "experiments/model-comparison"


def test_the_cartesian_product_numbers_and_describes_variations_as_v1():
    found = variations(BatchConfig.parse(V1_CONFIG))
    assert [v.variation_id for v in found] == [1, 2, 3, 4]
    assert found[1].description == "regulator=gpt-4o-mini, tech-company=claude-3-haiku"
    assert found[2].actor_models == {"regulator": "anthropic/claude-3-haiku", "tech-company": "openai/gpt-4o-mini"}
    assert found[3].to_v1() == {
        "variation_id": 4, "description": "regulator=claude-3-haiku, tech-company=claude-3-haiku",
        "modifications": {"actor_models": {"regulator": "anthropic/claude-3-haiku", "tech-company": "anthropic/claude-3-haiku"},
                          "scenario_overrides": {}},
    }
    assert Variation.from_v1(found[3].to_v1()) == found[3]


def test_scenario_parameters_join_the_product_and_no_variations_is_the_base():
    config = BatchConfig.parse({
        "experiment_name": "x", "base_scenario": "s",
        "variations": [{"type": "scenario_parameter", "parameter": "turns", "values": [2, 3, 4]},
                       {"type": "actor_model", "actor": "a", "values": ["m/one", "m/two"]}],
    })
    found = variations(config)
    assert len(found) == 6
    assert found[0].scenario_overrides == {"turns": 2} and found[0].description == "turns=2, a=one"
    assert variations(BatchConfig.parse({"experiment_name": "x", "base_scenario": "s"})) == [Variation(1, "Base configuration")]


def test_v1_dict_form_of_variations():
    config = BatchConfig.parse({"experiment_name": "x", "base_scenario": "s",
                                "variations": {"actor_models": {"a": ["m/1", "m/2"], "b": ["m/3"]}}})
    assert [v.actor_models for v in variations(config)] == [{"a": "m/1", "b": "m/3"}, {"a": "m/2", "b": "m/3"}]


@pytest.mark.parametrize("change, message", [
    ({"experiment_name": ""}, "experiment_name"),
    ({"runs_per_variation": 0}, "runs_per_variation"),
    ({"variations": [{"type": "actor_model", "values": ["m"]}]}, "needs `actor:`"),
    ({"variations": [{"type": "scenario_parameter", "values": [1]}]}, "needs `parameter:`"),
    ({"variations": [{"type": "temperature", "values": [1]}]}, "variations.0.type"),
    ({"seeds": [1, 2], "runs_per_variation": 3}, "one seed per run"),
    ({"provider": "acme"}, "unknown provider 'acme'"),
    ({"budget_limit": 1, "cost_per_run_limit": 2}, "not even one run would fit"),
    ({"budget_limit": -1}, "budget_limit"),
])
def test_wrong_configs_name_the_key(change, message):
    with pytest.raises(BatchConfigError, match=message):
        BatchConfig.parse({"experiment_name": "x", "base_scenario": "s", **change})


def test_runs_start_round_robin_with_one_seed_per_run_number():
    config = BatchConfig.parse({"experiment_name": "x", "base_scenario": "s", "runs_per_variation": 2,
                                "variations": [{"type": "actor_model", "actor": "a", "values": ["m/1", "m/2", "m/3"]}]})
    runs = planned_runs(config, base_seeds=[10, 10, 20])
    assert [(r.name, r.seed) for r in runs] == [
        ("var-001-run-001", 10), ("var-002-run-001", 10), ("var-003-run-001", 20),
        ("var-001-run-002", 11), ("var-002-run-002", 11), ("var-003-run-002", 21),
    ]
    seeded = config.model_copy(update={"seeds": [7, 3]})
    assert [r.seed for r in planned_runs(seeded, base_seeds=[10, 10, 20])] == [7, 7, 7, 3, 3, 3]


def test_a_variation_changes_models_and_scenario_keys(summit):
    actor = summit.actors[0].short_name
    variation = Variation(1, "", {actor: "local/tiny"}, {"num_turns": 2, "features.context_management.enabled": True})
    varied = apply_variation(summit, variation)
    assert varied.actor(actor).llm_model == "local/tiny"
    assert varied.actors[1] == summit.actors[1]
    assert varied.config.turns == 2 and varied.config.features.context_management.enabled
    assert summit.config.turns == 5, "the base scenario is not changed"


def test_a_variation_that_does_not_fit_the_scenario_is_refused(summit):
    with pytest.raises(BatchConfigError, match="no actor 'nobody'"):
        apply_variation(summit, Variation(1, "", {"nobody": "m"}))
    with pytest.raises(BatchConfigError, match="scenario.yaml turns"):
        apply_variation(summit, Variation(2, "turns=0", {}, {"turns": 0}))
    config = BatchConfig.parse({"experiment_name": "x", "base_scenario": "s",
                                "variations": [{"type": "actor_model", "actor": "ghost", "values": ["m"]}]})
    with pytest.raises(BatchConfigError, match="variations.0.actor: .* no actor 'ghost'"):
        check_variations(config, summit)


def batch(*variations, **keys) -> dict:
    return {"experiment_name": "x", "base_scenario": "s", "variations": list(variations), **keys}


@pytest.mark.parametrize(("data", "message"), [
    (batch(runs_per_variaton=2), "runs_per_variaton: unknown key; did you mean 'runs_per_variation'"),
    (batch(max_paralel=2), "max_paralel: unknown key; did you mean 'max_parallel'"),
    (batch({"type": "scenario_parameter", "paramter": "turns", "values": [1]}),
     "variations.0.paramter: unknown key; did you mean 'parameter'"),
])
def test_an_unknown_key_of_a_batch_config_is_named_with_the_closest_known_one(data, message):
    with pytest.raises(BatchConfigError, match=message):
        BatchConfig.parse(data)


@pytest.mark.parametrize(("dimensions", "message"), [
    ([{"type": "scenario_parameter", "parameter": "context_window_sise", "values": [1, 2]}],
     "variations.0.parameter: scenario.yaml has no key 'context_window_sise'; did you mean 'context_window_size'"),
    ([{"type": "scenario_parameter", "parameter": "features.communications.max_per_trun", "values": [1, 2]}],
     "no 'max_per_trun' in features.communications.*did you mean 'max_per_turn'"),
    ([{"type": "actor_model", "actor": "norvalle", "values": ["a", "b"]}],
     "variations.0.actor: .* no actor 'norvalle'; did you mean 'norvale'"),
    ([{"type": "scenario_parameter", "parameter": "context_window_size", "values": [2, 2]}],
     "variations 1 .* and 2 .* play the same scenario"),
    ([{"type": "actor_model", "actor": "norvale", "values": ["openai/gpt-4o"]},
      {"type": "actor_model", "actor": "norvale", "values": ["a", "a"]}], "play the same scenario"),
])
def test_a_variation_that_names_nothing_or_changes_nothing_is_refused(summit, dimensions, message):
    config = BatchConfig.parse(batch(*dimensions))
    with pytest.raises(BatchConfigError, match=message):
        check_variations(config, summit)


def test_a_lone_variation_the_scenario_already_plays_is_refused_and_older_key_names_are_known(summit):
    model = summit.actors[0].llm_model
    same = BatchConfig.parse(batch({"type": "actor_model", "actor": summit.actors[0].short_name, "values": [model]}))
    with pytest.raises(BatchConfigError, match="changes nothing"):
        check_variations(same, summit)
    older = BatchConfig.parse(batch({"type": "scenario_parameter", "parameter": "num_turns", "values": [2, 3]}))
    assert [v.scenario_overrides for v in check_variations(older, summit)] == [{"num_turns": 2}, {"num_turns": 3}]
    baseline = BatchConfig.parse(batch({"type": "actor_model", "actor": summit.actors[0].short_name, "values": [model, "other/model"]}))
    assert len(check_variations(baseline, summit)) == 2, "a baseline beside a change is an experiment"


def test_the_budget_counts_ended_runs_by_cost_and_others_by_limit():
    spending = [RunSpending(cost=0.3, reserved=1.0, ended=True), RunSpending(cost=0.2, reserved=1.0, ended=False),
                RunSpending(cost=1.5, reserved=1.0, ended=False), RunSpending(cost=0.0, reserved=0.0, ended=False)]
    assert committed(spending) == pytest.approx(0.3 + 1.0 + 1.5)
    assert budget_allows(budget_limit=3.8, committed=2.8, run_limit=1.0)
    assert not budget_allows(budget_limit=3.79, committed=2.8, run_limit=1.0)
    assert not budget_allows(budget_limit=10, committed=0, run_limit=None), "an unbounded run never fits a budget"
    assert budget_allows(budget_limit=None, committed=99, run_limit=None)
    assert budget_allows(budget_limit=0.3, committed=0.1 + 0.2 - 0.3, run_limit=0.3), "float sums that equal the budget fit"


def test_each_run_gets_the_limit_the_budget_counts_on():
    config = BatchConfig.parse({"experiment_name": "x", "base_scenario": "s", "budget_limit": 5})
    assert run_credit_limit(config, estimate_high=0.8, scenario_limit=2.0) == 0.8
    assert run_credit_limit(config, estimate_high=0.0, scenario_limit=None, offline=True) is None
    assert run_credit_limit(config, estimate_high=0.0, scenario_limit=None) == FREE_MODEL_LIMIT, "a 'free' model may bill"
    assert run_credit_limit(config.model_copy(update={"cost_per_run_limit": 0.5}), estimate_high=0.8, scenario_limit=None) == 0.5
    assert run_credit_limit(config.model_copy(update={"budget_limit": None}), estimate_high=0.8, scenario_limit=2.0) == 2.0
    assert run_reserve(2.0, estimate_high=0.0, offline=True) == 0.0, "an offline run holds nothing of the budget"
    assert run_reserve(FREE_MODEL_LIMIT, estimate_high=0.0) == FREE_MODEL_LIMIT, "a run of 'free' models holds its limit"
    assert run_reserve(0.8, estimate_high=0.8) == 0.8 and run_reserve(None, estimate_high=0.8) is None


def test_t_quantiles_match_published_tables():
    for df, value in [(1, 12.7062047), (2, 4.30265273), (4, 2.77644511), (10, 2.22813885), (30, 2.04227246), (1000, 1.96233908)]:
        assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-6)
    assert t_quantile(0.025, 5) == pytest.approx(-t_quantile(0.975, 5))


def test_summary_by_hand():
    summary = summarize([2.0, 4.0, 9.0])
    mean = 5.0
    sd = math.sqrt(((2 - 5) ** 2 + (4 - 5) ** 2 + (9 - 5) ** 2) / 2)  # sqrt(13)
    half = 4.30265273 * sd / math.sqrt(3)
    assert (summary.count, summary.mean, summary.min, summary.max, summary.median) == (3, mean, 2.0, 9.0, 4.0)
    assert summary.stdev == pytest.approx(sd)
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    single = summarize([7])
    assert (single.mean, single.stdev, single.ci_low, single.ci_high) == (7.0, None, None, None)


def test_final_metric_values_take_each_metrics_last_numeric_value(summit):
    records = [MetricRecord(1, "signatories", 3.0), MetricRecord(2, "signatories", 5.0), MetricRecord(2, "mood", "tense"),
               MetricRecord(1, "trust", 0.5, actor="norvale"), MetricRecord(2, "flag", True), MetricRecord(3, "signatories", None)]
    assert final_metric_values(records, summit) == {"signatories": 5.0, "trust_norvale": 0.5}


def test_variation_statistics_by_hand():
    found = [Variation(1, "a"), Variation(2, "b")]
    outcomes = [
        RunOutcome(1, 1, ended=True, success=True, cost=0.10, metrics={"m": 1.0}),
        RunOutcome(1, 2, ended=True, success=True, cost=0.20, metrics={"m": 3.0}),
        RunOutcome(1, 3, ended=True, success=False, cost=0.30, metrics={"m": 100.0}),
        RunOutcome(2, 1, ended=True, success=True, cost=0.40, metrics={"m": 4.0, "n": 2.0}),
        RunOutcome(2, 2, ended=False, success=False, cost=0.05),
    ]
    first, second = variation_statistics(found, outcomes)
    assert (first.runs, first.ended, first.successful) == (3, 3, 2)
    assert first.success_rate == pytest.approx(2 / 3) and first.cost_per_run == pytest.approx(0.2)
    m = first.metrics["m"]
    assert (m.count, m.mean, m.stdev) == (2, 2.0, pytest.approx(statistics.stdev([1.0, 3.0])))
    assert m.ci_high == pytest.approx(2.0 + 12.7062047 * math.sqrt(2) / math.sqrt(2))
    assert (second.runs, second.ended, second.success_rate, second.total_cost) == (2, 1, 1.0, pytest.approx(0.45))
    assert second.cost_per_run == pytest.approx(0.40)
    assert set(second.metrics) == {"m", "n"}


def test_the_dry_run_time_estimate():
    assert estimated_seconds(runs=5, max_parallel=2, turns=2, offline=False) == 3 * 2 * 6 * 4.0


# ---- the scheduler both batch runners use -------------------------------------------------------------------
def test_the_scheduler_fills_free_slots_within_the_owners_room_in_plan_order():
    from engine.batch import BatchScheduler

    scheduler = BatchScheduler(budget_limit=None, max_parallel=3, active=1, committed=0.0, room=5)
    assert [scheduler.admit(name, None) for name in ("r1", "r2", "r3")] == [True, True, False]
    assert not scheduler.has_slot and scheduler.halt_reason is None
    roomless = BatchScheduler(budget_limit=None, max_parallel=3, active=0, committed=0.0, room=1)
    assert [roomless.admit(name, None) for name in ("r1", "r2")] == [True, False]


def test_the_scheduler_holds_each_runs_reserve_and_stops_the_batch_only_when_nothing_can_give_money_back():
    from engine.batch import BatchScheduler

    scheduler = BatchScheduler(budget_limit=1.0, max_parallel=4, active=0, committed=0.25)
    assert scheduler.admit("r1", 0.5) and scheduler.committed == 0.75
    assert not scheduler.admit("r2", 0.5) and scheduler.halt_reason is None  # r1 may still give money back
    idle = BatchScheduler(budget_limit=1.0, max_parallel=4, active=0, committed=0.75)
    assert not idle.admit("r2", 0.5)
    assert idle.halt_reason == "budget: $0.2500 of $1.00 left, and r2 may cost up to $0.5000"
    assert not BatchScheduler(budget_limit=1.0, max_parallel=4, active=0, committed=0.0).admit("r3", None)  # unbounded
    # A run continued holds what it spent before: its new reserve replaces that, not adds to it.
    again = BatchScheduler(budget_limit=1.0, max_parallel=4, active=0, committed=0.75)
    assert again.admit("r1", 0.5, held=0.5) and again.committed == 0.75
