import asyncio
import json
import logging

import pytest

from engine.events import AfterDelivery, Event, EventBus, EventType, get_event_bus, thaw_json


async def test_handlers_for_a_type_and_wildcard_run_in_registration_order():
    bus = EventBus()
    seen: list[str] = []
    bus.on(EventType.TURN_STARTED, lambda e: seen.append("first"))
    bus.on("*", lambda e: seen.append(f"wild:{str(e.type)}"))

    @bus.on("turn_started")
    async def third(event: Event) -> None:
        seen.append("third")

    await bus.emit(EventType.TURN_STARTED, {"turn": 1}, run_id="r")
    await bus.emit(EventType.TURN_COMPLETED, {"turn": 1}, run_id="r")
    assert seen == ["first", "wild:turn_started", "third", "wild:turn_completed"]


async def test_off_removes_only_that_subscription():
    bus = EventBus()
    seen = []
    handler = seen.append
    bus.on(EventType.TURN_STARTED, handler)
    bus.on("*", handler)
    bus.off(EventType.TURN_STARTED, handler)
    await bus.emit(EventType.TURN_STARTED, {}, run_id="r")
    assert len(seen) == 1  # the wildcard subscription remains


async def test_seq_is_monotonic_per_run_and_resumable():
    bus = EventBus()
    a1 = await bus.emit(EventType.TURN_STARTED, {}, run_id="a")
    b1 = await bus.emit(EventType.TURN_STARTED, {}, run_id="b")
    a2 = await bus.emit(EventType.TURN_COMPLETED, {}, run_id="a")
    assert (a1.seq, b1.seq, a2.seq) == (1, 1, 2)
    bus.resume_sequence("c", 41)
    assert (await bus.emit(EventType.TURN_STARTED, {}, run_id="c")).seq == 42


async def test_history_is_kept_only_when_asked_and_filters_by_type():
    quiet, loud = EventBus(), EventBus(keep_history=True)
    for bus in (quiet, loud):
        await bus.emit(EventType.TURN_STARTED, {"turn": 1}, run_id="r")
        await bus.emit(EventType.TURN_COMPLETED, {"turn": 1}, run_id="r")
    assert quiet.get_history() == []
    assert [e.type for e in loud.get_history()] == [EventType.TURN_STARTED, EventType.TURN_COMPLETED]
    assert [e.seq for e in loud.get_history("turn_completed")] == [2]


async def test_a_failing_handler_is_isolated_and_reported(caplog):
    bus = EventBus(keep_history=True)
    after = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    bus.on(EventType.TURN_STARTED, broken)
    bus.on(EventType.TURN_STARTED, after.append)
    with caplog.at_level(logging.ERROR):
        await bus.emit(EventType.TURN_STARTED, {"turn": 1}, run_id="r")
    assert len(after) == 1, "the next handler still ran"
    failures = bus.get_history(EventType.HANDLER_FAILED)
    assert len(failures) == 1
    assert failures[0].data["event_type"] == "turn_started"
    assert "boom" in failures[0].data["error"]
    assert "broken" in caplog.text


async def test_a_failing_failure_handler_does_not_loop():
    bus = EventBus(keep_history=True)

    def always_broken(event: Event) -> None:
        raise ValueError("again")

    bus.on("*", always_broken)
    await bus.emit(EventType.TURN_STARTED, {}, run_id="r")
    assert [e.type for e in bus.get_history()] == [EventType.TURN_STARTED, EventType.HANDLER_FAILED]


