import asyncio
import json
import logging

import pytest

from engine.events import Event, EventBus, EventType, get_event_bus, thaw_json


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
    await asyncio.sleep(0)
    assert seen == ["start 1"], "begun in the emitter's own task, up to its first wait"
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
