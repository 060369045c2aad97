"""What an actor reads: its own profile, the recent past, and only the messages it may see."""

from __future__ import annotations

from engine.phases.prompts import actor_system_prompt, other_actors, recent_history, situation, world_system_prompt
from engine.phases.tests.conftest import build_scenario
from engine.scenario.schema import BackgroundDocument
from engine.sdk import initial_state
from engine.state import Communication, CommunicationKind, Decision, WorldState

BACKGROUND = [BackgroundDocument(name="Treaty of 1952", text="  The old treaty split the lake in three equal parts.  ")]


def test_actor_system_prompt_holds_the_actors_profile():
    scenario = build_scenario(background=BACKGROUND)
    prompt = actor_system_prompt(scenario, scenario.actor("upland"))
    assert prompt.startswith("You take part in a simulated water negotiation.")
    assert "You are Upland Province." in prompt
    assert "## Your goals\n- Keep the dam under provincial control\n- Secure repair funding for the spillway" in prompt
    assert "## Your constraints\n- Cannot cut hydropower output by more than a tenth" in prompt
    assert "## Information only you have\n- The spillway repair will cost 40 million crowns." in prompt
    assert "## Your expertise\nhydrology: expert" in prompt
    assert "## How you decide\nSlow and legalistic." in prompt
    assert "## Treaty of 1952\n\nThe old treaty split the lake in three equal parts." in prompt


def test_actor_system_prompt_keeps_other_actors_secrets_out():
    scenario = build_scenario()
    prompt = actor_system_prompt(scenario, scenario.actor("growers"))
    assert "Protect irrigation quotas for the orchards" in prompt
    assert "40 million" not in prompt and "nine days of supply" not in prompt
    assert "Information only you have" not in prompt  # the growers have no private facts
    assert "Background documents" not in prompt


def test_world_system_prompt_names_the_scenario_and_background():
    scenario = build_scenario(background=BACKGROUND)
    prompt = world_system_prompt(scenario)
    assert "Scenario: Lake Varn Compact" in prompt
    assert "Three parties share a shrinking lake." in prompt
    assert "The old treaty split the lake" in prompt


def after_turns(scenario, count: int):
    state = initial_state(scenario, run_id="run-prompts")
    for turn in range(1, count + 1):
        state = state.with_world_state(WorldState(turn, f"World after turn {turn}.")).with_turn(turn)
    return state


def test_situation_shows_up_to_context_window_size_earlier_turns():
    scenario = build_scenario(context_window_size=2)
    text = situation(after_turns(scenario, 4), scenario)  # playing turn 5; the current world is turn 4's
    assert text.startswith("# Turn 5 of 4 (1 week per turn)")
    assert "## Current world state\n\nWorld after turn 4." in text
    assert "### Turn 2\nWorld after turn 2." in text
    assert "### Turn 3\nWorld after turn 3." in text
    assert "Turn 1\n" not in text and "Three parties meet" not in text
    assert text.index("### Turn 2") < text.index("### Turn 3") < text.index("## Current world state")


def test_a_context_window_of_zero_shows_only_the_current_world():
    scenario = build_scenario(context_window_size=0)
    text = situation(after_turns(scenario, 3), scenario)
    assert "Earlier turns" not in text
    assert "World after turn 3." in text and "World after turn 2." not in text


def test_early_in_the_run_there_is_less_history_than_the_window():
    scenario = build_scenario(context_window_size=5)
    assert recent_history(after_turns(scenario, 0), 5) == ""
    history = recent_history(after_turns(scenario, 2), 5)
    assert "### Turn 0\n# Lake Varn" in history and "### Turn 1\nWorld after turn 1." in history
    assert "World after turn 2." not in history  # that is the current world, shown separately


def test_an_actor_sees_only_the_messages_visible_to_it():
    scenario = build_scenario()
    state = initial_state(scenario, run_id="run-prompts")
    for message in (
        Communication("p", 1, CommunicationKind.PUBLIC, "city", (), "PUBLIC: rationing from Monday"),
        Communication("b", 1, CommunicationKind.BILATERAL, "upland", ("city",), "BILATERAL: spillway money"),
        Communication("c", 1, CommunicationKind.COALITION, "growers", ("upland", "city"), "COALITION: joint gauges"),
        Communication("r", 1, CommunicationKind.BILATERAL, "city", ("upland",), "REPLY: maybe", "b"),
        Communication("old", 0, CommunicationKind.PUBLIC, "city", (), "OLD: last week's news"),
    ):
        state = state.with_communication(message)

    def seen(actor: str) -> set[str]:
        text = situation(state, scenario, actor)
        return {tag for tag in ("PUBLIC", "BILATERAL", "COALITION", "REPLY", "OLD") if f"{tag}:" in text}

    assert seen("city") == {"PUBLIC", "BILATERAL", "COALITION", "REPLY"}
    assert seen("upland") == {"PUBLIC", "BILATERAL", "COALITION", "REPLY"}
    assert seen("growers") == {"PUBLIC", "COALITION"}
    assert "**Upland Province** (bilateral message to Varn City):" in situation(state, scenario, "city")
    assert "Messages this turn" not in situation(state, scenario)  # no actor: no messages at all


def test_an_actor_is_reminded_of_its_own_previous_actions_only():
    scenario = build_scenario()
    state = initial_state(scenario, run_id="run-prompts")
    state = state.with_decision(Decision(1, "city", ("g",), ("p",), "r", "City action one."))
    state = state.with_decision(Decision(1, "upland", ("g",), ("p",), "r", "Upland action one."))
    state = state.with_world_state(WorldState(1, "After one.")).with_turn(1)
    text = situation(state, scenario, "city")
    assert "## Your previous actions\n\n### Turn 1\nAction: City action one." in text
    assert "Upland action one." not in text


def test_other_actors_lists_everyone_else_by_short_name():
    text = other_actors(build_scenario(), "city")
    assert "- `upland`: Upland Province" in text and "- `growers`: Growers' Cooperative" in text
    assert "`city`" not in text
