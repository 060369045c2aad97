"""Same seed, same outside events: a fresh run, a run paused and resumed, and a branch fire the same events in
the same turns; `once` holds across all three; a metric condition fires after the metric crosses its value."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from engine import EventBus, EventType, Runner, ScenarioStatus
from engine.llm.offline import OfflineProvider
from engine.phases.tests.conftest import ScriptedProvider, build_scenario
from engine.state import ScenarioState

TURNS = 8
LEVELS = {turn: 60 - 8 * turn for turn in range(1, TURNS + 1)}  # 52 44 36 28 20 12 4 -4: below 35 from turn 4

RULES = {
    "scheduled_events": [{"name": "Budget vote", "schedule": {"turns": [2, 6]}, "effect": "Parliament votes."}],
    "trends": [{"name": "Falling lake", "probability_per_turn": 0.5,
                "effects": [{"turn_range": [1, TURNS], "description": "The lake drops."}]}],
    "random_events": [
        {"name": "Heatwave", "probability": 0.5, "effect": "A heatwave.", "once": False},
        {"name": "Dam leak", "probability": 0.4, "effect": "The dam leaks."},  # once
        {"name": "Inspection", "probability": 1, "turn_range": [2, 7], "effect": "Inspectors arrive."},  # once, turn 2
    ],
    "conditional_events": [
        {"name": "Rationing", "once": False, "effect": "Rationing starts.",
         "conditions": [{"type": "metrics", "metric": "lake_level", "operator": "<", "value": 35}]},
        {"name": "Emergency session", "effect": "An emergency session is called.",
         "conditions": [{"type": "metrics", "metric": "lake_level", "operator": "<", "value": 40}]},
    ],
}
LAKE_LEVEL = {"name": "lake_level", "extraction": {"type": "pattern", "pattern": r"lake level: (-?\d+)"}}
SCENARIO = build_scenario(exogenous=RULES, metrics=[LAKE_LEVEL], turns=TURNS)


def world_model(request) -> str:
    return f"The parties keep talking. Lake level: {LEVELS[request.purpose.turn]} percent."


def runner(bus: EventBus | None = None) -> Runner:
    provider = ScriptedProvider({"world_update": world_model}, fallback=OfflineProvider(SCENARIO))
    return Runner(provider=provider, bus=bus or EventBus(keep_history=True))


def fired(state: ScenarioState) -> dict[int, list[tuple[str, str]]]:
    """Turn -> (kind, name) of the outside events that shaped it."""
    return {w.turn: [(e.kind, e.name) for e in w.exogenous_events] for w in state.world_states if w.turn}


def announced(bus: EventBus) -> dict[int, list[tuple[str, str]]]:
    by_turn: dict[int, list[tuple[str, str]]] = {}
    for event in bus.get_history(EventType.EXOGENOUS_EVENT):
        by_turn.setdefault(event.data["turn"], []).append((event.data["kind"], event.data["name"]))
    return by_turn


async def fresh(seed: int) -> ScenarioState:
    state = await runner().run_async(SCENARIO, max_turns=TURNS, seed=seed, run_id=f"fresh-{seed}")
    assert state.status is ScenarioStatus.COMPLETED
    return state


async def paused_then_resumed(seed: int, pause_after: dict) -> ScenarioState:
    first = runner()

    @first.on(EventType.PHASE_COMPLETED)
    def pause(event):
        if dict(event.data) == pause_after:
            first.pause()

    paused = await first.run_async(SCENARIO, max_turns=TURNS, seed=seed, run_id=f"resumed-{seed}")
    assert paused.status is ScenarioStatus.PAUSED
    stored = ScenarioState.from_dict(paused.to_dict())  # as a new process would read it back
    bus = EventBus(keep_history=True)
    resumed = await runner(bus).run_async(SCENARIO, max_turns=TURNS, state=stored)
    assert resumed.status is ScenarioStatus.COMPLETED
    # the resumed process announces exactly the events of the turns it wrote
    assert announced(bus) == {t: e for t, e in fired(resumed).items() if t > paused.world_state.turn and e}
    return resumed


async def branched(parent: ScenarioState, turn: int, **changes) -> ScenarioState:
    start = replace(parent.with_history_until(turn), **changes)
    state = await runner().run_async(SCENARIO, max_turns=TURNS, state=start)
    assert state.status is ScenarioStatus.COMPLETED and state.turn == TURNS
    return state


SEEDS = (3, 11)


@pytest.fixture(scope="module")
def fresh_runs():
    return {seed: asyncio.run(fresh(seed)) for seed in SEEDS}


async def test_a_rerun_fires_the_same_events(fresh_runs):
    for seed in SEEDS:
        bus = EventBus(keep_history=True)
        again = await runner(bus).run_async(SCENARIO, max_turns=TURNS, seed=seed, run_id="another-id")
        assert fired(again) == fired(fresh_runs[seed])
        assert announced(bus) == {t: e for t, e in fired(again).items() if e}


@pytest.mark.parametrize("pause_after", [
    {"turn": 3, "phase": "validation"},    # between turns
    {"turn": 4, "phase": "decision"},      # mid-turn, before the world update chooses turn 4's events
    {"turn": 4, "phase": "world_update"},  # after it, before turn 4's metrics are measured
], ids=["between-turns", "before-world-update", "before-metrics"])
async def test_a_paused_and_resumed_run_fires_the_same_events(fresh_runs, pause_after):
    for seed in SEEDS:
        assert fired(await paused_then_resumed(seed, pause_after)) == fired(fresh_runs[seed])


@pytest.mark.parametrize("branch_turn", [0, 1, 3, 5])
async def test_a_branch_fires_the_same_events(fresh_runs, branch_turn):
    for seed in SEEDS:
        assert fired(await branched(fresh_runs[seed], branch_turn)) == fired(fresh_runs[seed])


def test_another_seed_gives_another_pattern(fresh_runs):
    one, other = (fired(fresh_runs[seed]) for seed in SEEDS)
    assert one != other
    random_kinds = {"trend", "random"}
    assert [[e for e in one[t] if e[0] in random_kinds] for t in one] != [[e for e in other[t] if e[0] in random_kinds] for t in other]
    # what does not depend on the seed does not change
    for kind in ("scheduled", "conditional"):
        assert {t: [e for e in one[t] if e[0] == kind] for t in one} == {t: [e for e in other[t] if e[0] == kind] for t in other}


def test_scheduled_and_conditional_events_fire_where_they_should(fresh_runs):
    events = fired(fresh_runs[SEEDS[0]])
    assert [t for t in events if ("scheduled", "Budget vote") in events[t]] == [2, 6]
    # lake level 36 after turn 3 (< 40): the emergency session shapes turn 4, once; 28 after turn 4 (< 35):
    # rationing shapes turns 5 to 8, every turn, as it may repeat
    assert [t for t in events if ("conditional", "Emergency session") in events[t]] == [4]
    assert [t for t in events if ("conditional", "Rationing") in events[t]] == [5, 6, 7, 8]
    assert [m.value for m in fresh_runs[SEEDS[0]].metrics if m.name == "lake_level"] == list(map(float, LEVELS.values()))


def test_a_repeatable_random_event_fires_again(fresh_runs):
    assert any(sum(("random", "Heatwave") in e for e in fired(run).values()) > 1 for run in fresh_runs.values())


ONCE = [("random", "Dam leak"), ("random", "Inspection"), ("conditional", "Emergency session")]


def times(state: ScenarioState, event: tuple[str, str]) -> list[int]:
    return [turn for turn, events in fired(state).items() if event in events]


async def test_once_events_fire_at_most_once_across_resume_and_branch(fresh_runs):
    for seed in SEEDS:
        parent = fresh_runs[seed]
        assert times(parent, ("random", "Inspection")) == [2]
        for state in (
            parent,
            await paused_then_resumed(seed, {"turn": 3, "phase": "validation"}),
            await branched(parent, 3),
            await branched(parent, 4, seed=seed + 1000),  # a branch with another seed remembers them too
        ):
            for event in ONCE:
                assert len(times(state, event)) <= 1, (seed, event, fired(state))
            assert times(state, ("random", "Inspection")) == [2]
            assert times(state, ("conditional", "Emergency session")) == [4]
