"""How runs end and come back: outside cancellation, crashes, cancels at awkward moments, halts that
must survive retries, and resumes that must equal uninterrupted runs."""

import asyncio
import dataclasses
import threading
import time

import pytest

from engine import ErrorPolicy, EventBus, EventType, FilesystemPersistence, Runner, ScenarioStatus
from engine.scenario.metrics import MetricDefinition, MetricExtraction, MetricsConfig, MetricThresholds
from engine.state import PhaseType, ScenarioState
from engine.tests.conftest import NO_WAIT, as_json
from engine.testing.providers import FailingProvider, FixedCostProvider, SleepingProvider



def _with_phase(make, phase):
    def orchestrator_for(*args, **kwargs):
        orchestrator = make(*args, **kwargs)
        orchestrator.phases = [phase]
        return orchestrator

    return orchestrator_for


def fail_first(task: str, *, turn: int | None = None):
    failed = []

    def fails(request, n):
        p = request.purpose
        if p.task == task and (turn is None or p.turn == turn) and not failed:
            failed.append(n)
            return True
        return False

    return fails


class CountingSleeper(FixedCostProvider):
    """A priced provider whose calls take a while, so a run can be cancelled while calls are in flight."""

    def __init__(self, scenario, *, latency: float):
        super().__init__(scenario, cost_per_call=0.001)
        self.latency = latency

    async def complete(self, request):
        await asyncio.sleep(self.latency)
        return await super().complete(request)


async def test_an_outside_cancellation_saves_a_resumable_state_with_every_paid_call(summit, tmp_path):
    provider = CountingSleeper(summit, latency=0.005)
    runner = Runner(provider=provider, persistence=FilesystemPersistence(tmp_path))
    run = asyncio.create_task(runner.run_async(summit, max_turns=3, run_id="cut"))
    while provider.calls < 40:
        await asyncio.sleep(0.005)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    stored = await FilesystemPersistence(tmp_path).load("cut")
    assert stored.status is ScenarioStatus.PAUSED and "interrupted" in stored.halt_reason
    assert len(stored.costs) == provider.calls, "every paid call is in the ledger"
    paid_before = provider.calls
    resumed = await Runner(provider=provider).run_async(summit, max_turns=3, state=stored)
    straight = await Runner(provider=FixedCostProvider(summit, cost_per_call=0.001)).run_async(summit, max_turns=3, run_id="cut")
    assert resumed.status is ScenarioStatus.COMPLETED
    assert len(resumed.costs) == provider.calls and provider.calls - paid_before <= len(straight.costs) - len(stored.costs) + 5
    assert as_json(resumed)["decisions"] == as_json(straight)["decisions"]


async def test_a_state_left_running_by_a_crash_can_be_resumed(summit):
    done = await Runner().run_async(summit, max_turns=1, run_id="crashed")
    crashed = dataclasses.replace(done, status=ScenarioStatus.RUNNING)  # what a killed process leaves on disk
    bus = EventBus(keep_history=True)
    state = await Runner(bus=bus).run_async(summit, max_turns=2, state=crashed)
    assert state.status is ScenarioStatus.COMPLETED and state.turn == 2
    assert bus.get_history()[0].type is EventType.SCENARIO_RESUMED


async def test_a_cancel_asked_for_when_a_phase_starts_pays_for_nothing_in_it(summit):
    provider = FixedCostProvider(summit, cost_per_call=0.01)
    runner = Runner(provider=provider)

    @runner.on(EventType.PHASE_STARTED)
    def cancel_at_decisions(event):
        if event.data["phase"] == "decision":
            runner.cancel()

    state = await runner.run_async(summit, max_turns=1)
    assert state.status is ScenarioStatus.CANCELLED
    assert state.decisions == () and {c.phase.value for c in state.costs} == {"communication"}
    assert provider.calls == len(state.costs)


async def test_a_cancel_during_the_retry_wait_stops_at_once(summit):
    bus = EventBus(keep_history=True)
    runner = Runner(bus=bus, error_policy=ErrorPolicy(max_attempts=3, retry_delay=30),
                    provider=FailingProvider(summit, fails=lambda r, n: r.purpose.task == "world_update"))

    @runner.on(EventType.PHASE_FAILED)
    def cancel(event):
        runner.cancel()

    started = time.perf_counter()
    state = await asyncio.wait_for(runner.run_async(summit, max_turns=1), timeout=10)
    assert state.status is ScenarioStatus.CANCELLED
    assert time.perf_counter() - started < 5
    assert len(bus.get_history(EventType.PHASE_FAILED)) == 1, "no second attempt was made"


async def test_a_cancel_from_another_thread_is_honoured(summit):
    runner = Runner(provider=SleepingProvider(summit, latency=30))
    result: list[ScenarioState] = []
    worker = threading.Thread(target=lambda: result.append(runner.run(summit, max_turns=1)))
    worker.start()
    await asyncio.sleep(0.3)
    runner.cancel()
    await asyncio.to_thread(worker.join, 10)
    assert result and result[0].status is ScenarioStatus.CANCELLED


async def test_a_pause_during_the_last_failing_attempt_keeps_the_failure(summit):
    class Broken:
        name = PhaseType.METRICS

        async def run(self, state, ctx):
            raise RuntimeError("a bug")

    runner = Runner(error_policy=NO_WAIT)
    runner.orchestrator_for = _with_phase(runner.orchestrator_for, Broken())

    @runner.on(EventType.PHASE_FAILED)
    def pause(event):
        if event.data["attempt"] == 2:
            runner.pause()

    state = await runner.run_async(summit, max_turns=1)
    assert state.status is ScenarioStatus.FAILED and "a bug" in state.error


