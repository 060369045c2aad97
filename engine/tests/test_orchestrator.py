import asyncio

import pytest

from engine import EventBus, EventType, FilesystemPersistence, Runner, ScenarioStatus
from engine.llm.offline import OfflineProvider
from engine.orchestrator import ScenarioOrchestrator, standard_phases
from engine.phases.base import PhaseContext
from engine.scenario.metrics import MetricDefinition, MetricsConfig
from engine.sdk import initial_state
from engine.seats import StateSeats
from engine.state import PhaseType, ScenarioState
from engine.tests.conftest import NO_WAIT, as_json
from engine.testing.providers import FailingProvider, FixedCostProvider, SleepingProvider



async def test_runs_to_max_turns(summit):
    bus = EventBus(keep_history=True)
    state = await Runner(bus=bus).run_async(summit, max_turns=2, run_id="r")
    assert state.status is ScenarioStatus.COMPLETED
    assert state.turn == 2
    assert [w.turn for w in state.world_states] == [0, 1, 2]
    assert set(state.decisions_in(2)) == {a.short_name for a in summit.actors}
    assert [e.data["turn"] for e in bus.get_history(EventType.TURN_COMPLETED)] == [1, 2]
    assert [e.type for e in bus.get_history()][0] is EventType.SCENARIO_STARTED
    assert bus.get_history()[-1].type is EventType.SCENARIO_COMPLETED
    seqs = [e.seq for e in bus.get_history()]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_every_record_of_an_offline_run_says_offline(summit):
    state = await Runner().run_async(summit, max_turns=1)
    assert state.providers == ("offline",)
    assert {d.provider for d in state.decisions} == {"offline"}
    assert all(c.cost == 0 for c in state.costs)


async def test_credit_limit_halts_before_the_call_that_could_pass_it(summit):
    bus = EventBus(keep_history=True)
    provider = FixedCostProvider(summit, cost_per_call=0.01)
    state = await Runner(provider=provider, bus=bus).run_async(summit, max_turns=3, credit_limit=0.255, run_id="r")
    assert state.status is ScenarioStatus.HALTED
    assert "credit limit" in state.halt_reason
    assert state.total_cost <= 0.255
    assert state.total_cost == pytest.approx(0.25)  # 25 calls fit; the 26th was refused
    assert provider.calls == len(state.costs) == 25
    assert len(bus.get_history(EventType.CREDIT_LIMIT_WARNING)) == 1
    assert bus.get_history(EventType.CREDIT_LIMIT_WARNING)[0].data["spent"] >= 0.8 * 0.255
    assert len(bus.get_history(EventType.CREDIT_LIMIT_EXCEEDED)) >= 1
    assert bus.get_history()[-1].type is EventType.SCENARIO_HALTED


async def test_a_halted_run_resumes_with_a_higher_limit_to_the_same_end(summit):
    cheap = Runner(provider=FixedCostProvider(summit, cost_per_call=0.01))
    halted = await cheap.run_async(summit, max_turns=2, credit_limit=0.3, run_id="r")
    assert halted.status is ScenarioStatus.HALTED
    bus = EventBus(keep_history=True)
    resumed = await Runner(provider=FixedCostProvider(summit, cost_per_call=0.01), bus=bus).run_async(
        summit, max_turns=2, credit_limit=10, state=halted
    )
    straight = await Runner(provider=FixedCostProvider(summit, cost_per_call=0.01)).run_async(summit, max_turns=2, credit_limit=10, run_id="r")
    assert resumed.status is ScenarioStatus.COMPLETED
    assert bus.get_history()[0].type is EventType.SCENARIO_RESUMED
    assert as_json(resumed) == as_json(straight), "no call repeated, none lost"


async def test_the_limit_holds_with_concurrent_calls(summit):
    """Five actors decide at once: reservations stop the batch from overshooting together."""
    provider = SleepingProvider(summit, latency=0.01)
    priced = FixedCostProvider(summit, cost_per_call=0.1)

    class SlowPriced:
        name = "slow-priced"

        def max_cost(self, request):
            return 0.1

        async def complete(self, request):
            await provider.complete(request)
            return await priced.complete(request)

    state = await Runner(provider=SlowPriced()).run_async(summit, max_turns=3, credit_limit=0.75)
    assert state.status is ScenarioStatus.HALTED
    assert state.total_cost <= 0.75 + 1e-9


