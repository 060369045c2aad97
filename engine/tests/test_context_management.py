"""Context management over whole runs: 30 turns of prompts within their budgets, summaries paid once per turn
range (across a pause and a branch), private messages kept private, this turn's messages in this turn's
decision."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace

import pytest

from engine import Runner, RunStatus
from engine.estimate import estimate_run_cost
from engine.llm.offline import OfflineProvider
from engine.llm.openai_compatible import Endpoint, OpenAICompatibleProvider, RetryPolicy
from engine.llm.provider import LLMRequest, LLMResponse
from engine.phases.tests.conftest import build_scenario
from engine.scenario import load_scenario_folder
from engine.scenario.schema import ContextManagement
from engine.state import CommunicationKind, PhaseName, ScenarioState
from engine.testing.fake_llm import FakeLLMServer
from engine.testing.providers import FixedCostProvider
from engine.tests.conftest import as_json
from engine.token_budget import CONTEXT_LENGTHS_VARIABLE, prompt_budget, request_tokens, scenario_context_length
from engine.v1 import V1RunDirectory, read_run_directory
from legacy_v1.tests.folders import write_v1_scenario

MANAGED = {"context_management": {"enabled": True}}
WINDOW = 3
# Actors' models small enough that a full window does not fit a decision; the world model roomy (its prompt is
# not fitted yet: see engine.phases.world_update).
SMALL_ACTORS = "test/*=4096,test/world-model=16384"


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
def small_actors(monkeypatch):
    monkeypatch.setenv(CONTEXT_LENGTHS_VARIABLE, SMALL_ACTORS)


@pytest.fixture
def thirty_turns():
    return build_scenario(turns=30, context_window_size=WINDOW, features=MANAGED)


@pytest.fixture
async def long_run(small_actors, thirty_turns) -> tuple[ScenarioState, RecordingProvider]:
    provider = RecordingProvider(thirty_turns)
    state = await Runner(provider=provider).run_async(thirty_turns, run_id="long")
    assert state.status is RunStatus.COMPLETED and state.turn == 30
    return state, provider


async def test_thirty_turns_of_prompts_stay_within_their_models_budgets(long_run, thirty_turns):
    state, provider = long_run
    assert {r.purpose.task for r in provider.requests} == {"summary", "outreach", "reply", "decision", "world_update"}
    for request in provider.requests:
        budget = prompt_budget(scenario_context_length(thirty_turns, request.model), request.max_tokens)
        assert request_tokens(request) <= budget, (request.purpose, request_tokens(request), budget)

    # The budget binds: late decisions show fewer than WINDOW earlier worlds, but always the current one.
    late = [r for r in provider.made("decision") if r.purpose.turn > 10]
    shown = [sum(f"### Turn {t}\n" in r.messages[1].content for t in range(r.purpose.turn - 1 - WINDOW, r.purpose.turn - 1)) for r in late]
    assert min(shown) < WINDOW
    for request in late:
        current = state.world_states[request.purpose.turn - 1].content.strip()
        assert f"## Current world state\n\n{current}" in request.messages[1].content
        assert f"## Summary of earlier turns (turns 1–{request.purpose.turn - 1 - WINDOW})" in request.messages[1].content


async def test_each_turn_range_is_summarised_once_and_booked_under_summary(long_run):
    state, provider = long_run
    expected = [(1, last) for last in range(1, 30 - WINDOW)]  # from turn WINDOW + 2 on, one turn leaves the window
    assert summary_ranges(provider.requests) == expected
    assert [(s.first_turn, s.last_turn) for s in state.summaries] == expected
    ledger = [c for c in state.costs if c.phase is PhaseName.SUMMARY]
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
    assert len(decisions) == 90
    for request in decisions:
        actor, turn = request.purpose.actor, request.purpose.turn
        visible = [m for m in state.communications_in(turn) if m.visible_to(actor)]
        assert all(m.content in request.messages[1].content for m in visible)


async def test_a_pause_inside_a_turn_then_resume_pays_no_summary_twice(small_actors, thirty_turns):
    straight = await Runner(provider=RecordingProvider(thirty_turns)).run_async(thirty_turns, run_id="r")
    first = RecordingProvider(thirty_turns)
    runner = Runner(provider=first)

    @runner.on("phase_completed")
    def pause_after_the_summary(event):
        if event.data["turn"] == 12 and event.data["phase"] == "summary":
            runner.pause()

    paused = await runner.run_async(thirty_turns, run_id="r")
    assert paused.status is RunStatus.PAUSED and paused.turn == 11 and paused.summaries[-1].last_turn == 12 - 1 - WINDOW
    second = RecordingProvider(thirty_turns)
    resumed = await Runner(provider=second).run_async(thirty_turns, state=paused)
    assert summary_ranges(second.requests)[0] == (1, 13 - 1 - WINDOW)  # turn 12's summary was not asked for again
    assert summary_ranges(first.requests) + summary_ranges(second.requests) == [(1, k) for k in range(1, 30 - WINDOW)]
    assert as_json(resumed) == as_json(straight)


async def test_a_branch_reuses_the_parents_summaries(long_run, thirty_turns):
    parent, _ = long_run
    provider = RecordingProvider(thirty_turns)
    branch = await Runner(provider=provider).run_async(thirty_turns, state=parent.with_history_until(20))
    assert branch.status is RunStatus.COMPLETED
    # The parent summarised turns up to 20 while playing turns up to 24: the branch pays only for 1–21 on.
    assert [(s.first_turn, s.last_turn) for s in parent.with_history_until(20).summaries] == [(1, k) for k in range(1, 21)]
    assert summary_ranges(provider.requests) == [(1, k) for k in range(21, 30 - WINDOW)]
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


async def test_a_run_without_context_management_asks_for_no_summary(small_actors):
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
    assert state.status is RunStatus.COMPLETED
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
