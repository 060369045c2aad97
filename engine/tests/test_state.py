import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.state import (
    ActorState,
    Communication,
    CommunicationKind,
    CostRecord,
    Decision,
    ExogenousOccurrence,
    MetricRecord,
    PhaseType,
    ScenarioStatus,
    ScenarioState,
    ValidationResult,
    WorldState,
)

text = st.text(max_size=40)
name = st.text(alphabet="abcdefghij-", min_size=1, max_size=8)
turn = st.integers(min_value=0, max_value=50)
money = st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False)

states = st.builds(
    ScenarioState,
    run_id=name,
    scenario_name=text,
    turn_duration=text,
    seed=st.integers(-(2**31), 2**31),
    status=st.sampled_from(ScenarioStatus),
    turn=turn,
    completed_phases=st.lists(st.sampled_from(PhaseType), unique=True).map(tuple),
    completed_steps=st.lists(name, unique=True, max_size=3).map(tuple),
    actors=st.lists(st.builds(ActorState, name, text, text, st.sampled_from(["ai", "human"])), max_size=4).map(tuple),
    world_states=st.lists(
        st.builds(WorldState, turn, text, st.lists(st.builds(ExogenousOccurrence, name, name, text), max_size=2).map(tuple)),
        min_size=1,
        max_size=3,
    ).map(tuple),
    decisions=st.lists(
        st.builds(Decision, turn, name, st.lists(text, max_size=3).map(tuple), st.lists(text, max_size=3).map(tuple), text, text, text, text),
        max_size=3,
    ).map(tuple),
    communications=st.lists(
        st.builds(Communication, name, turn, st.sampled_from(CommunicationKind), name, st.lists(name, max_size=3).map(tuple), text, st.none() | name),
        max_size=3,
    ).map(tuple),
    costs=st.lists(
        st.builds(CostRecord, turn, st.sampled_from(PhaseType), st.none() | name, text, text, st.integers(0, 10**6), st.integers(0, 10**6), money, st.booleans()),
        max_size=4,
    ).map(tuple),
    metrics=st.lists(
        st.builds(MetricRecord, turn, name, st.none() | st.booleans() | money | text, st.none() | name, text), max_size=3
    ).map(tuple),
    validations=st.lists(
        st.builds(ValidationResult, turn, name, st.booleans(), text, st.none() | name, st.lists(text, max_size=2).map(tuple), text),
        max_size=3,
    ).map(tuple),
    halt_reason=st.none() | text,
    error=st.none() | text,
)


@settings(max_examples=150, deadline=None)
@given(states)
def test_to_dict_from_dict_round_trip_is_lossless_through_json(state: ScenarioState):
    raw = json.loads(json.dumps(state.to_dict()))
    assert ScenarioState.from_dict(raw) == state


def make_state() -> ScenarioState:
    return ScenarioState(
        run_id="r1",
        scenario_name="Test",
        actors=(ActorState("a", "Alpha", "m1"), ActorState("b", "Beta", "m2")),
        world_states=(WorldState(0, "start"),),
    )


def cost(actor, phase, turn, amount):
    return CostRecord(turn, phase, actor, "m", "offline", 10, 5, amount)


def test_state_and_its_records_are_immutable():
    state = make_state()
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.turn = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.world_state.content = "changed"  # type: ignore[misc]
    assert isinstance(state.decisions, tuple) and isinstance(state.actors, tuple)


def test_with_methods_return_new_states_and_leave_the_old_one_alone():
    state = make_state()
    decision = Decision(1, "a", ("g",), ("p",), "why", "act")
    new = state.with_decision(decision).with_world_state(WorldState(1, "next")).with_turn(1)
    assert state.decisions == () and state.turn == 0 and state.world_state.content == "start"
    assert new.decisions == (decision,) and new.turn == 1 and new.world_state.content == "next"
    assert new.with_started().status is ScenarioStatus.RUNNING


def test_with_decision_replaces_the_same_actor_and_turn():
    first = Decision(1, "a", ("g",), ("p",), "why", "one")
    second = dataclasses.replace(first, action="two")
    state = make_state().with_decision(first).with_decision(second)
    assert [d.action for d in state.decisions] == ["two"]


def test_with_turn_resets_completed_phases():
    state = make_state().with_phase_completed(PhaseType.DECISION).with_phase_completed(PhaseType.DECISION)
    assert state.completed_phases == (PhaseType.DECISION,)
    stepped = state.with_step_completed("outreach:a")
    assert stepped.completed_steps == ("outreach:a",)
    assert state.with_turn(1).completed_phases == () and stepped.with_turn(1).completed_steps == ()


def test_totals_are_computed_from_the_ledger():
    state = make_state().with_costs(
        [
            cost("a", PhaseType.DECISION, 1, 0.25),
            cost("b", PhaseType.DECISION, 1, 0.5),
            cost(None, PhaseType.WORLD_UPDATE, 1, 1.0),
            cost("a", PhaseType.COMMUNICATION, 2, 0.125),
        ]
    )
    assert state.total_cost == pytest.approx(1.875)
    assert state.total_tokens == 60
    assert state.cost_by_actor() == {"a": 0.375, "b": 0.5, "world": 1.0}
    assert state.cost_by_phase() == {"decision": 0.75, "world_update": 1.0, "communication": 0.125}
    assert state.cost_by_turn() == {1: 1.75, 2: 0.125}
    assert "total_cost" not in state.to_dict(), "totals are derived, not stored"


def test_unknown_actor_is_an_error():
    with pytest.raises(KeyError):
        make_state().actor("zzz")
    with pytest.raises(KeyError):
        make_state().with_actor(ActorState("zzz", "Z", "m"))


def test_communication_visibility():
    private = Communication("c1", 1, CommunicationKind.BILATERAL, "a", ("b",), "hi")
    public = Communication("c2", 1, CommunicationKind.PUBLIC, "a", (), "all")
    assert private.visible_to("b") and not private.visible_to("c")
    assert public.visible_to("c")
    assert private.participants == ("a", "b")


@settings(max_examples=40, deadline=None)
@given(states)
def test_a_state_written_as_json_record_by_record_is_its_to_dict(state):
    import io

    handle = io.StringIO()
    state.write_json(handle)
    assert json.loads(handle.getvalue()) == json.loads(json.dumps(state.to_dict()))