async def test_pause_then_resume_reaches_the_same_final_state(summit):
    straight = await Runner().run_async(summit, max_turns=3, run_id="same")
    runner = Runner()

    @runner.on(EventType.PHASE_COMPLETED)
    def pause_mid_turn_two(event):
        if event.data == {"turn": 2, "phase": "decision"}:
            runner.pause()

    paused = await runner.run_async(summit, max_turns=3, run_id="same")
    assert paused.status is ScenarioStatus.PAUSED
    assert paused.turn == 1 and PhaseType.DECISION in paused.completed_phases
    resumed = await Runner().run_async(summit, max_turns=3, state=paused)
    assert resumed.status is ScenarioStatus.COMPLETED
    assert as_json(resumed) == as_json(straight)


def first_call_of(task: str):
    """A failure predicate that fails only the first call made for `task`."""
    failed = []

    def fails(request, n):
        if request.purpose.task == task and not failed:
            failed.append(n)
            return True
        return False

    return fails


async def test_a_phase_that_fails_once_is_retried(summit):
    bus = EventBus(keep_history=True)
    provider = FailingProvider(summit, fails=first_call_of("world_update"))
    state = await Runner(provider=provider, bus=bus, error_policy=NO_WAIT).run_async(summit, max_turns=1)
    failures = bus.get_history(EventType.PHASE_FAILED)
    assert state.status is ScenarioStatus.COMPLETED
    assert [(e.data["phase"], e.data["attempt"]) for e in failures] == [("world_update", 1)]


async def test_a_provider_that_keeps_failing_pauses_the_run_with_the_reason(summit):
    bus = EventBus(keep_history=True)
    provider = FailingProvider(summit, fails=lambda request, n: request.purpose.task == "world_update" and request.purpose.turn == 2)
    state = await Runner(provider=provider, bus=bus, error_policy=NO_WAIT).run_async(summit, max_turns=3)
    assert state.status is ScenarioStatus.PAUSED
    assert "world_update" in state.halt_reason and "simulated outage" in state.halt_reason
    assert state.turn == 1, "turn 1 is kept"
    assert PhaseType.DECISION in state.completed_phases, "turn 2's decisions are kept for the resume"
    assert len(bus.get_history(EventType.PHASE_FAILED)) == 2
    assert len(bus.get_history(EventType.TURN_FAILED)) == 1
    assert bus.get_history()[-1].type is EventType.SCENARIO_PAUSED
    recovered = await Runner(error_policy=NO_WAIT).run_async(summit, max_turns=3, state=state)
    assert recovered.status is ScenarioStatus.COMPLETED and recovered.turn == 3


async def test_a_phase_with_a_bug_fails_the_run_and_keeps_the_last_good_state(summit):
    class Broken:
        name = PhaseType.METRICS

        async def run(self, state, ctx):
            if state.current_turn == 2:
                raise KeyError("no such metric")
            return state

    bus = EventBus(keep_history=True)
    orchestrator = ScenarioOrchestrator(scenario=summit, provider=OfflineProvider(summit), bus=bus, max_turns=3, error_policy=NO_WAIT)
    orchestrator.register_phase(Broken())
    state = await orchestrator.execute(initial_state(summit))
    assert state.status is ScenarioStatus.FAILED and "KeyError" in state.error and state.turn == 1
    assert bus.get_history()[-1].type is EventType.SCENARIO_FAILED


async def test_garbage_answers_fail_the_decision_with_an_event(summit):
    bus = EventBus(keep_history=True)
    provider = FailingProvider(summit, fails=lambda request, n: request.purpose.task == "decision", garbage="I refuse to answer in JSON.")
    state = await Runner(provider=provider, bus=bus, error_policy=NO_WAIT).run_async(summit, max_turns=1)
    assert state.status is ScenarioStatus.PAUSED and "decision" in state.halt_reason
    assert provider.calls >= 2 * 3 * len(summit.actors), "each attempt asked each actor three times (two re-asks)"
    failed = bus.get_history(EventType.ACTOR_DECISION_FAILED)
    assert {e.data["actor"] for e in failed} == {a.short_name for a in summit.actors}
    assert "JSON object" in failed[0].data["error"] or "schema" in failed[0].data["error"]