async def test_a_pause_at_a_turn_boundary_does_not_start_the_turn_twice(summit):
    bus = EventBus(keep_history=True)
    runner = Runner(bus=bus)

    @runner.on(EventType.TURN_COMPLETED)
    def pause(event):
        if event.data["turn"] == 1:
            runner.pause()

    paused = await runner.run_async(summit, max_turns=2)
    await Runner(bus=bus).run_async(summit, max_turns=2, state=paused)
    assert [e.data["turn"] for e in bus.get_history(EventType.TURN_STARTED)] == [1, 2]


async def test_a_retried_phase_ends_with_the_same_records_as_an_uninterrupted_one(summit):
    never = FailingProvider(summit, fails=lambda request, n: False)  # same provider label, no failure
    straight = await Runner(provider=never).run_async(summit, max_turns=2, run_id="same")
    for task in ("outreach", "reply", "decision", "validation"):
        retried = await Runner(error_policy=NO_WAIT, provider=FailingProvider(summit, fails=fail_first(task, turn=1))).run_async(
            summit, max_turns=2, run_id="same"
        )
        assert retried.status is ScenarioStatus.COMPLETED
        for records in ("communications", "decisions", "metrics", "validations"):
            assert as_json(retried)[records] == as_json(straight)[records], f"{records} after a failed {task}"


async def test_a_metric_halt_survives_a_retry_of_its_phase(summit):
    critical = MetricDefinition(
        name="always_critical",
        extraction=MetricExtraction(type="keyword", keywords=["the"]),
        thresholds=MetricThresholds(critical=1, halt_on_critical=True),
    )
    metrics = MetricsConfig(metrics=[*summit.metric_definitions, critical])
    scenario = summit.model_copy(update={"metrics": metrics})
    state = await Runner(error_policy=NO_WAIT, provider=FailingProvider(scenario, fails=fail_first("metric"))).run_async(
        scenario, max_turns=3
    )
    assert state.status is ScenarioStatus.HALTED and state.turn == 0
    assert "always_critical" in state.halt_reason


async def test_a_failing_save_fails_the_run_and_returns_its_state(summit):
    class BrokenDisk:
        async def save(self, state):
            raise OSError("disk full")

        async def load(self, run_id):
            return None

    state = await Runner(persistence=BrokenDisk()).run_async(summit, max_turns=2)
    assert state.status is ScenarioStatus.FAILED and "disk full" in state.error
    assert state.turn == 1


async def test_the_limit_is_not_lost_to_float_rounding(summit):
    provider = FixedCostProvider(summit, cost_per_call=0.1)
    state = await Runner(provider=provider).run_async(summit, max_turns=1, credit_limit=0.3)
    assert state.status is ScenarioStatus.HALTED and len(state.costs) == 3


@pytest.mark.parametrize("limit", [float("inf"), float("nan"), 0, -1])
async def test_a_nonsense_credit_limit_is_refused(summit, limit):
    with pytest.raises(ValueError, match="credit limit"):
        await Runner().run_async(summit, credit_limit=limit)


async def test_resuming_with_another_scenario_is_refused(summit):
    state = await Runner().run_async(summit, max_turns=1)
    smaller = summit.model_copy(update={"actors": summit.actors[:3]})
    with pytest.raises(ValueError, match="actors"):
        await Runner().run_async(smaller, max_turns=2, state=state)


@pytest.mark.parametrize("phase, left_midway", [("communication", True), ("decision", True), ("world_update", False)])
async def test_a_pause_between_calls_stops_once_the_calls_in_flight_are_booked(summit, phase, left_midway):
    """What a stopping worker asks for: no new call starts, the calls already sent are answered and booked, and the
    phase in flight is left mid-way. The provider was paid exactly for the ledger; the resumed run pays for nothing
    twice and ends where an uninterrupted one does."""
    from engine.orchestrator import ScenarioOrchestrator, standard_phases

    class Slow:
        """Priced calls that take a while, so several are in flight at once; counts what it was paid for."""

        name = "slow"

        def __init__(self) -> None:
            self.inner = FixedCostProvider(summit, cost_per_call=0.01)
            self.started = 0
            self.on_call = None

        def max_cost(self, request):
            return 0.01

        async def complete(self, request):
            self.started += 1
            if self.on_call is not None:
                self.on_call(request)
            await asyncio.sleep(0.02)
            return dataclasses.replace(await self.inner.complete(request), provider=self.name)

    straight_provider = Slow()
    straight = await Runner(provider=straight_provider).run_async(summit, max_turns=2, run_id="same")
    provider = Slow()
    orchestrator = ScenarioOrchestrator(scenario=summit, provider=provider, max_turns=2, phases=standard_phases())

    def stop_in_turn_two(request):
        if request.purpose.turn == 2 and request.purpose.phase == phase:
            orchestrator.request_pause(reason="the worker is stopping", between_calls=True)

    provider.on_call = stop_in_turn_two
    from engine.sdk import initial_state

    paused = await orchestrator.execute(initial_state(summit, run_id="same"))
    assert paused.status is ScenarioStatus.PAUSED and paused.halt_reason == "the worker is stopping"
    assert paused.turn == 1, "paused mid-turn"
    # A phase of many calls is left mid-way; the world update's one call was in flight, so it finished.
    assert (PhaseType(phase) not in paused.completed_phases) is left_midway
    assert provider.started == provider.inner.calls == len(paused.costs), "every call sent was answered and booked"
    assert provider.started < len(straight.costs)
    resumed = await Runner(provider=provider).run_async(summit, max_turns=2, state=paused)
    assert resumed.status is ScenarioStatus.COMPLETED
    assert provider.started == straight_provider.started == len(resumed.costs), "nothing paid twice"
    assert as_json(resumed) == as_json(straight)
