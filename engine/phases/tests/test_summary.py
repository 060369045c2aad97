"""The summary phase: one summary of the turns older than the context window, paid once per turn range."""

from __future__ import annotations

import pytest

from engine.events import EventType
from engine.llm.offline import OfflineProvider
from engine.phases.summary import SUMMARY_MAX_TOKENS, SUMMARY_REQUEST_PHRASE, SummaryPhase, summary_model
from engine.phases.tests.conftest import RUN_ID, SEED, ScriptedProvider, build_scenario
from engine.sdk import initial_state
from engine.state import Communication, CommunicationKind, ContextSummary, Decision, PhaseType, ScenarioState, WorldState
from engine.testing import fake_chat
from engine.token_budget import CONTEXT_LENGTHS_VARIABLE, request_tokens, scenario_context_length, prompt_budget

MANAGED = {"context_management": {"enabled": True}}


def played(scenario, turns: int, *, world_text: str = "World after turn {turn}.") -> ScenarioState:
    """A state after `turns` turns: each actor acted, spoke publicly and privately, and the world moved on."""
    state = initial_state(scenario, run_id=RUN_ID, seed=SEED)
    for turn in range(1, turns + 1):
        for actor in scenario.actors:
            name = actor.short_name
            state = state.with_decision(Decision(turn, name, ("g",), ("p",), f"REASONING-{name}-{turn}", f"ACTION-{name}-{turn}"))
        state = state.with_communication(Communication(f"t{turn}-city-public", turn, CommunicationKind.PUBLIC, "city", (), f"PUBLIC-{turn}"))
        state = state.with_communication(Communication(f"t{turn}-upland-1", turn, CommunicationKind.BILATERAL, "upland", ("city",), f"PRIVATE-{turn}"))
        state = state.with_world_state(WorldState(turn, world_text.format(turn=turn))).with_turn(turn)
    return state


def recording(scenario) -> ScriptedProvider:
    return ScriptedProvider({}, fallback=OfflineProvider(scenario))


async def test_nothing_is_summarised_without_context_management(make_ctx):
    scenario = build_scenario(context_window_size=1)
    provider = recording(scenario)
    state = played(scenario, 6)
    assert await SummaryPhase().run(state, make_ctx(provider, scenario=scenario)) == state
    assert provider.requests == []


async def test_nothing_is_summarised_while_every_turn_is_within_the_window(make_ctx):
    scenario = build_scenario(context_window_size=2, features=MANAGED)
    provider = recording(scenario)
    state = played(scenario, 2)  # playing turn 3: turns 1 and 2 are shown in full
    assert await SummaryPhase().run(state, make_ctx(provider, scenario=scenario)) == state
    assert provider.requests == []


async def test_the_turns_that_left_the_window_are_summarised_once_and_booked_under_summary(make_ctx):
    scenario = build_scenario(context_window_size=2, features=MANAGED)
    provider = recording(scenario)
    ctx = make_ctx(provider, scenario=scenario)
    state = played(scenario, 4)  # playing turn 5: turns 3 and 4 in full, 1 and 2 summarised
    after = await SummaryPhase().run(state, ctx)
    assert [(s.first_turn, s.last_turn) for s in after.summaries] == [(1, 2)]
    assert after.summaries[0].text.startswith("Turns 1–2 in brief")
    [request] = provider.requests
    assert request.model == "test/world-model" == summary_model(scenario)  # no summarization model: the world's
    assert request.max_tokens == SUMMARY_MAX_TOKENS and (request.purpose.turn, request.purpose.actor) == (5, None)
    [cost] = [e.data for e in ctx.bus.get_history(EventType.COST_INCURRED)]
    assert (cost["phase"], cost["task"], cost["turn"], cost["actor"]) == ("summary", "summary", 5, None)
    assert [r.phase for r in ctx.llm.take_records()] == [PhaseType.SUMMARY]

    again = await SummaryPhase().run(after, make_ctx(provider, scenario=scenario))
    assert again == after and len(provider.requests) == 1, "a turn range is paid for once"


async def test_a_summary_folds_the_newly_aged_turn_into_the_previous_one(make_ctx):
    scenario = build_scenario(context_window_size=2, features={"context_management": {"enabled": True, "summarization_model": "test/summarizer"}})
    provider = recording(scenario)
    state = played(scenario, 5).with_summary(ContextSummary(1, 2, "PREVIOUS SUMMARY"))
    after = await SummaryPhase().run(state, make_ctx(provider, scenario=scenario))
    assert [(s.first_turn, s.last_turn) for s in after.summaries] == [(1, 2), (1, 3)]
    [request] = provider.requests
    prompt = request.messages[1].content
    assert request.model == "test/summarizer"
    assert "## Summary so far (turns 1–2)\n\nPREVIOUS SUMMARY" in prompt
    assert "### Turn 3" in prompt and "### Turn 2" not in prompt and "### Turn 4" not in prompt
    assert "ACTION-upland-3" in prompt and "PUBLIC-3" in prompt and "World after turn 3." in prompt
    assert SUMMARY_REQUEST_PHRASE in prompt


async def test_private_messages_and_reasoning_never_reach_a_summary(make_ctx):
    scenario = build_scenario(context_window_size=0, features=MANAGED)
    provider = recording(scenario)
    await SummaryPhase().run(played(scenario, 4), make_ctx(provider, scenario=scenario))
    for request in provider.requests:
        assert "PRIVATE-" not in request.prompt_text and "REASONING-" not in request.prompt_text


async def test_many_waiting_turns_are_folded_in_over_calls_that_each_fit(make_ctx, monkeypatch):
    """Context management switched on at turn 13 for a small summarising model: turns 1..12 do not fit one call."""
    monkeypatch.setenv(CONTEXT_LENGTHS_VARIABLE, "test/world-model=3000")
    scenario = build_scenario(context_window_size=0, features=MANAGED)
    provider = recording(scenario)
    state = played(scenario, 12, world_text="The world after turn {turn}. " + "Long news of the lake. " * 40)
    after = await SummaryPhase().run(state, make_ctx(provider, scenario=scenario))
    assert len(provider.requests) > 1
    ranges = [(s.first_turn, s.last_turn) for s in after.summaries]
    assert ranges[-1] == (1, 12) and all(first == 1 for first, _ in ranges) and ranges == sorted(ranges)
    for request in provider.requests:
        assert request_tokens(request) <= prompt_budget(scenario_context_length(scenario, request.model), request.max_tokens)


async def test_an_empty_summary_is_an_error_of_the_model(make_ctx):
    scenario = build_scenario(context_window_size=0, features=MANAGED)
    provider = ScriptedProvider({"summary": "  "})
    with pytest.raises(Exception, match="empty summary"):
        await SummaryPhase().run(played(scenario, 2), make_ctx(provider, scenario=scenario))


def test_the_fake_server_recognises_the_summary_request():
    assert SUMMARY_REQUEST_PHRASE.lower() == fake_chat.SUMMARY_REQUEST_PHRASE