async def test_event_data_must_be_json_and_is_frozen():
    bus = EventBus()
    with pytest.raises(TypeError, match=r"data\.when is a object, which is not JSON"):
        await bus.emit(EventType.TURN_STARTED, {"when": object()}, run_id="r")
    with pytest.raises(TypeError, match="NaN"):
        await bus.emit(EventType.TURN_STARTED, {"x": float("nan")}, run_id="r")
    event = await bus.emit(EventType.TURN_STARTED, {"nested": {"items": [1, 2]}}, run_id="r")
    with pytest.raises(TypeError):
        event.data["nested"]["new"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        event.seq = 5  # type: ignore[misc]
    assert json.loads(json.dumps(event.to_dict()))["data"] == {"nested": {"items": [1, 2]}}


async def test_event_round_trips_through_dict():
    event = await EventBus().emit(EventType.COST_INCURRED, {"cost": 0.5, "actor": None}, run_id="r", correlation_id="turn-1")
    again = Event.from_dict(json.loads(json.dumps(event.to_dict())))
    assert again == event
    assert thaw_json(again.data) == {"cost": 0.5, "actor": None}


async def test_a_custom_event_name_is_its_own_type_and_an_engine_name_is_the_enum():
    bus = EventBus(keep_history=True)
    seen = []
    bus.on("plugin_scored", seen.append)
    custom = await bus.emit("plugin_scored", {"score": 3})
    engine_event = await bus.emit("turn_completed", {"turn": 1})
    assert custom.type == "plugin_scored" and not isinstance(custom.type, EventType)
    assert engine_event.type is EventType.TURN_COMPLETED
    assert seen == [custom] and custom.run_id == engine_event.run_id == "default" and (custom.seq, engine_event.seq) == (1, 2)
    assert Event.from_dict(custom.to_dict()) == custom


@pytest.mark.parametrize("name", ["", "*", 7])
async def test_an_event_needs_a_name(name):
    with pytest.raises(ValueError):
        await EventBus().emit(name)


async def test_handler_failures_are_kept_for_get_errors_and_handlers_listed_by_name():
    bus = EventBus()

    def boom(event):
        raise KeyError("x")

    bus.on("tick", boom)
    bus.on("*", print)
    assert bus.handlers == {"tick": [boom], "*": [print]}
    await bus.emit("tick")
    [(event, error)] = bus.get_errors()
    assert event.type == "tick" and isinstance(error, KeyError)
    bus.clear_handlers("tick")
    assert bus.handlers == {"*": [print]}
    bus.clear_handlers()
    assert bus.handlers == {}


def test_get_event_bus_is_one_object():
    assert get_event_bus() is get_event_bus()


async def test_a_failure_report_reaches_later_subscribers_after_the_event_itself():
    bus = EventBus()
    seen = []

    def broken(event: Event) -> None:
        if event.type is EventType.TURN_STARTED:
            raise RuntimeError("boom")

    bus.on("*", broken)
    bus.on("*", lambda e: seen.append(e.seq))
    await bus.emit(EventType.TURN_STARTED, {}, run_id="r")
    assert seen == [1, 2]


async def test_concurrent_emitters_with_async_handlers_deliver_in_seq_order():
    import asyncio

    bus = EventBus()
    seen = []

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.001 * (event.data["i"] % 3))
        seen.append(event.seq)

    bus.on("*", slow)
    await asyncio.gather(*(bus.emit(EventType.COST_INCURRED, {"i": i}, run_id="r") for i in range(30)))
    assert seen == list(range(1, 31))


def test_a_bus_serves_several_event_loops():
    import asyncio

    bus = EventBus(keep_history=True)
    for _ in range(2):
        asyncio.run(bus.emit(EventType.TURN_STARTED, {}, run_id="r"))
    assert [e.seq for e in bus.get_history()] == [1, 2]


