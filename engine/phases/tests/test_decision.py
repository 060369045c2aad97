"""The decision phase: one validated decision per actor, events, partial failure, concurrency, resuming."""

from __future__ import annotations

import time

import pytest

from engine.events import EventType
from engine.llm.provider import LLMError, StructuredOutputError
from engine.phases.decision import DecisionPhase
from engine.phases.tests.conftest import ScriptedProvider
from engine.state import Decision
from engine.testing.providers import FailingProvider, SleepingProvider

ACTORS = {"upland", "city", "growers"}


async def test_one_decision_per_actor_with_its_model_and_provider(state, make_ctx, scenario):
    new = await DecisionPhase().run(state, make_ctx())
    decisions = new.decisions_in(1)
    assert set(decisions) == ACTORS
    for actor in scenario.actors:
        decision = decisions[actor.short_name]
        assert decision.turn == 1
        assert decision.model == actor.llm_model
        assert decision.provider == "offline"
        assert decision.action and decision.reasoning and decision.long_term_goals and decision.short_term_priorities
    assert state.decisions == ()  # the input state is untouched


async def test_decision_fields_come_from_the_model_answer(state, make_ctx):
    answer = {
        "long_term_goals": ["Keep the lake alive"],
        "short_term_priorities": ["Agree the drought trigger", "Meet the city"],
        "reasoning": "The lake is low.",
        "action": "Proposes a trigger at 12 metres.",
    }
    new = await DecisionPhase().run(state, make_ctx(ScriptedProvider({"decision": answer})))
    decision = new.decisions_in(1)["city"]
    assert decision.long_term_goals == ("Keep the lake alive",)
    assert decision.short_term_priorities == ("Agree the drought trigger", "Meet the city")
    assert decision.action == "Proposes a trigger at 12 metres."
    assert decision.provider == "scripted"


async def test_started_and_completed_events_for_every_actor(state, make_ctx):
    ctx = make_ctx()
    new = await DecisionPhase().run(state, ctx)
    started = ctx.bus.get_history(EventType.ACTOR_DECISION_STARTED)
    completed = ctx.bus.get_history(EventType.ACTOR_DECISION_COMPLETED)
    assert sorted(e.data["actor"] for e in started) == sorted(ACTORS)
    assert sorted(e.data["actor"] for e in completed) == sorted(ACTORS)
    for event in completed:
        assert event.data["turn"] == 1
        assert event.data["action"] == new.decisions_in(1)[event.data["actor"]].action
        assert event.data["provider"] == "offline"
    assert ctx.bus.get_history(EventType.ACTOR_DECISION_FAILED) == []


async def test_a_garbage_answer_interrupts_the_phase_but_keeps_the_good_decisions(state, make_ctx, scenario):
    provider = FailingProvider(scenario, fails=lambda request, _: request.purpose.actor == "city", garbage="not json at all")
    ctx = make_ctx(provider)
    with pytest.raises(StructuredOutputError):
        await DecisionPhase().run(state, ctx)

    assert set(ctx.progress.decisions_in(1)) == {"upland", "growers"}, "the good decisions are checkpointed"
    [failed] = ctx.bus.get_history(EventType.ACTOR_DECISION_FAILED)
    assert failed.data["actor"] == "city"
    assert failed.data["error"]
    assert {e.data["actor"] for e in ctx.bus.get_history(EventType.ACTOR_DECISION_COMPLETED)} == {"upland", "growers"}


async def test_a_provider_outage_is_the_cause_of_the_interruption(state, make_ctx, scenario):
    provider = FailingProvider(scenario, fails=lambda request, _: request.purpose.actor == "upland")
    ctx = make_ctx(provider)
    with pytest.raises(LLMError, match="simulated outage"):
        await DecisionPhase().run(state, ctx)
    assert set(ctx.progress.decisions_in(1)) == {"city", "growers"}


async def test_actors_decide_concurrently(state, make_ctx, scenario):
    provider = SleepingProvider(scenario, latency=0.2)
    started = time.perf_counter()
    new = await DecisionPhase().run(state, make_ctx(provider))
    elapsed = time.perf_counter() - started
    assert len(new.decisions_in(1)) == 3
    assert elapsed < 0.45


async def test_max_concurrency_one_makes_the_decisions_sequential(state, make_ctx, scenario):
    provider = SleepingProvider(scenario, latency=0.2)
    started = time.perf_counter()
    await DecisionPhase().run(state, make_ctx(provider, max_concurrency=1))
    assert time.perf_counter() - started >= 0.55
    calls = sorted(provider.calls, key=lambda c: c.started)
    assert all(later.started >= earlier.ended for earlier, later in zip(calls, calls[1:]))


async def test_a_rerun_skips_actors_who_already_decided(state, make_ctx):
    earlier = Decision(1, "upland", ("g",), ("p",), "kept reasoning", "kept action", "m", "earlier")
    provider = ScriptedProvider(
        {"decision": {"long_term_goals": ["g"], "short_term_priorities": ["p"], "reasoning": "r", "action": "new"}}
    )
    new = await DecisionPhase().run(state.with_decision(earlier), make_ctx(provider))
    assert sorted(r.purpose.actor for r in provider.requests) == ["city", "growers"]
    assert new.decisions_in(1)["upland"] is earlier
    assert len(new.decisions_in(1)) == 3


async def test_decisions_of_an_earlier_turn_do_not_count_as_done(state, make_ctx):
    last_turn = Decision(1, "upland", ("g",), ("p",), "r", "last week's action")
    moved_on = state.with_decision(last_turn).with_turn(1)
    new = await DecisionPhase().run(moved_on, make_ctx())
    assert set(new.decisions_in(2)) == ACTORS
    assert new.decisions_in(1)["upland"] is last_turn


async def test_each_call_is_booked_under_the_decision_phase(state, make_ctx):
    ctx = make_ctx()
    await DecisionPhase().run(state, ctx)
    records = ctx.llm.take_records()
    assert sorted(r.actor for r in records) == sorted(ACTORS)
    assert {r.phase.value for r in records} == {"decision"}
    assert all(r.turn == 1 and r.tokens > 0 for r in records)
