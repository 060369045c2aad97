"""What an actor reads of the past: the summary, then detail, within its model's budget; the talks' prompts
within their own actor's budget; re-asks within budget too."""

from __future__ import annotations

from engine.llm.provider import CallPurpose
from engine.phases.communication import CommunicationPhase, ReplyOutput
from engine.phases.prompts import (
    REASK_ALLOWANCE_TOKENS,
    actor_room,
    fitted_texts,
    latest_summary,
    recent_history,
    request_room,
    situation,
    summarised_until,
)
from engine.phases.tests.conftest import ScriptedProvider, build_scenario, make_context
from engine.sdk import initial_state
from engine.state import Communication, CommunicationKind, ContextSummary, Decision, WorldState
from engine.token_budget import (
    CONTEXT_LENGTHS_VARIABLE,
    estimate_tokens,
    prompt_budget,
    request_tokens,
    scenario_context_length,
    shorten,
)

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


async def test_outreach_and_replies_fit_their_own_actors_budget_and_show_only_the_message_answered(monkeypatch):
    monkeypatch.setenv(CONTEXT_LENGTHS_VARIABLE, "test/city-model=2600,test/*=100000")
    scenario = build_scenario(context_window_size=5)
    start = after_turns(scenario, 8, text="World after turn {turn}." + LONG)
    talks = {
        "upland": {"public_statement": "UPLAND SPEAKS.", "conversations": [{"kind": "bilateral", "with": ["city"], "message": "UPLAND TO CITY."}]},
        "city": {"public_statement": "", "conversations": [{"kind": "bilateral", "with": ["growers"], "message": "CITY TO GROWERS."}]},
        "growers": {"public_statement": "", "conversations": []},
    }
    provider = ScriptedProvider({**{("outreach", actor): answer for actor, answer in talks.items()}, "reply": {"response": "Noted."}})
    await CommunicationPhase().run(start, make_context(scenario, provider))

    for request in provider.requests:
        assert request_tokens(request) <= prompt_budget(scenario_context_length(scenario, request.model), request.max_tokens)
    outreach = {r.purpose.actor: r.prompt_text for r in provider.calls("outreach")}
    assert "World after turn 3." in outreach["upland"] and "World after turn 3." not in outreach["city"]
    assert all("World after turn 8." + LONG.rstrip() in text for text in outreach.values())  # the present, whole
    assert all("SPEAKS" not in text and " TO " not in text for text in outreach.values())
    replies = {r.purpose.actor: r.prompt_text for r in provider.calls("reply")}
    assert "UPLAND TO CITY." in replies["city"] and "World after turn 3." not in replies["city"]
    assert "CITY TO GROWERS." in replies["growers"] and "UPLAND TO CITY." not in replies["growers"]
    assert "World after turn 3." in replies["growers"]


async def test_a_reask_stays_within_budget_showing_the_error_and_the_start_of_the_answer(monkeypatch):
    monkeypatch.setenv(CONTEXT_LENGTHS_VARIABLE, "test/*=2600")
    scenario = build_scenario()
    garbage = "Prose instead of JSON. " * 2000
    provider = ScriptedProvider({"reply": lambda r: garbage if len(r.messages) == 2 else '{"response": "Fine."}'})
    ctx = make_context(scenario, provider)
    system, user = "You reply.", "Reply, please. " * 400
    room = request_room(scenario, "test/city-model", max_tokens=600, system=system, output=ReplyOutput, reask=True)
    request = ctx.request(
        purpose=CallPurpose(task="reply", phase="communication", turn=1, actor="city"),
        model="test/city-model", system=system, user=shorten(user, room), output=ReplyOutput, max_tokens=600,
    )
    output, _ = await ctx.complete_structured(request, ReplyOutput)
    assert output.response == "Fine."
    first, again = provider.requests
    budget = prompt_budget(scenario_context_length(scenario, "test/city-model"), 600)
    assert request_tokens(first) <= budget and request_tokens(again) <= budget
    assert budget - request_tokens(first) >= REASK_ALLOWANCE_TOKENS
    assert again.messages[:2] == first.messages and again.messages[3].content.startswith("That answer could not be used")
    assert again.messages[2].role == "assistant"
    assert again.messages[2].content.startswith("Prose instead of JSON.") and again.messages[2].content.endswith("[…]")


async def test_with_no_room_left_a_reask_asks_again_as_before(monkeypatch):
    monkeypatch.setenv(CONTEXT_LENGTHS_VARIABLE, "test/*=2600")
    scenario = build_scenario()
    provider = ScriptedProvider({"reply": lambda r: "no JSON" if len(provider.requests) == 1 else '{"response": "Fine."}'})
    ctx = make_context(scenario, provider)
    room = request_room(scenario, "test/city-model", max_tokens=600, system="s", output=ReplyOutput)
    request = ctx.request(
        purpose=CallPurpose(task="reply", phase="communication", turn=1, actor="city"),
        model="test/city-model", system="s", user=shorten("Reply, please. " * 2000, room), output=ReplyOutput, max_tokens=600,
    )
    await ctx.complete_structured(request, ReplyOutput)
    assert provider.requests[1] == provider.requests[0]


def test_fitted_texts_cut_the_longest_first_and_leave_unshown_texts_alone():
    texts = {"long": "word " * 600, "short": "tiny text", "unused": "word " * 600}
    render = lambda t: f"A: {t['long']}\nB: {t['short']}"  # noqa: E731
    fitted = fitted_texts(texts, render, 300)
    assert estimate_tokens(render(fitted)) <= 300
    assert fitted["short"] == "tiny text" and fitted["unused"] == texts["unused"] and fitted["long"].endswith("[…]")
    assert fitted_texts(texts, render, 10_000) == texts
