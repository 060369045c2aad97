"""The cost estimate before a run: the calls a turn makes, priced at the provider's worst case."""

from __future__ import annotations

import pytest

from engine.estimate import WORLD, estimate_run_cost
from engine.llm.openai_compatible import Endpoint, OpenAICompatibleProvider
from engine.llm.pricing import PriceBook
from engine.llm.offline import OfflineProvider
from engine.phases.communication import CommunicationPhase
from engine.phases.metrics import MetricsPhase
from engine.phases.tests.conftest import RUN_ID, SEED, ScriptedProvider, build_scenario, make_context
from engine.sdk import initial_state
from engine.testing.providers import FixedCostProvider

METRICS = [
    {"name": "clauses_open", "extraction": {"type": "pattern", "pattern": r"(\d+) clauses"}},
    {"name": "trust", "range": [0, 10], "extraction": {"type": "llm", "prompt": "Trust, 0 to 10?"}},
]
RULES = {
    "checks": {
        "actor_consistency": {"description": "Decisions fit the goals."},
        "world_coherence": {"prompt_template": "{previous_world_state} -> {new_world_state}"},
    }
}
LOOPBACK = Endpoint(name="local", base_url="http://127.0.0.1:9/v1")
PRICES_TABLE = {"test/upland-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}
PRICES = PriceBook(PRICES_TABLE)  # other test models get the assumed fallback price


def full_scenario(**changes):
    return build_scenario(metrics=METRICS, validation=RULES, **changes)


def test_calls_per_turn_follow_the_scenario():
    one_talk = {"max_per_turn": 1}
    estimate = estimate_run_cost(build_scenario(communications=one_talk), OfflineProvider(), turns=1)
    # Per actor: a decision, an outreach and one reply to each of the two others; then one world update.
    assert estimate.calls == 3 * (1 + 1 + 2) + 1
    full = estimate_run_cost(full_scenario(communications=one_talk), OfflineProvider(), turns=1)
    # Plus one llm metric (pattern metrics are free), one check per actor and one per turn.
    assert full.calls == estimate.calls + 1 + 3 + 1


def test_more_turns_cost_proportionally_more():
    scenario = full_scenario()
    provider = FixedCostProvider(scenario, cost_per_call=0.01)
    two, six = estimate_run_cost(scenario, provider, turns=2), estimate_run_cost(scenario, provider, turns=6)
    assert six.calls == 3 * two.calls
    assert six.max_cost == pytest.approx(3 * two.max_cost)
    assert {p: r.high for p, r in six.by_phase().items()} == pytest.approx({p: 3 * r.high for p, r in two.by_phase().items()})
    assert six.cost.low == pytest.approx(3 * two.cost.low)


def test_the_scenarios_turns_are_the_default():
    scenario = full_scenario()
    provider = FixedCostProvider(scenario, cost_per_call=0.01)
    assert estimate_run_cost(scenario, provider).turns == scenario.config.turns == 4
    assert estimate_run_cost(scenario, provider) == estimate_run_cost(scenario, provider, turns=4)


def test_a_fixed_price_per_call_gives_calls_times_price():
    scenario = full_scenario()
    estimate = estimate_run_cost(scenario, FixedCostProvider(scenario, cost_per_call=0.01))
    assert estimate.max_cost == pytest.approx(estimate.calls * 0.01)
    assert sum(r.high for r in estimate.by_phase().values()) == pytest.approx(estimate.max_cost)
    assert sum(r.high for r in estimate.by_actor().values()) == pytest.approx(estimate.max_cost)
    assert set(estimate.by_phase()) == {"decision", "communication", "world_update", "metrics", "validation"}
    assert estimate.provider == "fixed-cost"
    assert f"to ${estimate.max_cost:.4f}" in estimate.describe() and f"at most {estimate.calls} model calls" in estimate.describe()


def test_offline_costs_nothing():
    scenario = full_scenario()
    estimate = estimate_run_cost(scenario, OfflineProvider(scenario))
    assert estimate.max_cost == 0.0
    assert estimate.calls > 0
    assert estimate.provider == "offline"


def test_features_that_are_off_cost_nothing():
    scenario = full_scenario(
        communications={"enabled": False}, features={"metrics_extraction": False, "quality_assurance": False}
    )
    estimate = estimate_run_cost(scenario, FixedCostProvider(scenario, cost_per_call=0.01), turns=1)
    assert set(estimate.by_phase()) == {"decision", "world_update"}
    assert estimate.calls == 3 + 1


async def test_the_estimate_bounds_what_the_communication_phase_can_spend():
    """Each actor may open `max_per_turn` coalitions with both others; every recipient then replies."""
    scenario = build_scenario(communications={"max_per_turn": 2})
    estimate = estimate_run_cost(scenario, FixedCostProvider(scenario, cost_per_call=0.01), turns=1)
    estimated_calls = round(estimate.by_phase()["communication"].high / 0.01)

    everyone = {"upland": ["city", "growers"], "city": ["upland", "growers"], "growers": ["upland", "city"]}
    answers = {
        ("outreach", actor): {
            "public_statement": "",
            "conversations": [{"kind": "coalition", "with": others, "message": f"Bloc {n}?"} for n in (1, 2)],
        }
        for actor, others in everyone.items()
    }
    provider = ScriptedProvider({**answers, "reply": {"response": "Agreed."}})
    ctx = make_context(scenario, provider)
    await CommunicationPhase().run(initial_state(scenario, run_id=RUN_ID, seed=SEED), ctx)

    made = len(provider.requests)  # 3 outreach calls + 6 coalitions x 2 recipients = 15
    assert made <= estimated_calls, f"the communication phase made {made} calls; the estimate allows {estimated_calls}"


async def test_the_estimate_bounds_what_the_metrics_phase_can_spend():
    """An actor-specific llm metric is asked once per actor."""
    resolve = {
        "name": "resolve",
        "actor_specific": True,
        "range": [0, 10],
        "extraction": {"type": "llm", "prompt": "How firm, 0 to 10?"},
    }
    scenario = build_scenario(metrics=[resolve])
    estimate = estimate_run_cost(scenario, FixedCostProvider(scenario, cost_per_call=0.01), turns=1)
    estimated_calls = round(estimate.by_phase()["metrics"].high / 0.01)

    provider = ScriptedProvider({"metric": "5"})
    await MetricsPhase().run(initial_state(scenario, run_id=RUN_ID, seed=SEED), make_context(scenario, provider))

    made = len(provider.requests)  # one per actor: 3
    assert made <= estimated_calls, f"the metrics phase made {made} calls; the estimate allows {estimated_calls}"


def test_the_range_is_per_actor_and_phase_and_low_is_below_high():
    scenario = full_scenario()
    estimate = estimate_run_cost(scenario, OpenAICompatibleProvider(LOOPBACK, prices=PRICES), turns=3)
    by_actor = estimate.by_actor()
    assert set(by_actor) == {actor.short_name for actor in scenario.actors} | {WORLD}
    for line in estimate.lines:
        assert 0 < line.cost.low <= line.cost.high, line
        assert line.input_tokens.low <= line.input_tokens.high and line.output_tokens.low <= line.output_tokens.high
    # Replies are optional: a quiet run makes none of them.
    replies = [line for line in estimate.lines if line.phase == "communication"]
    assert all(line.calls.low < line.calls.high for line in replies)
    assert estimate.cost.low < estimate.cost.high
    assert estimate.tokens.low < estimate.tokens.high


def test_a_dearer_model_costs_its_actor_more():
    scenario = full_scenario()
    cheap = scenario.actors[0].llm_model
    dear = "test/dear"
    prices = PriceBook({**PRICES_TABLE, dear: {"input_per_mtok": 30.0, "output_per_mtok": 60.0}})
    actors = [scenario.actors[0].model_copy(update={"llm_model": dear}), *scenario.actors[1:]]
    dearer = scenario.model_copy(update={"actors": actors})
    before = estimate_run_cost(scenario, OpenAICompatibleProvider(LOOPBACK, prices=prices)).by_actor()
    after = estimate_run_cost(dearer, OpenAICompatibleProvider(LOOPBACK, prices=prices)).by_actor()
    name = scenario.actors[0].short_name
    assert cheap != dear
    assert after[name].low > before[name].low and after[name].high > before[name].high
    assert after[scenario.actors[1].short_name] == before[scenario.actors[1].short_name]


def test_the_terminal_table_lists_actors_and_phases():
    scenario = full_scenario()
    estimate = estimate_run_cost(scenario, FixedCostProvider(scenario, cost_per_call=0.01), turns=1)
    table = estimate.table()
    for name in [*(a.short_name for a in scenario.actors), WORLD, "decision", "world_update"]:
        assert name in table
