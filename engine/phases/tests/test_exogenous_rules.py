"""Outside events judged on the turns before the one played: the latest metric value, V1's conditional
turn_range, `once` per kind, a turn played again choosing what it chose the first time."""

from __future__ import annotations

from dataclasses import replace

from engine.phases.exogenous import events_for_turn, latest_metric_value
from engine.phases.tests.conftest import build_scenario
from engine.scenario.schema import ExogenousEventsConfig
from engine.sdk import initial_state
from engine.state import ExogenousOccurrence, MetricRecord, WorldState


def start(seed: int = 7):
    return initial_state(build_scenario(), run_id="run-exo", seed=seed)


def measured(state, *values):
    """`values` as (turn, value) or (turn, value, actor) records of lake_level, in the order given."""
    records = tuple(MetricRecord(v[0], "lake_level", v[1], v[2] if len(v) > 2 else None) for v in values)
    return replace(state, metrics=(*state.metrics, *records))


def names(events) -> list[str]:
    return [e.name for e in events]


LOW = ExogenousEventsConfig(conditional_events=[{
    "name": "Rationing", "once": False, "effect": "Rationing starts.",
    "conditions": [{"type": "metrics", "metric": "lake_level", "operator": "<", "value": 30}],
}])


# ---- "latest" is the latest turn's value -----------------------------------------------------------------
def test_the_latest_value_is_the_latest_turns_whatever_the_record_order():
    # A resumed or rebuilt state may hold records out of turn order; the latest turn wins, not the last record.
    state = measured(start(), (3, 50.0), (1, 10.0), (2, 10.0))
    assert latest_metric_value(state, "lake_level", 4) == 50.0
    assert events_for_turn(LOW, state, 4) == ()
    assert names(events_for_turn(LOW, measured(start(), (3, 10.0), (1, 50.0)), 4)) == ["Rationing"]


def test_a_turn_without_a_value_leaves_the_last_measured_one():
    state = measured(start(), (1, 20.0), (2, None))
    assert latest_metric_value(state, "lake_level", 3) == 20.0
    assert names(events_for_turn(LOW, state, 3)) == ["Rationing"]


def test_values_of_the_turn_being_played_or_later_are_not_read():
    state = measured(start(), (1, 50.0), (2, 10.0))  # turn 2's metrics exist: turn 2 is played again
    assert events_for_turn(LOW, state, 2) == ()
    assert names(events_for_turn(LOW, state, 3)) == ["Rationing"]


def test_actor_values_do_not_count_and_v1_numbers_as_text_do():
    assert events_for_turn(LOW, measured(start(), (1, 50.0), (2, 5.0, "city")), 3) == ()
    assert names(events_for_turn(LOW, measured(start(), (1, " 12 ")), 2)) == ["Rationing"]
    assert events_for_turn(LOW, measured(start(), (1, "dry")), 2) == ()


def test_a_world_text_condition_reads_the_world_before_the_turn():
    rules = ExogenousEventsConfig(conditional_events=[{
        "name": "Decree", "effect": "x", "conditions": [{"type": "world_state_contains", "pattern": "drought"}]}])
    state = start().with_world_state(WorldState(1, "Rain.")).with_world_state(WorldState(2, "A drought."))
    assert events_for_turn(rules, state, 2) == ()  # turn 2's own world is what the update writes, not reads
    assert names(events_for_turn(rules, state, 3)) == ["Decree"]


# ---- V1 conditional events keep to their turn_range ------------------------------------------------------
def test_a_v1_conditional_event_fires_only_inside_its_turn_range():
    rules = ExogenousEventsConfig(exogenous_events=[{
        "type": "conditional", "name": "Canal closes", "description": "The canal closes.",
        "conditions": {"lake_level": "< 30"}, "turn_range": [3, 4], "once": False}])
    state = measured(start(), (1, 5.0))
    assert [turn for turn in range(2, 8) if events_for_turn(rules, state, turn)] == [3, 4]


# ---- once ------------------------------------------------------------------------------------------------
def test_once_is_remembered_per_kind():
    rules = ExogenousEventsConfig(
        scheduled_events=[{"name": "Flood", "schedule": {"turns": [1]}, "effect": "A flood."}],
        random_events=[{"name": "Flood", "probability": 1, "effect": "Another flood."}],
    )
    first = events_for_turn(rules, start(), 1)
    assert [(e.kind, e.name) for e in first] == [("scheduled", "Flood"), ("random", "Flood")]
    state = start().with_world_state(WorldState(1, "Wet.", first)).with_turn(1)
    assert events_for_turn(rules, state, 2) == ()
    only_scheduled = start().with_world_state(WorldState(1, "Wet.", (first[0],))).with_turn(1)
    assert [(e.kind, e.name) for e in events_for_turn(rules, only_scheduled, 2)] == [("random", "Flood")]


def test_a_turn_played_again_chooses_what_it_chose():
    rules = ExogenousEventsConfig(random_events=[{"name": "Leak", "probability": 1, "effect": "A leak."}])
    fired = events_for_turn(rules, start(), 1)
    assert names(fired) == ["Leak"]
    # turn 1's world with the event is already in the state (a resumed or retried turn 1): still chosen
    replayed = start().with_world_state(WorldState(1, "Leaking.", (ExogenousOccurrence("Leak", "random", "A leak."),)))
    assert events_for_turn(rules, replayed, 1) == fired
