"""Context management over whole runs: 30 turns of prompts (every phase's, re-asks too) within their models'
budgets, summaries paid once per turn range (across a pause and a branch), private messages kept private, this
turn's messages in this turn's decision."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace

import pytest

from engine import Runner, ScenarioStatus
from engine.estimate import estimate_run_cost
from engine.llm.offline import OfflineProvider
from engine.llm.openai_compatible import Endpoint, OpenAICompatibleProvider, RetryPolicy
from engine.llm.provider import LLMRequest, LLMResponse
from engine.phases.tests.conftest import build_scenario
from engine.scenario import load_scenario_folder
from engine.scenario.schema import ContextManagement
from engine.state import CommunicationKind, PhaseType, ScenarioState
from engine.testing.fake_llm import FakeLLMServer
from engine.testing.providers import FailingProvider, FixedCostProvider
from engine.tests.conftest import as_json
from engine.token_budget import CONTEXT_LENGTHS_VARIABLE, prompt_budget, request_tokens, scenario_context_length
from engine.v1 import V1RunDirectory, read_run_directory
from engine.testing.v1_folders import write_v1_scenario

MANAGED = {"context_management": {"enabled": True}}
WINDOW = 3
# Every model small enough for its budget to bind over a long run: the actors' (a full window does not fit a
# decision), the world model's (nor an update), the judge's (nor a QA check quoting two worlds and the
# actions) and a metric model's (nor one world to assess).
SMALL_MODELS = "test/*=4096,test/world-model=3600,test/judge-model=1800,test/metric-model=500"
METRICS = [
    {"name": "trust", "range": [0, 10], "extraction": {"type": "llm", "prompt": "How much do the parties trust each other, 0 to 10?"}},
    {
        "name": "resolve",
        "actor_specific": True,
        "range": [0, 10],
        "extraction": {"type": "llm", "model": "test/metric-model", "prompt": "How firmly does this party hold its line, 0 to 10?"},
    },
]
VALIDATION = {
    "validation_model": "test/judge-model",
    "checks": {
        "actor_decision_consistency": {"severity": "low", "description": "Does the decision follow from the actor's goals?"},
        "world_state_coherence": {"severity": "low", "description": "Does the new world follow from the old one and the actions?"},
        "information_access": {
            "severity": "low",
            "prompt_template": "Did {actor_name} use only what it may know?\n\n## Its messages\n{private_communications}\n\n"
            "## What only others know\n{restricted_information}\n\n## Its action\n{actor_action}\n\n## The world\n{world_state}",
        },
    },
}
# A model that sometimes answers prose where JSON was asked, at length: (task, actor or None for any, turn) ->
# how many answers in a row are garbage before a good one.
GARBAGE = "I would rather explain our position in plain prose than fill in a form. " * 150
GARBAGE_ANSWERS = {("decision", "city", 12): 1, ("outreach", "upland", 15): 1, ("reply", None, 18): 1, ("decision", "growers", 25): 2}


def garbage_sometimes(scenario) -> FailingProvider:
    attempts: Counter = Counter()

    def garbage(request: LLMRequest, _call: int) -> bool:
        p = request.purpose
        key = (p.task, p.actor, p.turn, json.dumps(p.hints, sort_keys=True))
        attempts[key] += 1
        return attempts[key] <= GARBAGE_ANSWERS.get((p.task, p.actor, p.turn), GARBAGE_ANSWERS.get((p.task, None, p.turn), 0))

    return FailingProvider(scenario, fails=garbage, garbage=GARBAGE)


class RecordingProvider:
    """Offline answers, every request kept, and each message tagged with a digest of the prompt it answers,
    so a test can tell two messages apart even when the offline provider words them alike (the tags are
    the same in a rerun, so runs still compare equal)."""

    name = "recording"

    def __init__(self, scenario, inner=None) -> None:
        self.inner = inner or OfflineProvider(scenario)
        self.requests: list[LLMRequest] = []

    def max_cost(self, request: LLMRequest) -> float:
        return self.inner.max_cost(request)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        response = await self.inner.complete(request)
        tag = hashlib.sha256(request.prompt_text.encode()).hexdigest()[:12]
        if response.data is None:  # garbage (see garbage_sometimes)
            return response
        if request.purpose.task == "outreach":
            data = dict(response.data)
            data["conversations"] = [{**c, "message": f"{c['message']} [{tag}-{i}]"} for i, c in enumerate(data["conversations"])]
            return replace(response, data=data, text=json.dumps(data))
        if request.purpose.task == "reply":
            data = {"response": f"{response.data['response']} [{tag}]"}
            return replace(response, data=data, text=json.dumps(data))
        return response

    def made(self, task: str) -> list[LLMRequest]:
        return [r for r in self.requests if r.purpose.task == task]


def summary_ranges(requests: list[LLMRequest]) -> list[tuple[int, int]]:
    return [(r.purpose.hints["first_turn"], r.purpose.hints["last_turn"]) for r in requests if r.purpose.task == "summary"]


@pytest.fixture
def small_models(monkeypatch):
    monkeypatch.setenv(CONTEXT_LENGTHS_VARIABLE, SMALL_MODELS)


@pytest.fixture
def thirty_turns():
    return build_scenario(turns=30, context_window_size=WINDOW, features=MANAGED, metrics=METRICS, validation=VALIDATION)


@pytest.fixture
async def long_run(small_models, thirty_turns) -> tuple[ScenarioState, RecordingProvider]:
    provider = RecordingProvider(thirty_turns, inner=garbage_sometimes(thirty_turns))
    state = await Runner(provider=provider).run_async(thirty_turns, run_id="long")
    assert state.status is ScenarioStatus.COMPLETED and state.turn == 30
    return state, provider


def worlds_shown(request: LLMRequest) -> int:
    """How many of the WINDOW worlds before the current one a prompt shows in full."""
    turn = request.purpose.turn
    return sum(f"### Turn {t}\n" in request.messages[1].content for t in range(turn - 1 - WINDOW, turn - 1))


async def test_thirty_turns_of_prompts_stay_within_their_models_budgets(long_run, thirty_turns):
    state, provider = long_run
    tasks = {"summary", "outreach", "reply", "decision", "world_update", "metric", "validation"}
    assert {r.purpose.task for r in provider.requests} == tasks
    assert {r.model for r in provider.requests} >= {"test/world-model", "test/judge-model", "test/metric-model"}
    for request in provider.requests:
        budget = prompt_budget(scenario_context_length(thirty_turns, request.model), request.max_tokens)
        assert request_tokens(request) <= budget, (request.purpose, request.model, request_tokens(request), budget)

    # Re-asks were made, each within budget (above) and showing the error and the start of the failed answer.
    reasks = [r for r in provider.requests if any(m.role == "assistant" for m in r.messages)]
    assert {(r.purpose.task, r.purpose.actor, r.purpose.turn) for r in reasks if r.purpose.task != "reply"} == {
        ("decision", "city", 12), ("outreach", "upland", 15), ("decision", "growers", 25)
    }
    assert {r.purpose.turn for r in reasks if r.purpose.task == "reply"} == {18}  # every reply of turn 18
    assert len([r for r in reasks if r.purpose.actor == "growers" and r.purpose.turn == 25]) == 2
    for request in reasks:
        assert len(request.messages) == 4 and request.messages[3].content.startswith("That answer could not be used")
        shown = request.messages[2].content
        assert shown.startswith(GARBAGE[:60]) and shown.endswith("[…]") and len(shown) < len(GARBAGE)

    # The budget binds: late decisions and world updates show fewer than WINDOW earlier worlds, but always the
    # current one; QA checks and the small metric model read shortened texts.
    late = [r for r in provider.made("decision") if r.purpose.turn > 10]
    assert min(map(worlds_shown, late)) < WINDOW
    updates = provider.made("world_update")[10:]
    assert min(map(worlds_shown, updates)) < WINDOW
    for request in updates:
        before = state.world_states[request.purpose.turn - 1].content.strip()
        assert f"## World state before turn {request.purpose.turn}\n\n{before}" in request.messages[1].content
        assert f"## Summary of earlier turns (turns 1–{request.purpose.turn - 1 - WINDOW})" in request.messages[1].content
    assert any("[…]" in r.messages[1].content for r in provider.made("validation"))
    assert all("[…]" in r.messages[1].content for r in provider.made("metric") if r.model == "test/metric-model")
    for request in late:
        current = state.world_states[request.purpose.turn - 1].content.strip()
        assert f"## Current world state\n\n{current}" in request.messages[1].content
        assert f"## Summary of earlier turns (turns 1–{request.purpose.turn - 1 - WINDOW})" in request.messages[1].content


async def test_each_turn_range_is_summarised_once_and_booked_under_summary(long_run):
    state, provider = long_run
    expected = [(1, last) for last in range(1, 30 - WINDOW)]  # from turn WINDOW + 2 on, one turn leaves the window
    assert summary_ranges(provider.requests) == expected
    assert [(s.first_turn, s.last_turn) for s in state.summaries] == expected
    ledger = [c for c in state.costs if c.phase is PhaseType.SUMMARY]
    assert [(c.turn, c.actor) for c in ledger] == [(turn, None) for turn in range(WINDOW + 2, 31)]


async def test_private_messages_never_reach_a_non_participant(long_run):
    state, provider = long_run
    private = [m for m in state.communications if m.kind is not CommunicationKind.PUBLIC]
    assert len(private) > 30
    for request in provider.requests:
        reader = request.purpose.actor
        for message in private:
            if reader is None or reader not in message.participants:
                assert message.content not in request.prompt_text, (request.purpose, message.id)


async def test_this_turns_messages_are_in_this_turns_decision(long_run):
    state, provider = long_run
    decisions = provider.made("decision")
    assert len(decisions) == 90 + 3  # three re-asks (GARBAGE_ANSWERS)
    for request in decisions:
        actor, turn = request.purpose.actor, request.purpose.turn
        visible = [m for m in state.communications_in(turn) if m.visible_to(actor)]
        assert all(m.content in request.messages[1].content for m in visible)


async def test_a_pause_inside_a_turn_then_resume_pays_no_summary_twice(small_models, thirty_turns):
    straight = await Runner(provider=RecordingProvider(thirty_turns)).run_async(thirty_turns, run_id="r")
    first = RecordingProvider(thirty_turns)
    runner = Runner(provider=first)

    @runner.on("phase_completed")
    def pause_after_the_summary(event):
        if event.data["turn"] == 12 and event.data["phase"] == "summary":
            runner.pause()

    paused = await runner.run_async(thirty_turns, run_id="r")
    assert paused.status is ScenarioStatus.PAUSED and paused.turn == 11 and paused.summaries[-1].last_turn == 12 - 1 - WINDOW
    second = RecordingProvider(thirty_turns)
    resumed = await Runner(provider=second).run_async(thirty_turns, state=paused)
    assert summary_ranges(second.requests)[0] == (1, 13 - 1 - WINDOW)  # turn 12's summary was not asked for again
    assert summary_ranges(first.requests) + summary_ranges(second.requests) == [(1, k) for k in range(1, 30 - WINDOW)]
    assert as_json(resumed) == as_json(straight)


async def test_a_branch_reuses_the_parents_summaries(long_run, thirty_turns):
    parent, _ = long_run
    provider = RecordingProvider(thirty_turns)
    start = parent.with_history_until(20, context_window=WINDOW)
    branch = await Runner(provider=provider).run_async(thirty_turns, state=start)
    assert branch.status is ScenarioStatus.COMPLETED
    # By turn 20 the parent had summarised turns 1..20-WINDOW-1; the later summaries (written after the branch
    # point, their ledger lines dropped with it) are the branch's own to pay for.
    assert [(s.first_turn, s.last_turn) for s in start.summaries] == [(1, k) for k in range(1, 20 - WINDOW)]
    assert summary_ranges(provider.requests) == [(1, k) for k in range(20 - WINDOW, 30 - WINDOW)]
    assert Counter((s.first_turn, s.last_turn) for s in branch.summaries).most_common(1)[0][1] == 1


async def test_summary_costs_are_in_the_ledger_and_the_estimate(thirty_turns):
    scenario = build_scenario(turns=8, context_window_size=WINDOW, features=MANAGED)
    provider = FixedCostProvider(scenario, cost_per_call=0.001)
    state = await Runner(provider=provider).run_async(scenario, run_id="priced")
    summaries = 8 - WINDOW - 1
    assert state.cost_by_phase()["summary"] == pytest.approx(summaries * 0.001)
    estimate = estimate_run_cost(scenario, provider)
    assert estimate.by_phase()["summary"].high == pytest.approx(summaries * 0.001)
    unmanaged = estimate_run_cost(build_scenario(turns=8, context_window_size=WINDOW), provider)
    assert "summary" not in unmanaged.by_phase() and estimate.calls == unmanaged.calls + summaries


async def test_a_run_without_context_management_asks_for_no_summary(small_models):
    scenario = build_scenario(turns=8, context_window_size=WINDOW)
    provider = RecordingProvider(scenario)
    state = await Runner(provider=provider).run_async(scenario, run_id="plain")
    assert state.summaries == () and provider.made("summary") == []
    for request in provider.requests:  # prompts are kept within budget all the same
        assert request_tokens(request) <= prompt_budget(scenario_context_length(scenario, request.model), request.max_tokens)


async def test_the_fake_server_writes_summaries_as_prose():
    scenario = build_scenario(turns=4, context_window_size=1, features=MANAGED)
    async with FakeLLMServer() as server:
        provider = OpenAICompatibleProvider(Endpoint("local", server.base_url), retry=RetryPolicy(max_retries=1, base_delay=0.01))
        state = await Runner(provider=provider).run_async(scenario, run_id="served")
    assert state.status is ScenarioStatus.COMPLETED
    assert [(s.first_turn, s.last_turn) for s in state.summaries] == [(1, 1), (1, 2)]
    assert all(s.text.startswith("The outcome ") and "**ACTION:**" not in s.text for s in state.summaries)


def test_a_v1_run_directory_keeps_its_summaries(tmp_path):
    folder = load_scenario_folder(write_v1_scenario(tmp_path))
    features = folder.config.features.model_copy(update={"context_management": ContextManagement(enabled=True)})
    scenario = folder.model_copy(update={"config": folder.config.model_copy(update={"features": features})})
    directory = V1RunDirectory(tmp_path / "run", scenario, scenario_path="river-compact")
    state = Runner(persistence=directory).run(scenario, max_turns=5)
    assert [(s.first_turn, s.last_turn) for s in state.summaries] == [(1, 1), (1, 2)]
    read, document = read_run_directory(tmp_path / "run", scenario=scenario)
    assert read == state
    assert document["execution_metadata"]["engine"]["summaries"][-1]["last_turn"] == 2
