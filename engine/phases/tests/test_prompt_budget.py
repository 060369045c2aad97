"""What an actor reads of the past: the summary, then detail, within its model's budget."""

from __future__ import annotations

from engine.phases.prompts import actor_room, latest_summary, recent_history, situation, summarised_until
from engine.phases.tests.conftest import build_scenario
from engine.sdk import initial_state
from engine.state import Communication, CommunicationKind, ContextSummary, Decision, WorldState
from engine.token_budget import CONTEXT_LENGTHS_VARIABLE, estimate_tokens

LONG = " Delegates argued over every clause of the annex late into the night." * 12


def after_turns(scenario, count: int, *, text: str = "World after turn {turn}."):
    state = initial_state(scenario, run_id="run-budget")
    for turn in range(1, count + 1):
        state = state.with_decision(Decision(turn, "city", ("g",), ("p",), "r", f"City action {turn}."))
        state = state.with_world_state(WorldState(turn, text.format(turn=turn))).with_turn(turn)
    return state


def test_the_summary_comes_before_the_window_and_covers_only_turns_outside_it():
    scenario = build_scenario(context_window_size=2)
    state = after_turns(scenario, 6)  # playing turn 7: worlds 4 and 5 earlier, 6 current; actions 5 and 6
    assert summarised_until(state, 2) == 4
    state = state.with_summary(ContextSummary(1, 3, "SUMMARY 1-3")).with_summary(ContextSummary(1, 4, "SUMMARY 1-4"))
    state = state.with_summary(ContextSummary(1, 5, "REACHES INTO THE WINDOW"))  # e.g. from a run with a smaller window
    assert latest_summary(state, 2) == ContextSummary(1, 4, "SUMMARY 1-4")
    text = situation(state, scenario, "city")
    assert "## Summary of earlier turns (turns 1–4)\n\nSUMMARY 1-4" in text
    assert "SUMMARY 1-3" not in text and "REACHES INTO" not in text
    assert text.index("Summary of earlier turns") < text.index("### Turn 4\nWorld after turn 4.") < text.index("## Current world state")
    assert "### Turn 5\nAction: City action 5." in text and "### Turn 6\nAction: City action 6." in text
    assert "City action 4." not in text


def test_the_world_model_reads_the_summary_too():
    scenario = build_scenario(context_window_size=1)
    state = after_turns(scenario, 4).with_summary(ContextSummary(1, 2, "SUMMARY 1-2"))
    history = recent_history(state, 1)
    assert history.startswith("## Summary of earlier turns (turns 1–2)\n\nSUMMARY 1-2\n\n## Earlier turns\n\n### Turn 3")


def test_a_prompt_that_fits_is_not_trimmed():
    scenario = build_scenario(context_window_size=3)
    state = after_turns(scenario, 5)
    assert situation(state, scenario, "city", room=10_000) == situation(state, scenario, "city")
    assert all(f"World after turn {t}." in situation(state, scenario, "city") for t in (2, 3, 4, 5))


def test_the_oldest_detail_goes_first_and_the_present_never():
    scenario = build_scenario(context_window_size=3)
    state = after_turns(scenario, 5, text="World after turn {turn}." + LONG)
    state = state.with_summary(ContextSummary(1, 1, "SUMMARY 1"))
    state = state.with_communication(Communication("m", 6, CommunicationKind.BILATERAL, "upland", ("city",), "MESSAGE THIS TURN"))
    full = situation(state, scenario, "city", room=100_000)
    room = estimate_tokens(full) - 150  # one long world less
    trimmed = situation(state, scenario, "city", room=room)
    assert estimate_tokens(trimmed) <= room
    assert "World after turn 2." not in trimmed and "World after turn 3." in trimmed
    assert "SUMMARY 1" in trimmed and "City action 3." in trimmed

    bare = situation(state, scenario, "city", room=estimate_tokens(full) // 3)
    assert "World after turn 5." in bare and "MESSAGE THIS TURN" in bare  # the current world and this turn's messages
    assert "World after turn 4." not in bare and "City action 3." not in bare

    # With no room at all, the present is still sent whole (and the call may fail): never cut.
    nothing = situation(state, scenario, "city", room=0)
    assert "World after turn 5." + LONG.rstrip() in nothing and "MESSAGE THIS TURN" in nothing and "SUMMARY" not in nothing


def test_when_only_the_summary_is_left_its_start_is_cut():
    scenario = build_scenario(context_window_size=0)
    summary = "Early events. " * 100 + "THE LATEST NEWS."
    state = after_turns(scenario, 3).with_summary(ContextSummary(1, 2, summary))
    room = estimate_tokens(situation(state, scenario, "city", room=10_000)) - 100
    text = situation(state, scenario, "city", room=room)
    assert estimate_tokens(text) <= room
    assert "[…] Early events." in text and text.count("Early events.") < 100 and "THE LATEST NEWS." in text


def test_an_actor_prompt_fits_its_own_model_and_a_shared_one_the_smallest(monkeypatch):
    monkeypatch.setenv(CONTEXT_LENGTHS_VARIABLE, "test/city-model=3000,test/*=100000")
    scenario = build_scenario(context_window_size=5)
    state = after_turns(scenario, 8, text="World after turn {turn}." + LONG)
    assert actor_room(state, scenario, "city") < 3000 < actor_room(state, scenario, "upland")
    assert actor_room(state, scenario) == actor_room(state, scenario, "city")
    assert estimate_tokens(situation(state, scenario, "city")) <= actor_room(state, scenario, "city")
    assert "World after turn 3." in situation(state, scenario, "upland")
    assert "World after turn 3." not in situation(state, scenario, "city")
    assert "World after turn 3." not in situation(state, scenario)  # outreach and replies: every actor's budget


def test_a_scenarios_max_context_tokens_binds_prompts():
    roomy = build_scenario(context_window_size=5)
    capped = build_scenario(context_window_size=5, features={"context_management": {"max_context_tokens": 3000}})
    state = after_turns(roomy, 8, text="World after turn {turn}." + LONG)
    assert "World after turn 3." in situation(state, roomy, "city")
    assert estimate_tokens(situation(state, capped, "city")) <= actor_room(state, capped, "city") < 3000
