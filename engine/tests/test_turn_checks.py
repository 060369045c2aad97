"""A turn's QA checks play alongside the next turn's talks, and still stop the run before its decisions."""

from __future__ import annotations

from engine.events import EventBus, EventType
from engine.llm.offline import OfflineProvider
from engine.phases.tests.conftest import ScriptedProvider, build_scenario
from engine.sdk import Runner
from engine.state import ScenarioState, ScenarioStatus

RULES = {
    "validation_model": "test/qa-model",
    "severity_thresholds": {"high": "halt"},
    "checks": {
        "actor_consistency": {"severity": "medium", "description": "Decisions fit the actor's goals."},
        "world_coherence": {"severity": "low", "description": "The new world follows from the last."},
    },
}
PASS = {"passed": True, "severity": "low", "issues": [], "explanation": "Fine."}
FAIL_HIGH = {"passed": False, "severity": "high", "issues": ["The world ignores the drought."], "explanation": "Gap."}


def provider(scenario, *, world_check_on_turn_1=PASS) -> ScriptedProvider:
    def world_check(request):
        return world_check_on_turn_1 if request.purpose.turn == 1 else PASS

    return ScriptedProvider({("validation", None): world_check, "validation": PASS}, fallback=OfflineProvider(scenario))


def order(bus: EventBus) -> list[tuple[str, int, str]]:
    """(event, turn, phase) of the turn and phase events, in the order announced."""
    kinds = {EventType.TURN_STARTED, EventType.TURN_COMPLETED, EventType.PHASE_STARTED, EventType.PHASE_COMPLETED}
    return [(e.type.value, e.data["turn"], e.data.get("phase", "")) for e in bus.get_history() if e.type in kinds]


async def test_a_turns_checks_run_beside_the_next_turns_talks_and_before_its_decisions():
    scenario = build_scenario(validation=RULES)
    bus = EventBus(keep_history=True)
    scripted = provider(scenario)
    state = await Runner(provider=scripted, bus=bus).run_async(scenario, max_turns=3)

    assert state.status is ScenarioStatus.COMPLETED
    assert [v.turn for v in state.validations] == [1] * 4 + [2] * 4 + [3] * 4  # every turn checked, in order
    seen = order(bus)
    # Turn 1 ends without its checks; they start as turn 2 does and end before turn 2's decisions start.
    assert seen.index(("turn_completed", 1, "")) < seen.index(("phase_started", 1, "validation"))
    assert seen.index(("turn_started", 2, "")) < seen.index(("phase_started", 1, "validation"))
    assert seen.index(("phase_completed", 1, "validation")) < seen.index(("phase_started", 2, "decision"))
    # The last turn has no next turn: its checks are part of it.
    assert seen.index(("phase_completed", 3, "validation")) < seen.index(("turn_completed", 3, ""))
    # They were asked while turn 2's talks were: between turn 2's first and last outreach call.
    tasks = [(r.purpose.task, r.purpose.turn) for r in scripted.requests]
    first_check = tasks.index(("validation", 1))
    assert tasks.index(("outreach", 2)) < tasks.index(("decision", 2))
    assert first_check < tasks.index(("decision", 2)) and first_check > tasks.index(("decision", 1))


async def test_a_halting_finding_stops_the_run_before_the_next_turns_decisions_and_it_resumes():
    scenario = build_scenario(validation=RULES)
    halted = await Runner(provider=provider(scenario, world_check_on_turn_1=FAIL_HIGH)).run_async(scenario, max_turns=3)

    assert halted.status is ScenarioStatus.HALTED and "world_coherence" in halted.halt_reason
    assert halted.turn == 1 and halted.decisions_in(2) == {}  # no decision of turn 2 was made
    assert len(halted.validations_in(1)) == 4  # every check of turn 1 kept, the failing one too
    assert halted.communications_in(2), "turn 2's talks, played beside the checks, are kept"

    stored = ScenarioState.from_dict(halted.to_dict())  # as another process reads it back
    again = provider(scenario)
    resumed = await Runner(provider=again).run_async(scenario, max_turns=3, state=stored)
    assert resumed.status is ScenarioStatus.COMPLETED and resumed.turn == 3
    assert not [r for r in again.requests if r.purpose.task == "validation" and r.purpose.turn == 1], "not asked twice"
    assert not [r for r in again.requests if r.purpose.task == "outreach" and r.purpose.turn == 2], "talks not replayed"
    assert [v.turn for v in resumed.validations] == [1] * 4 + [2] * 4 + [3] * 4