async def test_an_event_is_delivered_even_when_its_emitter_is_cancelled_while_waiting():
    bus = EventBus()
    seen: list[int] = []
    release = asyncio.Event()

    async def slow(event):
        if event.seq == 1:
            await release.wait()  # holds delivery, so the next emitters queue
        seen.append(event.seq)

    bus.on("*", slow)
    first = asyncio.create_task(bus.emit(EventType.TURN_STARTED, {"turn": 1}, run_id="r"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(bus.emit(EventType.COST_INCURRED, {"n": n}, run_id="r")) for n in range(3)]
    await asyncio.sleep(0)
    for task in waiting:
        task.cancel()  # as a cancelled phase cancels its actors' calls
    release.set()
    await first
    await asyncio.gather(*waiting, return_exceptions=True)
    await asyncio.sleep(0.01)

    assert seen == [1, 2, 3, 4], "numbered events are never lost, and keep their order"


async def test_after_delivery_makes_only_that_events_emitter_wait():
    """A handler that returns `AfterDelivery(x)` holds the emitter of that event until x is done, while the
    bus goes on: the other subscribers get the event at once, and a later event's emitter does not wait."""
    from engine.events import AfterDelivery

    bus = EventBus()
    committed = asyncio.get_running_loop().create_future()
    seen: list[int] = []
    bus.on("*", lambda e: AfterDelivery(committed) if e.type is EventType.COST_INCURRED else None)
    bus.on("*", lambda e: seen.append(e.seq))

    cost = asyncio.create_task(bus.emit(EventType.COST_INCURRED, {"cost": 0.1}, run_id="r"))
    progress = await asyncio.wait_for(bus.emit(EventType.TURN_STARTED, {"turn": 1}, run_id="r"), 1)
    assert progress.seq == 2 and seen == [1, 2]
    assert not cost.done(), "the cost event's emitter went on before what it must wait for was done"
    committed.set_result(None)
    assert (await asyncio.wait_for(cost, 1)).seq == 1


async def test_what_an_emitter_waits_for_failing_is_reported_like_a_failing_handler(caplog):
    from engine.events import AfterDelivery

    bus = EventBus(keep_history=True)

    async def refused() -> None:
        raise RuntimeError("commit refused")

    bus.on(EventType.COST_INCURRED, lambda e: AfterDelivery(refused()))
    with caplog.at_level(logging.ERROR):
        await bus.emit(EventType.COST_INCURRED, {"cost": 0.1}, run_id="r")
    failures = bus.get_history(EventType.HANDLER_FAILED)
    assert len(failures) == 1 and failures[0].data["event_seq"] == 1 and "commit refused" in failures[0].data["error"]


async def test_an_emitter_cancelled_while_it_waits_does_not_cancel_what_others_wait_for():
    from engine.events import AfterDelivery

    bus = EventBus()
    committed = asyncio.get_running_loop().create_future()
    bus.on(EventType.COST_INCURRED, lambda e: AfterDelivery(committed))
    first = asyncio.create_task(bus.emit(EventType.COST_INCURRED, {}, run_id="r"))
    second = asyncio.create_task(bus.emit(EventType.COST_INCURRED, {}, run_id="r"))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    assert not committed.cancelled()
    committed.set_result(None)
    assert (await asyncio.wait_for(second, 1)).seq == 2


async def test_an_async_handler_that_waits_is_finished_even_when_its_emitter_is_cancelled():
    bus = EventBus()
    seen: list[str] = []
    release = asyncio.Event()

    async def waits(event):
        seen.append(f"start {event.seq}")
        await release.wait()
        seen.append(f"end {event.seq}")

    async def after(event):
        seen.append(f"after {event.seq}")

    bus.on("*", waits)
    bus.on("*", after)
    emitter = asyncio.create_task(bus.emit("tick"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert seen == ["start 1"]
    emitter.cancel()
    queued = asyncio.create_task(bus.emit("tock"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(emitter, queued, return_exceptions=True)
    assert seen == ["start 1", "end 1", "after 1", "start 2", "end 2", "after 2"]


async def test_an_async_handler_failing_after_a_wait_is_reported_after_its_event(caplog):
    bus = EventBus(keep_history=True)

    async def fails_later(event):
        if event.type == "tick":
            await asyncio.sleep(0)
            raise RuntimeError("late")

    bus.on("*", fails_later)
    await bus.emit("tick")
    await bus.emit("tock")
    assert [(str(e.type), e.seq) for e in bus.get_history()] == [("tick", 1), ("handler_failed", 2), ("tock", 3)]
    assert isinstance(bus.get_errors()[0][1], RuntimeError)


async def test_an_emit_queued_behind_a_delivery_is_not_overtaken_by_a_later_one():
    bus = EventBus()
    seen: list[tuple[int, str]] = []
    gate = asyncio.get_running_loop().create_future()

    async def handler(event):
        seen.append((event.seq, event.data["who"]))
        if event.seq == 1:
            await gate  # the first delivery goes on in a task of its own, holding the lock

    bus.on("*", handler)
    first = asyncio.create_task(bus.emit("e", {"who": "first"}))
    await asyncio.sleep(0)
    await asyncio.sleep(0)

    async def later(turns, who):
        for _ in range(turns):
            await asyncio.sleep(0)
        await bus.emit("e", {"who": who})

    async def open_gate():
        gate.set_result(None)

    await asyncio.gather(first, open_gate(), later(1, "second"), later(2, "third"))
    assert [seq for seq, _ in seen] == [1, 2, 3]


async def test_a_failing_after_delivery_is_reported_even_when_its_emitter_is_cancelled():
    bus = EventBus(keep_history=True)
    release = asyncio.Event()

    async def disk_full():
        raise OSError("disk full")

    def books(event):
        if event.type == "cost":
            return AfterDelivery(disk_full())
        return None

    async def slow(event):
        if event.type == "slow":
            await release.wait()

    bus.on("*", books)
    bus.on("*", slow)
    emitter = asyncio.create_task(bus.emit("cost"))
    await asyncio.sleep(0)
    holder = asyncio.create_task(bus.emit("slow"))  # holds the delivery lock, so the failure report must queue
    await asyncio.sleep(0.01)
    emitter.cancel()
    release.set()
    await asyncio.gather(emitter, holder, return_exceptions=True)
    await asyncio.sleep(0.01)
    numbered = bus.last_seq("default")
    assert [e.seq for e in bus.get_history()] == list(range(1, numbered + 1))
    assert "handler_failed" in [str(e.type) for e in bus.get_history()]


async def test_a_delivery_cancelled_before_it_starts_does_not_keep_the_bus_locked():
    bus = EventBus()

    async def waits(event):
        await asyncio.sleep(0.01)

    bus.on("a", waits)
    emitter = asyncio.create_task(bus.emit("a"))
    await asyncio.sleep(0)  # the delivery is handed to a task that has not run yet
    me = asyncio.current_task()
    for task in asyncio.all_tasks():  # a supervisor cancelling everything else
        if task is not me:
            task.cancel()
    await asyncio.gather(emitter, return_exceptions=True)
    await asyncio.sleep(0.02)
    assert (await asyncio.wait_for(bus.emit("b"), 1)).seq == 2


async def test_handlers_run_in_a_context_of_their_own_and_may_use_timeouts_and_task_groups():
    import contextvars

    var = contextvars.ContextVar("var", default="emitter's")
    bus = EventBus()
    outcomes = []

    def sync_sets(event):
        var.set("handler's")

    async def times_out(event):
        try:
            async with asyncio.timeout(0.001):
                await asyncio.sleep(1)
        except TimeoutError:
            outcomes.append("timed out")

    async def group(event):
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(asyncio.sleep(0))
        outcomes.append("group done")

    for handler in (sync_sets, times_out, group):
        bus.on("*", handler)
    await bus.emit("tick")
    assert var.get() == "emitter's" and outcomes == ["timed out", "group done"]
    assert asyncio.current_task().cancelling() == 0


def test_the_names_before_the_v2_documents_still_work():
    from engine.state import PhaseName, PhaseType, RunStatus, ScenarioStatus

    assert PhaseName is PhaseType and RunStatus is ScenarioStatus and RunStatus.PENDING is ScenarioStatus.CREATED
    assert list(ScenarioStatus).count(ScenarioStatus.CREATED) == 1
    from engine.events import default_bus

    assert default_bus() is get_event_bus()
    bus = EventBus(keep_history=True, history_limit=1)
    asyncio.run(bus.emit("a"))
    asyncio.run(bus.emit("b"))
    assert [str(e.type) for e in bus.get_history()] == ["b"]


async def _ticks(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def _one_random_trial(rng) -> list[str]:
    """Emitters at random moments, some cancelled, handlers of every kind (sync, async that wait or not, failing,
    holding their emitter, emitting in turn): every subscriber must see every numbered event once, the
    emitters' events in seq order, and the bus must end idle."""
    import random  # noqa: F401 - rng is a random.Random

    bus = EventBus()
    seen: dict[int, list[tuple[int, bool]]] = {i: [] for i in range(3)}

    def subscriber(i: int):
        kind = rng.choice(["sync", "async", "async-wait", "fail", "async-fail", "hold", "nested"])
        if kind in ("sync", "fail", "hold"):
            def handler(event):
                seen[i].append((event.seq, event.type == "e"))
                if kind == "fail":
                    raise ValueError("sync failure")
                return AfterDelivery(asyncio.ensure_future(_ticks(rng.randrange(3)))) if kind == "hold" else None
            return handler

        async def async_handler(event):
            seen[i].append((event.seq, event.type == "e"))
            if kind in ("async-wait", "async-fail"):
                await _ticks(rng.randrange(1, 4))
            if kind == "async-fail":
                raise ValueError("async failure")
            if kind == "nested" and event.type == "e" and rng.random() < 0.4:
                await bus.emit("n")
        return async_handler

    for i in range(3):
        bus.on("*", subscriber(i))

    async def emitter():
        await _ticks(rng.randrange(5))
        await bus.emit("e")

    tasks = [asyncio.create_task(emitter()) for _ in range(rng.randrange(1, 7))]

    async def cancel_some():
        for task in tasks:
            if rng.random() < 0.3:
                await _ticks(rng.randrange(6))
                task.cancel()

    await asyncio.gather(cancel_some(), *tasks, return_exceptions=True)
    await _ticks(40)
    numbered = bus.last_seq("default")
    problems = []
    for i, got in seen.items():
        seqs = [seq for seq, _ in got]
        emitted = [seq for seq, top in got if top]
        if sorted(seqs) != list(range(1, numbered + 1)):
            problems.append(f"subscriber {i} saw {seqs} of {numbered}")
        elif emitted != sorted(emitted):
            problems.append(f"subscriber {i} saw the emitters' events as {emitted}")
    if bus._delivery_lock().locked() or bus._waiting or bus._delivering or bus._nested:
        problems.append("the bus did not end idle")
    return problems


async def test_random_emitters_cancellations_and_handlers_never_lose_reorder_or_wedge_events():
    import random

    rng = random.Random(20261206)
    failures = [(trial, problems) for trial in range(400) if (problems := await _one_random_trial(rng))]
    assert failures == []
