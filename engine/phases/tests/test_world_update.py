"""The world update phase: a new world for the turn, its outside events, its event and its failure mode."""

from __future__ import annotations

import pytest

from engine.events import EventType
from engine.llm.provider import LLMError
from engine.phases.tests.conftest import RUN_ID, SEED, ScriptedProvider, build_scenario, make_context
from engine.phases.world_update import WorldUpdatePhase, actions_text, public_statements_text
from engine.sdk import initial_state
from engine.state import Communication, CommunicationKind, Decision, PhaseType

FLOOD = {
    "scheduled_events": [
        {"name": "Spring flood", "schedule": {"turns": [1, 3]}, "effect": "Meltwater   raises the lake by a metre."}
    ]
}
NEW_WORLD = "The lake is still low, but the parties now talk daily."


def decided(state):
    for actor, action in (("upland", "Upland offers gauge data."), ("growers", "The growers cut quotas by 5%.")):
        state = state.with_decision(Decision(state.current_turn, actor, ("g",), ("p",), "r", action))
    return state


async def run(scenario, provider, state=None):
    ctx = make_context(scenario, provider)
    start = state or decided(initial_state(scenario, run_id=RUN_ID, seed=SEED))
    return await WorldUpdatePhase().run(start, ctx), ctx


async def test_a_new_world_state_for_the_current_turn():
    scenario = build_scenario()
    provider = ScriptedProvider({"world_update": f"\n  {NEW_WORLD}\n"})
    state, _ = await run(scenario, provider)
    assert [w.turn for w in state.world_states] == [0, 1]
    assert state.world_state.content == NEW_WORLD
    assert state.world_states[0].content == scenario.config.initial_world_state.strip()


async def test_the_prompt_holds_the_old_world_and_every_action():
    provider = ScriptedProvider({"world_update": NEW_WORLD})
    await run(build_scenario(), provider)
    [request] = provider.requests
    assert request.model == "test/world-model"
    assert request.purpose.phase == PhaseType.WORLD_UPDATE.value and request.purpose.actor is None
    assert "Three parties meet in Kessel" in request.prompt_text
    assert "### Upland Province\nUpland offers gauge data." in request.prompt_text
    assert "### Growers' Cooperative\nThe growers cut quotas by 5%." in request.prompt_text
    assert "Varn City" not in actions_text(decided(initial_state(build_scenario())), 1)  # the city did not act


async def test_scheduled_outside_events_are_recorded_in_the_world_and_the_prompt():
    provider = ScriptedProvider({"world_update": NEW_WORLD})
    state, _ = await run(build_scenario(exogenous=FLOOD), provider)
    [event] = state.world_state.exogenous_events
    assert (event.name, event.kind) == ("Spring flood", "scheduled")
    assert "- **Spring flood**: Meltwater raises the lake by a metre." in provider.requests[0].prompt_text
    assert provider.requests[0].purpose.hints["events"] == ["Spring flood"]


async def test_no_outside_events_when_the_feature_is_off():
    scenario = build_scenario(exogenous=FLOOD, features={"exogenous_events": False})
    provider = ScriptedProvider({"world_update": NEW_WORLD})
    state, _ = await run(scenario, provider)
    assert state.world_state.exogenous_events == ()
    assert "Spring flood" not in provider.requests[0].prompt_text


async def test_no_outside_events_on_unscheduled_turns():
    scenario = build_scenario(exogenous=FLOOD)
    start = decided(initial_state(scenario, run_id=RUN_ID, seed=SEED).with_turn(1))  # playing turn 2
    state, _ = await run(scenario, ScriptedProvider({"world_update": NEW_WORLD}), start)
    assert state.world_state.turn == 2
    assert state.world_state.exogenous_events == ()


async def test_world_state_updated_event():
    state, ctx = await run(build_scenario(exogenous=FLOOD), ScriptedProvider({"world_update": NEW_WORLD}))
    [event] = ctx.bus.get_history(EventType.WORLD_STATE_UPDATED)
    assert event.data["turn"] == 1
    assert event.data["content"] == NEW_WORLD
    assert [e["name"] for e in event.data["exogenous_events"]] == ["Spring flood"]


@pytest.mark.parametrize("empty", ["", "   \n\n  "])
async def test_an_empty_answer_is_an_llm_error(empty):
    scenario = build_scenario()
    start = decided(initial_state(scenario, run_id=RUN_ID, seed=SEED))
    ctx = make_context(scenario, ScriptedProvider({"world_update": empty}))
    with pytest.raises(LLMError, match="empty world state"):
        await WorldUpdatePhase().run(start, ctx)
    assert ctx.bus.get_history(EventType.WORLD_STATE_UPDATED) == []


async def test_public_statements_reach_the_world_model():
    scenario = build_scenario()
    start = decided(initial_state(scenario, run_id=RUN_ID, seed=SEED))
    public = Communication("t1-city-public", 1, CommunicationKind.PUBLIC, "city", (), "We ration water.")
    private = Communication("t1-city-1", 1, CommunicationKind.BILATERAL, "city", ("upland",), "Private offer")
    start = start.with_communication(public).with_communication(private)
    provider = ScriptedProvider({"world_update": NEW_WORLD})
    await run(scenario, provider, start)
    prompt = provider.requests[0].prompt_text
    assert "**Varn City:** We ration water." in prompt
    assert "Private offer" not in prompt
    assert public_statements_text(start, 2) == ""


async def test_the_offline_world_update_is_booked_as_a_world_call():
    scenario = build_scenario()
    ctx = make_context(scenario)
    start = decided(initial_state(scenario, run_id=RUN_ID, seed=SEED))
    state = await WorldUpdatePhase().run(start, ctx)
    assert state.world_state.turn == 1 and state.world_state.content
    [record] = ctx.llm.take_records()
    assert (record.phase, record.actor, record.provider) == (PhaseType.WORLD_UPDATE, None, "offline")