async def test_a_run_paused_between_turns_asks_the_pending_checks_when_it_resumes():
    scenario = build_scenario(validation=RULES)
    runner = Runner(provider=provider(scenario))

    @runner.on(EventType.TURN_COMPLETED)
    def pause(event):
        if event.data["turn"] == 1:
            runner.pause()

    paused = await runner.run_async(scenario, max_turns=2)
    assert paused.status is ScenarioStatus.PAUSED and paused.turn == 1 and paused.validations_in(1) == ()

    again = provider(scenario)
    resumed = await Runner(provider=again).run_async(scenario, max_turns=2, state=ScenarioState.from_dict(paused.to_dict()))
    assert resumed.status is ScenarioStatus.COMPLETED
    assert len([r for r in again.requests if r.purpose.task == "validation" and r.purpose.turn == 1]) == 4
    assert len(resumed.validations_in(1)) == len(resumed.validations_in(2)) == 4


async def test_one_turn_at_a_time_checks_each_turn_within_it():
    from engine.orchestrator import ScenarioOrchestrator, standard_phases
    from engine.sdk import initial_state

    scenario = build_scenario(validation=RULES)
    orchestrator = ScenarioOrchestrator(scenario=scenario, provider=provider(scenario), phases=standard_phases(), max_turns=3)
    state = await orchestrator.execute_turn(initial_state(scenario))
    assert state.turn == 1 and len(state.validations_in(1)) == 4


async def test_checks_stopped_at_once_keep_the_results_recorded_before_them():
    from engine.state import ValidationResult

    scenario = build_scenario(validation=RULES)
    runner = Runner(provider=provider(scenario))

    @runner.on(EventType.TURN_COMPLETED)
    def pause(event):
        runner.pause()

    paused = await runner.run_async(scenario, max_turns=2)
    assert paused.turn == 1 and paused.validations_in(1) == ()
    kept = ValidationResult(turn=1, check="world_coherence", passed=True, severity="low")
    again = Runner(provider=provider(scenario))

    @again.on(EventType.PHASE_STARTED)
    def cancel(event):
        if event.data["phase"] == "validation":
            again.orchestrator.request_cancel()

    state = await again.run_async(scenario, max_turns=2, state=paused.with_validation(kept))
    assert state.status is ScenarioStatus.CANCELLED
    assert kept in state.validations_in(1), "the result recorded before the resume is still there"


async def test_a_halting_finding_is_taken_even_when_the_turn_stops_for_another_reason():
    from engine.llm.provider import LLMError

    scenario = build_scenario(validation=RULES)

    def outreach(request):
        if request.purpose.turn == 2:
            raise LLMError("the server is down")
        return {"messages": []}

    scripted = provider(scenario, world_check_on_turn_1=FAIL_HIGH)
    scripted.answers["outreach"] = outreach
    state = await Runner(provider=scripted).run_async(scenario, max_turns=3)
    # Turn 2's talks fail (a pause for provider trouble) while turn 1's checks find what halts the run:
    # the halt is taken, since a resume would find every check answered and never ask again.
    assert state.status is ScenarioStatus.HALTED and "world_coherence" in state.halt_reason
    assert state.turn == 1 and len(state.validations_in(1)) == 4
