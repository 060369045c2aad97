"""Every Python example of the V2 architecture document (../shared/seed/V2_ARCHITECTURE.md), as written there
with `scenario_lab` read as `engine` and `scenarios/ai-summit` as the bundled `scenarios/library/ai-summit`,
asserting what the document says it does. Where the document leaves a placeholder (`ScenarioState(...)`,
`with_some_change()`, "register phases with MockLLM") the test fills it in with the smallest real thing."""

import json
import logging
import os
from dataclasses import FrozenInstanceError, fields
from datetime import datetime
from pathlib import Path

import pytest

from engine import (
    ActorState,
    CostRecord,
    Decision,
    DecisionPhase,
    Event,
    EventBus,
    EventType,
    PhaseService,
    PhaseType,
    Runner,
    Scenario,
    ScenarioOrchestrator,
    ScenarioState,
    ScenarioStatus,
    WorldState,
    WorldUpdatePhase,
    get_event_bus,
    initial_state,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _from_the_project_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the document's paths are relative to the project


# ---- Core principles --------------------------------------------------------------------------------------
async def test_1_event_driven_example(capsys):
    bus = EventBus()

    @bus.on(EventType.TURN_COMPLETED)
    async def log_turn(event):
        print(f"Turn {event.data['turn']} cost: ${event.data['total_cost']:.2f}")

    await bus.emit(EventType.TURN_COMPLETED, data={"turn": 1, "total_cost": 0.15})
    assert capsys.readouterr().out == "Turn 1 cost: $0.15\n"


def test_2_immutable_state_example():
    state = ScenarioState(scenario_id="test", scenario_name="Test", run_id="run-001")

    new_state = state.with_turn(1)
    assert state.turn == 0
    assert new_state.turn == 1

    final_state = (
        state
        .with_turn(1)
        .with_world_state(WorldState(turn=1, content="Updated world"))
        .with_started()
    )
    assert final_state.world_state.content == "Updated world" and final_state.status is ScenarioStatus.RUNNING
    assert state.world_state.content == "" and state.status is ScenarioStatus.CREATED
    with pytest.raises(FrozenInstanceError):
        state.turn = 2  # type: ignore[misc]


async def test_3_a_custom_phase_service_is_a_phase():
    class CustomPhase:
        async def execute(self, state: ScenarioState) -> ScenarioState:
            # the document's `state.with_some_change()`
            return state.with_world_state(WorldState(turn=state.current_turn, content=f"after turn {state.current_turn}"))

    assert isinstance(CustomPhase(), PhaseService)
    orchestrator = ScenarioOrchestrator(max_turns=2)
    orchestrator.register_phase(PhaseType.WORLD_UPDATE, CustomPhase())
    final = await orchestrator.execute(ScenarioState(scenario_id="custom", scenario_name="Custom", run_id="run-001"))
    assert final.status is ScenarioStatus.COMPLETED and final.turn == 2
    assert [w.content for w in final.world_states] == ["", "after turn 1", "after turn 2"]


async def test_4_the_orchestrator_example_with_the_engine_phases(summit):
    bus = EventBus(keep_history=True)
    # The document's orchestrator runs a scenario's phases, which call models: it is given the scenario.
    orchestrator = ScenarioOrchestrator(scenario=summit, max_turns=2, credit_limit=5.0, event_bus=bus)
    orchestrator.register_phase(PhaseType.DECISION, DecisionPhase())
    orchestrator.register_phase(PhaseType.WORLD_UPDATE, WorldUpdatePhase())
    assert list(orchestrator.phases) == [PhaseType.DECISION, PhaseType.WORLD_UPDATE]

    final_state = await orchestrator.execute(initial_state(summit))
    assert final_state.status is ScenarioStatus.COMPLETED and final_state.turn == 2
    assert {d.actor for d in final_state.decisions} == {a.short_name for a in summit.actors}
    assert len(final_state.world_states) == 3 and final_state.communications == ()
    # "Executes phases in sequence, emits lifecycle events"
    phases = [(e.data["turn"], e.data["phase"]) for e in bus.get_history(EventType.PHASE_COMPLETED)]
    assert phases == [(1, "decision"), (1, "world_update"), (2, "decision"), (2, "world_update")]
    assert [e.type for e in bus.get_history()][0] is EventType.SCENARIO_STARTED
    assert bus.get_history()[-1].type is EventType.SCENARIO_COMPLETED


async def test_4_the_orchestrator_pauses_and_resumes():
    seen = []

    class Counting:
        async def execute(self, state):
            seen.append(state.current_turn)
            if state.current_turn == 2:
                orchestrator.pause()
            return state

    orchestrator = ScenarioOrchestrator(max_turns=4)
    orchestrator.register_phase(PhaseType.DECISION, Counting())
    paused = await orchestrator.execute(ScenarioState(scenario_id="p", scenario_name="P", run_id="run-p"))
    assert paused.status is ScenarioStatus.PAUSED and paused.turn == 2
    finished = await orchestrator.execute(paused)
    assert finished.status is ScenarioStatus.COMPLETED and seen == [1, 2, 3, 4]


# ---- Event system -----------------------------------------------------------------------------------------
def test_event_structure():
    assert [f.name for f in fields(Event)][:2] == ["type", "data"]
    assert {"timestamp", "source", "correlation_id"} <= {f.name for f in fields(Event)}
    event = Event(type="turn_completed", data={"turn": 1})
    assert event.type == "turn_completed" and event.type is EventType.TURN_COMPLETED and event.timestamp > 0
    for name in ("SCENARIO_STARTED", "SCENARIO_COMPLETED", "SCENARIO_FAILED", "SCENARIO_PAUSED", "SCENARIO_RESUMED",
                 "TURN_STARTED", "TURN_COMPLETED", "TURN_FAILED", "PHASE_STARTED", "PHASE_COMPLETED", "PHASE_FAILED",
                 "ACTOR_DECISION_STARTED", "ACTOR_DECISION_COMPLETED", "ACTOR_DECISION_FAILED", "COST_INCURRED",
                 "CREDIT_LIMIT_WARNING", "CREDIT_LIMIT_EXCEEDED", "METRIC_RECORDED"):
        assert EventType[name].value == name.lower()


async def test_event_handlers_example_on_the_process_bus(capsys, caplog):
    logger = logging.getLogger("scenario-lab-example")
    bus = get_event_bus()
    assert bus is get_event_bus()
    try:
        @bus.on(EventType.TURN_COMPLETED)
        async def handle_turn_complete(event):
            turn = event.data['turn']
            cost = event.data['total_cost']
            print(f"Turn {turn} completed, cost: ${cost:.2f}")

        @bus.on("*")
        async def log_all(event):
            logger.info(f"Event: {event.type}", extra=event.data)

        with caplog.at_level(logging.INFO, logger="scenario-lab-example"):
            await bus.emit(EventType.TURN_COMPLETED, data={"turn": 3, "total_cost": 1.5})
            await bus.emit("plugin_note", data={"note": "hello"})
        assert capsys.readouterr().out == "Turn 3 completed, cost: $1.50\n"
        assert [r.getMessage() for r in caplog.records] == ["Event: turn_completed", "Event: plugin_note"]
        assert caplog.records[1].note == "hello" and bus.get_errors() == []
    finally:
        bus.clear_handlers()


# ---- State models -----------------------------------------------------------------------------------------
def test_state_models_have_the_documented_fields():
    state = ScenarioState(scenario_id="s", scenario_name="S", run_id="r")
    for name in ("scenario_id", "scenario_name", "run_id", "status", "turn", "current_phase", "world_state", "actors",
                 "communications", "decisions", "metrics", "costs"):
        assert hasattr(state, name), name
    assert state.current_phase is None and isinstance(state.status, ScenarioStatus)

    world = WorldState(turn=1, content="# World")
    assert isinstance(world.timestamp, datetime) and world.metadata == {}

    actor = ActorState(name="Regulator", short_name="regulator", model="openai/gpt-4o-mini")
    assert (actor.current_goals, actor.recent_decisions, actor.private_information, actor.metadata) == ((), (), "", {})

    decision = Decision(actor="regulator", turn=1, goals=["Safety"], reasoning="r", action="a")
    assert decision.goals == ("Safety",) and decision.metadata == {} and decision.timestamp is None
    assert actor.with_decision(decision).current_goals == ("Safety",)

    moved = state.with_actor("regulator", actor).with_decision("regulator", decision)
    assert moved.decisions["regulator"] == decision and "regulator" in moved.decisions
    assert moved.with_cost(CostRecord(timestamp=datetime.now(), actor="regulator", phase="decision", model="m",
                                      input_tokens=1, output_tokens=1, cost=0.25)).total_cost() == 0.25


# ---- Cost management --------------------------------------------------------------------------------------
async def test_cost_management_example():
    bus = EventBus(keep_history=True)

    class Spending:
        async def execute(self, state):
            return state.with_cost(CostRecord(timestamp=datetime.now(), actor="regulator", phase="decision",
                                              model="openai/gpt-4o-mini", input_tokens=1000, output_tokens=200, cost=1.45))

    orchestrator = ScenarioOrchestrator(credit_limit=5.0, event_bus=bus)
    orchestrator.register_phase(PhaseType.DECISION, Spending())
    final = await orchestrator.execute(ScenarioState(scenario_id="c", scenario_name="C", run_id="run-c"))

    # "Credit limits enforced at orchestrator level": 4 turns reach $5.80, past the limit, and the run stops there.
    assert final.turn == 4 and final.total_cost == pytest.approx(5.80)
    assert final.status is ScenarioStatus.HALTED and "credit limit" in final.halt_reason
    assert [e.data["total_cost"] for e in bus.get_history(EventType.COST_INCURRED)] == pytest.approx([1.45, 2.9, 4.35, 5.8])
    [warning] = bus.get_history(EventType.CREDIT_LIMIT_WARNING)
    assert warning.data["spent"] == pytest.approx(4.35) and warning.data["limit"] == 5.0
    assert len(bus.get_history(EventType.CREDIT_LIMIT_EXCEEDED)) == 1
    assert final.cost_by_actor() == {"regulator": pytest.approx(5.80)} and {c.turn for c in final.costs} == {1, 2, 3, 4}

    # The document's own emits, on a bus of one's own.
    await bus.emit(EventType.COST_INCURRED, data={"actor": "regulator", "cost": 0.15, "total": 1.45})
    await bus.emit(EventType.CREDIT_LIMIT_WARNING, data={"remaining": 0.55, "limit": 5.0})
    assert bus.get_history()[-1].data == {"remaining": 0.55, "limit": 5.0} and bus.get_history()[-1].run_id == "default"


# ---- Testing strategy ---------------------------------------------------------------------------------------
async def test_unit_test_examples():
    bus = EventBus(keep_history=True)
    await bus.emit("test_event", data={"foo": "bar"})
    history = bus.get_history()
    assert len(history) == 1
    assert history[0].type == "test_event"

    state = ScenarioState(scenario_id="test", scenario_name="Test", run_id="run-001")
    new_state = state.with_turn(1)
    assert state.turn == 0
    assert new_state.turn == 1


async def test_integration_test_example_with_a_mock_llm():
    class MockLLM:
        async def generate(self, prompt: str, **kwargs) -> str:
            return '{"goals": ["Stay at the table"], "reasoning": "Talks are cheap.", "action": "Propose a pause."}'

    class MockDecisionPhase:
        def __init__(self, llm, actors):
            self.llm, self.actors = llm, actors

        async def execute(self, state):
            for actor in self.actors:
                answer = json.loads(await self.llm.generate(f"{actor}: turn {state.current_turn}"))
                state = state.with_decision(actor, Decision(actor=actor, turn=state.current_turn, **answer))
            return state

    orchestrator = ScenarioOrchestrator(max_turns=3)
    orchestrator.register_phase(PhaseType.DECISION, MockDecisionPhase(MockLLM(), ["north", "south"]))

    state = ScenarioState(scenario_id="mock", scenario_name="Mock", run_id="run-mock")
    final_state = await orchestrator.execute(state)

    assert final_state.turn == 3
    assert final_state.status == ScenarioStatus.COMPLETED
    assert len(final_state.decisions) == 6 and final_state.decisions["south"].turn == 3


# ---- API examples: the Python SDK -----------------------------------------------------------------------------
async def test_python_sdk_example(capsys):
    scenario = Scenario.load('scenarios/library/ai-summit')
    result = await Runner().run_async(scenario, max_turns=10, credit_limit=5.0)  # Runner().run() from outside a loop
    print(f"Completed in {result.turns} turns, cost ${result.total_cost:.2f}")
    assert capsys.readouterr().out == f"Completed in 10 turns, cost ${result.state.total_cost:.2f}\n"
    assert result.state.status is ScenarioStatus.COMPLETED

    runner = Runner()

    @runner.on('turn_complete')
    async def log_turn(event):
        print(f"Turn {event.data['turn']} done")

    result = await runner.run_async(scenario)
    assert capsys.readouterr().out == "".join(f"Turn {n} done\n" for n in range(1, scenario.config.turns + 1))
    assert result.turns == scenario.config.turns


def test_runner_run_is_synchronous_for_scripts():
    result = Runner().run(Scenario.load("scenarios/library/ai-summit"), max_turns=1, credit_limit=5.0)
    assert result.turns == 1 and result.total_cost() == result.total_cost and result.state is result


def test_runner_short_names_are_engine_events_only():
    runner = Runner()
    for short, full in [("turn_start", "turn_started"), ("scenario_complete", "scenario_completed"),
                        ("phase_fail", "phase_failed"), ("cost_incur", "cost_incurred"), ("*", "*")]:
        runner.on(short)(print)
        assert full in runner.bus.handlers
    with pytest.raises(ValueError, match="turn_completed"):
        runner.on("turn_compleet")


async def test_runner_phases_add_to_the_standard_turn(summit, tmp_path):
    class Exporter:
        async def execute(self, state):
            (tmp_path / f"turn-{state.current_turn}.md").write_text(state.world_state.content)
            return state

    result = await Runner(phases={PhaseType.PERSISTENCE: Exporter()}).run_async(summit, max_turns=2)
    assert sorted(os.listdir(tmp_path)) == ["turn-1.md", "turn-2.md"]
    assert (tmp_path / "turn-2.md").read_text() == result.world_state.content


def test_the_documents_modules_are_the_engines_under_their_names():
    """`scenario_lab.core.events`, `.models.state` and `.core.orchestrator` are these modules: what the original
    project's tests import from each is here."""
    import engine.events
    import engine.orchestrator
    import engine.state

    for module, names in [
        (engine.events, ["EventBus", "Event", "EventType"]),
        (engine.state, ["ScenarioState", "ScenarioStatus", "PhaseType", "WorldState", "ActorState", "Decision",
                        "Communication", "CostRecord", "MetricRecord"]),
        (engine.orchestrator, ["ScenarioOrchestrator", "PhaseService"]),
    ]:
        assert [name for name in names if not hasattr(module, name)] == [], module.__name__
