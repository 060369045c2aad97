"""Every bundled scenario is ready to start from: it validates (as `scenario-lab validate` says), plays two
turns offline with its metrics, checks and outside events, and plays a turn against an OpenAI-compatible
server with every answer's JSON taken as it came (no repair, no second asking)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine import EventBus, EventType, Runner, Scenario
from engine.llm.openai_compatible import Endpoint, OpenAICompatibleProvider
from engine.testing.fake_llm import FakeLLMServer

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scenarios" / "library"
SCENARIOS = sorted(p.name for p in LIBRARY.iterdir() if (p / "scenario.yaml").is_file())


def test_the_library_holds_scenarios_from_different_fields():
    assert len(SCENARIOS) >= 6 and "ai-summit" in SCENARIOS
    for name in SCENARIOS:
        scenario = Scenario.load(LIBRARY / name)
        assert 4 <= len(scenario.actors) <= 8, name
        assert list((LIBRARY / name / "background").glob("*.md")), f"{name}: no background document"
        assert any(m.thresholds for m in scenario.metric_definitions), f"{name}: no metric with thresholds"
        assert scenario.validation and scenario.validation.enabled_checks, f"{name}: no QA check"
        events = scenario.exogenous_events
        assert events and (events.random_events or events.scheduled_events or events.trends), f"{name}: no outside events"


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_lab_validate_accepts_it(name):
    done = subprocess.run([sys.executable, "-m", "scenariolab_site.cli", "validate", str(LIBRARY / name)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is valid" in done.stdout


@pytest.mark.parametrize("name", SCENARIOS)
async def test_it_plays_two_turns_offline(name):
    scenario = Scenario.load(LIBRARY / name)
    bus = EventBus(keep_history=True)
    state = await Runner(bus=bus).run_async(scenario, max_turns=2)
    assert state.status.value == "completed" and state.turn == 2, state.error
    for turn in (1, 2):
        assert len(state.decisions_in(turn)) == len(scenario.actors)
        assert {m.name for m in state.metrics_in(turn)} == {m.name for m in scenario.metric_definitions}
        assert state.validations_in(turn)
    assert bus.get_history(EventType.EXOGENOUS_EVENT), "no outside event in two turns"


@pytest.mark.parametrize("name", SCENARIOS)
async def test_it_plays_a_turn_against_a_server_with_every_answer_taken_as_it_came(name):
    scenario = Scenario.load(LIBRARY / name)
    bus = EventBus(keep_history=True)
    async with FakeLLMServer() as server:
        provider = OpenAICompatibleProvider(Endpoint("local", server.base_url))
        state = await Runner(provider=provider, bus=bus, trace_calls=True).run_async(scenario, max_turns=1)
        await provider.aclose()
    assert state.status.value == "completed", state.error
    calls = bus.get_history(EventType.MODEL_CALLED)
    assert calls and len(calls) == server.stats["completions"]
    assert [(c.data["outcome"], c.data["repair"]) for c in calls] == [("used", None)] * len(calls)
