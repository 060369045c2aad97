"""Which outside events happen in a turn: scheduled, random (seeded), trends and conditions."""

from __future__ import annotations

from dataclasses import replace

from engine.phases.exogenous import events_for_turn
from engine.phases.tests.conftest import build_scenario
from engine.scenario.schema import ExogenousEventsConfig
from engine.sdk import initial_state
from engine.state import MetricRecord, WorldState


def config(**kinds) -> ExogenousEventsConfig:
    return ExogenousEventsConfig(**kinds)


def start(seed: int = 7):
    return initial_state(build_scenario(), run_id="run-exo", seed=seed)


def names(events) -> list[str]:
    return [e.name for e in events]


def firing_turns(rules: ExogenousEventsConfig, seed: int, turns: range = range(1, 21)) -> list[int]:
    state = start(seed)
    return [turn for turn in turns if events_for_turn(rules, state, turn)]


def after(state, turn: int, events=(), content: str = "The lake is low."):
    """The state once `turn` was played with these outside events."""
    return state.with_world_state(WorldState(turn, content, tuple(events))).with_turn(turn)


# ---- scheduled -------------------------------------------------------------------------------------------
def test_scheduled_events_fire_exactly_on_their_turns():
    rules = config(scheduled_events=[{"name": "Budget vote", "schedule": {"turns": [2, 5]}, "effect": "  Parliament votes.  "}])
    assert firing_turns(rules, seed=1, turns=range(1, 9)) == [2, 5]
    [event] = events_for_turn(rules, start(), 5)
    assert (event.name, event.kind, event.text) == ("Budget vote", "scheduled", "Parliament votes.")


# ---- random ----------------------------------------------------------------------------------------------
COIN = config(random_events=[{"name": "Heatwave", "probability": 0.5, "effect": "A heatwave.", "once": False}])


def test_random_events_are_deterministic_for_a_seed():
    assert firing_turns(COIN, seed=11) == firing_turns(COIN, seed=11)


def test_random_events_differ_across_seeds():
    patterns = {tuple(firing_turns(COIN, seed)) for seed in range(5)}
    assert len(patterns) > 1
    for pattern in patterns:
        assert 0 < len(pattern) < 20  # a fair coin over 20 turns neither always nor never fires


def test_probability_zero_and_one():
    never = config(random_events=[{"name": "Never", "probability": 0, "effect": "x", "once": False}])
    always = config(random_events=[{"name": "Always", "probability": 1, "effect": "x", "once": False}])
    assert firing_turns(never, seed=3) == []
    assert firing_turns(always, seed=3) == list(range(1, 21))


def test_random_events_respect_their_turn_range():
    ranged = config(random_events=[{"name": "Storm", "probability": 1, "turn_range": [3, 4], "effect": "x", "once": False}])
    assert firing_turns(ranged, seed=3, turns=range(1, 8)) == [3, 4]


def test_adding_an_event_does_not_change_whether_the_others_fire():
    both = config(random_events=[*COIN.model_dump()["random_events"], {"name": "Strike", "probability": 0.5, "effect": "y"}])
    state = start(5)
    alone = [turn for turn in range(1, 21) if "Heatwave" in names(events_for_turn(COIN, state, turn))]
    together = [turn for turn in range(1, 21) if "Heatwave" in names(events_for_turn(both, state, turn))]
    assert alone == together


def test_a_once_event_happens_at_most_once():
    rules = config(random_events=[{"name": "Dam leak", "probability": 1, "effect": "The dam leaks."}])
    state = start()
    first = events_for_turn(rules, state, 1)
    assert names(first) == ["Dam leak"]
    state = after(state, 1, first)
    assert events_for_turn(rules, state, 2) == ()
    assert events_for_turn(rules, after(state, 2), 3) == ()


def test_a_repeatable_event_can_happen_again():
    rules = config(random_events=[{"name": "Dam leak", "probability": 1, "effect": "x", "once": False}])
    state = after(start(), 1, events_for_turn(rules, start(), 1))
    assert names(events_for_turn(rules, state, 2)) == ["Dam leak"]


# ---- trends ----------------------------------------------------------------------------------------------
TRENDS = config(
    trends=[
        {
            "name": "Falling lake",
            "effects": [
                {"turn_range": [1, 2], "description": "The lake drops slowly."},
                {"turn_range": [3, 5], "description": "The lake drops fast.", "impact": "wells run dry"},
            ],
        }
    ]
)