async def test_cancel_stops_a_phase_in_flight(summit):
    runner = Runner(provider=SleepingProvider(summit, latency=30))
    run = asyncio.create_task(runner.run_async(summit, max_turns=2))
    await asyncio.sleep(0.2)  # the first outreach calls are now sleeping
    runner.cancel()
    state = await asyncio.wait_for(run, timeout=5)
    assert state.status is ScenarioStatus.CANCELLED
    assert state.communications == () and state.costs == ()
    with pytest.raises(ValueError, match="cancelled"):
        await Runner().run_async(summit, state=state)


async def test_a_custom_phase_is_registered_and_run_in_order(summit):
    order = []

    class Recorder:
        def __init__(self, name):
            self.name = name

        async def run(self, state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
            order.append((state.current_turn, self.name.value))
            return state

    orchestrator = ScenarioOrchestrator(scenario=summit, provider=OfflineProvider(summit), max_turns=2)
    orchestrator.register_phase(Recorder(PhaseType.DECISION))
    orchestrator.register_phase(Recorder(PhaseType.METRICS))
    state = await orchestrator.execute(initial_state(summit))
    assert state.status is ScenarioStatus.COMPLETED
    assert order == [(1, "decision"), (1, "metrics"), (2, "decision"), (2, "metrics")]


async def test_persistence_saves_every_turn_and_the_end(summit, tmp_path):
    bus = EventBus(keep_history=True)
    persistence = FilesystemPersistence(tmp_path)
    state = await Runner(bus=bus, persistence=persistence).run_async(summit, max_turns=2, run_id="saved")
    saves = bus.get_history(EventType.STATE_SAVED)
    assert [(e.data["turn"], e.data["status"]) for e in saves] == [(1, "running"), (2, "running"), (2, "completed")]
    assert await persistence.load("saved") == state
    folder = tmp_path / "saved"
    assert (folder / "world-state-002.md").read_text().startswith("# World State - Turn 2")
    assert (folder / "norvale-001.md").exists() and (folder / "summary.md").exists()
    assert "offline provider" in (folder / "summary.md").read_text()


async def test_every_event_type_is_emitted_by_the_engine(summit, tmp_path):
    seen: set[EventType] = set()

    def runner_with(**options) -> Runner:
        runner = Runner(error_policy=NO_WAIT, **options)
        runner.bus.on("*", lambda e: seen.add(e.type))
        return runner

    persisted = runner_with(persistence=FilesystemPersistence(tmp_path))
    persisted.bus.on(EventType.TURN_STARTED, lambda e: 1 / 0)  # a broken subscriber
    pausing = persisted

    @pausing.on(EventType.TURN_COMPLETED)
    def pause(event):
        pausing.pause()

    paused = await pausing.run_async(summit, max_turns=3)
    await runner_with(trace_calls=True).run_async(summit, max_turns=3, state=paused)
    await runner_with(provider=FixedCostProvider(summit, cost_per_call=0.01)).run_async(summit, max_turns=2, credit_limit=0.1)
    failing = FailingProvider(summit, fails=lambda r, n: r.purpose.task == "decision", garbage="nope")
    await runner_with(provider=failing).run_async(summit, max_turns=1)
    canceller = runner_with()
    canceller.bus.on(EventType.PHASE_STARTED, lambda e: canceller.cancel())
    await canceller.run_async(summit, max_turns=1)

    class TakesASeat(StateSeats):  # a person takes the first seat: announced, then the run waits for them
        async def control(self, state, actor):
            return "human" if actor == summit.actors[0].short_name else state.actor(actor).control

    await runner_with(seats=TakesASeat()).run_async(summit, max_turns=1)
    talk = MetricDefinition(name="talk", extraction={"type": "keyword", "keywords": ["the"]}, thresholds={"warning": 0})
    await runner_with().run_async(summit.model_copy(update={"metrics": MetricsConfig(metrics=[talk])}), max_turns=1)

    class Broken:
        name = PhaseType.METRICS

        async def run(self, state, ctx):
            raise RuntimeError("a bug")

    bus = EventBus()
    bus.on("*", lambda e: seen.add(e.type))
    buggy = ScenarioOrchestrator(scenario=summit, provider=OfflineProvider(summit), bus=bus, max_turns=1, error_policy=NO_WAIT)
    buggy.register_phase(Broken())
    await buggy.execute(initial_state(summit))
    assert set(EventType) - seen == set()


def test_standard_phases_run_in_the_documented_order():
    assert [p.name for p in standard_phases()] == [
        PhaseType.SUMMARY,
        PhaseType.COMMUNICATION,
        PhaseType.DECISION,
        PhaseType.WORLD_UPDATE,
        PhaseType.METRICS,
        PhaseType.VALIDATION,
    ]


# ---- phase services: the V2 document's form --------------------------------------------------------------------
def bare_state() -> ScenarioState:
    return ScenarioState(scenario_id="bare", scenario_name="Bare", run_id="run-bare")


def test_register_phase_refuses_what_is_no_phase():
    orchestrator = ScenarioOrchestrator()
    with pytest.raises(TypeError, match="no phase"):
        orchestrator.register_phase(PhaseType.DECISION, object())
    with pytest.raises(ValueError, match="PhaseType"):
        orchestrator.register_phase(object())
    with pytest.raises(ValueError):
        orchestrator.register_phase("not-a-phase-type", Counting())
    assert orchestrator.phases == {}


class Counting:
    def __init__(self):
        self.turns = []

    async def execute(self, state):
        self.turns.append(state.current_turn)
        return state


async def test_a_service_registered_again_replaces_the_first_and_phases_run_in_type_order():
    orchestrator = ScenarioOrchestrator(max_turns=1)
    first, second, talks = Counting(), Counting(), Counting()
    orchestrator.register_phase(PhaseType.WORLD_UPDATE, first)
    orchestrator.register_phase(PhaseType.COMMUNICATION, talks)
    orchestrator.register_phase(PhaseType.WORLD_UPDATE, second)
    assert list(orchestrator.phases) == [PhaseType.COMMUNICATION, PhaseType.WORLD_UPDATE]
    assert (await orchestrator.execute(bare_state())).status is ScenarioStatus.COMPLETED
    assert (first.turns, second.turns, talks.turns) == ([], [1], [1])


async def test_a_phase_that_drops_ledger_lines_fails_the_run_and_the_ledger_keeps_them():
    from engine.state import CostRecord

    class Booking:
        async def execute(self, state):
            return state.with_cost(CostRecord(phase="decision", actor="a", cost=0.1))

    class Forgetting:
        async def execute(self, state):
            from dataclasses import replace

            return replace(state, costs=())

    orchestrator = ScenarioOrchestrator(max_turns=2, error_policy=NO_WAIT)
    orchestrator.register_phase(PhaseType.DECISION, Booking())
    orchestrator.register_phase(PhaseType.METRICS, Forgetting())
    state = await orchestrator.execute(bare_state())
    assert state.status is ScenarioStatus.FAILED and "never change or drop" in state.error
    assert [(c.turn, c.cost) for c in state.costs] == [(1, 0.1)] and state.costs[0].timestamp is not None


async def test_execute_turn_plays_one_turn_and_refuses_a_run_that_is_over():
    orchestrator = ScenarioOrchestrator(max_turns=1)
    counting = Counting()
    orchestrator.register_phase(PhaseType.DECISION, counting)
    after = await orchestrator.execute_turn(bare_state())
    assert after.turn == 1 and after.status is ScenarioStatus.RUNNING and after.current_phase is None
    assert counting.turns == [1]
    with pytest.raises(ValueError, match="played its 1 turns"):
        await orchestrator.execute_turn(after)


async def test_a_run_whose_spending_reaches_the_limit_halts_at_the_turns_end_and_resumes_with_a_higher_one(summit):
    bus = EventBus(keep_history=True)
    provider = FixedCostProvider(summit, cost_per_call=0.01)
    # What turn 1 of a longer run spends (its checks play alongside turn 2's talks, and are paid there).
    probe = EventBus(keep_history=True)
    await Runner(provider=FixedCostProvider(summit, cost_per_call=0.01), bus=probe).run_async(summit, max_turns=3)
    spent_in_a_turn = probe.get_history(EventType.TURN_COMPLETED)[0].data["total_cost"]
    halted = await Runner(provider=provider, bus=bus).run_async(summit, max_turns=3, credit_limit=spent_in_a_turn)
    assert halted.status is ScenarioStatus.HALTED and halted.turn == 1 and halted.completed_phases == ()
    assert halted.validations_in(1) == (), "turn 1's checks wait for turn 2"
    assert "by the end of turn 1" in halted.halt_reason and halted.total_cost == pytest.approx(spent_in_a_turn)
    [exceeded] = bus.get_history(EventType.CREDIT_LIMIT_EXCEEDED)
    assert exceeded.data["turn"] == 1 and not bus.get_history(EventType.TURN_STARTED)[1:], "turn 2 never began"
    resumed = await Runner(provider=FixedCostProvider(summit, cost_per_call=0.01)).run_async(summit, max_turns=3, credit_limit=1.0, state=halted)
    assert resumed.status is ScenarioStatus.COMPLETED and resumed.turn == 3
    assert {v.turn for v in resumed.validations} == {1, 2, 3}  # the resume asked turn 1's checks too


class Spending:
    """Books 0.6 a turn itself, as a phase with a price of its own would."""

    async def execute(self, state):
        from engine.state import CostRecord

        return state.with_cost(CostRecord(phase="decision", actor="a", cost=0.6))


async def test_a_run_halted_at_its_limit_and_resumed_without_more_room_plays_no_turn():
    def orchestrator():
        made = ScenarioOrchestrator(max_turns=5, credit_limit=1.0)
        made.register_phase(PhaseType.DECISION, Spending())
        return made

    halted = await orchestrator().execute(bare_state())
    assert halted.status is ScenarioStatus.HALTED and halted.turn == 2 and halted.total_cost == pytest.approx(1.2)
    again = await orchestrator().execute(halted)
    assert again.status is ScenarioStatus.HALTED and again.turn == 2 and again.total_cost == pytest.approx(1.2)
    assert "by the end of turn 2" in again.halt_reason


async def test_a_phase_that_calls_models_and_books_lines_itself_keeps_the_ledger_in_the_order_of_its_events(summit):
    from engine.phases.decision import DecisionPhase
    from engine.state import CostRecord

    class DecidingWithAFee(DecisionPhase):
        async def run(self, state, ctx):
            decided = await super().run(state, ctx)
            return decided.with_cost(CostRecord(phase="decision", actor=None, model="fee", cost=0.01))

    bus = EventBus(keep_history=True)
    orchestrator = ScenarioOrchestrator(scenario=summit, provider=FixedCostProvider(summit, cost_per_call=0.001),
                                        event_bus=bus, max_turns=1)
    orchestrator.register_phase(DecidingWithAFee())
    state = await orchestrator.execute(initial_state(summit))
    assert state.status is ScenarioStatus.COMPLETED
    announced = [(e.data["model"], e.data["cost"]) for e in bus.get_history(EventType.COST_INCURRED)]
    assert [(c.model, c.cost) for c in state.costs] == announced and announced[-1] == ("fee", 0.01)


async def test_execute_turn_returns_a_failed_state_as_execute_does():
    class Forgetting:
        async def execute(self, state):
            from dataclasses import replace

            return replace(state, costs=())

    orchestrator = ScenarioOrchestrator(max_turns=2)
    orchestrator.register_phase(PhaseType.DECISION, Spending())
    orchestrator.register_phase(PhaseType.METRICS, Forgetting())
    failed = await orchestrator.execute_turn(bare_state())
    assert failed.status is ScenarioStatus.FAILED and "never change or drop" in failed.error
    assert [c.cost for c in failed.costs] == [0.6]