def test_trend_effects_follow_the_turn_range():
    state = start()
    texts = {turn: [e.text for e in events_for_turn(TRENDS, state, turn)] for turn in range(1, 7)}
    assert texts[1] == texts[2] == ["The lake drops slowly."]
    assert texts[3] == texts[5] == ["The lake drops fast. (wells run dry)"]
    assert texts[6] == []
    assert {e.kind for e in events_for_turn(TRENDS, state, 4)} == {"trend"}


def test_a_trend_with_probability_zero_never_shows():
    rules = TRENDS.model_copy(deep=True)
    rules.trends[0].probability_per_turn = 0.0
    assert firing_turns(rules, seed=1, turns=range(1, 6)) == []


# ---- conditional -----------------------------------------------------------------------------------------
DROUGHT = config(
    conditional_events=[
        {
            "name": "Emergency decree",
            "conditions": [{"type": "world_state_contains", "pattern": "drought", "sensitivity": "emergency|crisis"}],
            "effect": "The governor takes over the lake.",
        }
    ]
)


def test_a_world_text_condition_needs_the_pattern_and_the_sensitivity():
    state = start()
    assert events_for_turn(DROUGHT, after(state, 1, content="A DROUGHT is declared."), 2) == ()
    assert events_for_turn(DROUGHT, after(state, 1, content="Talks of a water crisis continue."), 2) == ()
    fired = events_for_turn(DROUGHT, after(state, 1, content="The Drought is now an emergency."), 2)
    assert [(e.name, e.kind) for e in fired] == [("Emergency decree", "conditional")]


def test_a_world_text_condition_reads_the_latest_world():
    state = after(start(), 1, content="The drought is an emergency.")
    state = after(state, 2, content="Rain has refilled the lake.")
    assert events_for_turn(DROUGHT, state, 3) == ()


def test_a_conditional_once_event_does_not_repeat():
    state = after(start(), 1, content="The drought is an emergency.")
    fired = events_for_turn(DROUGHT, state, 2)
    state = after(state, 2, fired, content="The drought is still an emergency.")
    assert events_for_turn(DROUGHT, state, 3) == ()


LOW_LAKE = config(
    conditional_events=[
        {
            "name": "Rationing",
            "conditions": [{"type": "metrics", "metric": "lake_level", "operator": "<", "value": 30}],
            "effect": "Rationing starts.",
            "once": False,
        }
    ]
)


def with_metric(state, value, *, actor=None, turn=1):
    return replace(state, metrics=(*state.metrics, MetricRecord(turn, "lake_level", value, actor)))


def test_a_metric_condition_compares_the_latest_world_value():
    state = start()
    assert events_for_turn(LOW_LAKE, state, 1) == ()  # no value yet
    assert events_for_turn(LOW_LAKE, with_metric(state, 35.0), 2) == ()
    assert names(events_for_turn(LOW_LAKE, with_metric(state, 29.5), 2)) == ["Rationing"]
    assert events_for_turn(LOW_LAKE, with_metric(with_metric(state, 20.0), 31.0, turn=2), 3) == ()


def test_a_metric_condition_ignores_actor_values_and_non_numbers():
    state = start()
    assert events_for_turn(LOW_LAKE, with_metric(state, 5.0, actor="city"), 2) == ()
    assert events_for_turn(LOW_LAKE, with_metric(state, "low"), 2) == ()


def test_metric_operators():
    state = with_metric(start(), 30.0)
    for operator, fires in ((">", False), (">=", True), ("==", True), ("!=", False), ("<=", True), ("<", False)):
        rules = LOW_LAKE.model_copy(deep=True)
        rules.conditional_events[0].conditions[0].operator = operator
        assert bool(events_for_turn(rules, state, 2)) is fires, operator


def test_all_conditions_must_hold():
    rules = config(
        conditional_events=[
            {
                "name": "Crisis summit",
                "conditions": [
                    {"type": "world_state_contains", "pattern": "drought"},
                    {"type": "metrics", "metric": "lake_level", "operator": "<", "value": 30},
                ],
                "effect": "x",
            }
        ]
    )
    dry = after(start(), 1, content="A drought.")
    assert events_for_turn(rules, dry, 2) == ()
    assert names(events_for_turn(rules, with_metric(dry, 10.0), 2)) == ["Crisis summit"]
