"""The frozen Event record and the EventBus that carries it (the types are in `engine.event_types`).

Events are the spine of Scenario Lab: every state change the engine makes is announced as an Event with a
per-run sequence number, so that persistence, live pages and the terminal can follow a run without the
engine knowing about any of them.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from engine.event_types import EventType
from engine.frozen_json import JSONValue, freeze_json, thaw_json

logger = logging.getLogger(__name__)


WILDCARD = "*"
# The run an event belongs to when its emitter names none: scripts and plugins with a bus of their own.
DEFAULT_RUN_ID = "default"

def event_type_of(value: EventType | str) -> EventType | str:
    """An engine event's name as its `EventType`; any other non-empty string as itself (a plugin's own event)."""
    if isinstance(value, EventType):
        return value
    known = EventType._value2member_map_.get(value)
    if known is not None:
        return known  # type: ignore[return-value]
    if not isinstance(value, str) or not value or value == WILDCARD:
        raise ValueError(f"an event type is an EventType or a non-empty name other than '*', not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a run. `seq` is monotonic per `run_id`, starting at 1 (0: not emitted on a bus).

    `type` is an `EventType` for the engine's own events and a plain string for others; both compare equal to
    their name (`event.type == "turn_completed"`). `data` is frozen on construction (see `freeze_json`).
    """

    type: EventType | str
    data: Mapping[str, JSONValue] = field(default_factory=dict)
    run_id: str = DEFAULT_RUN_ID
    seq: int = 0
    timestamp: float = field(default_factory=time.time)
    source: str = "engine"
    correlation_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", event_type_of(self.type))
        object.__setattr__(self, "data", freeze_json(self.data))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": str(self.type),
            "data": thaw_json(self.data),
            "run_id": self.run_id,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "source": self.source,
            "correlation_id": self.correlation_id,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        return cls(
            type=raw["type"],
            data=raw.get("data") or {},
            run_id=raw["run_id"],
            seq=int(raw["seq"]),
            timestamp=float(raw["timestamp"]),
            source=raw.get("source", "engine"),
            correlation_id=raw.get("correlation_id"),
        )


class AfterDelivery:
    """What a handler returns to make the emitter wait, not the bus: the bus goes on delivering (to the other
    subscribers, and later events), and the `emit` of this event returns once `awaitable` is done. For a
    subscriber that queues work, when only some events' emitters must see it finished (a ledger line
    committed before the call's answer is used), while nobody else waits for it."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[object]) -> None:
        self.awaitable = awaitable


Handler = Callable[[Event], Union[None, Awaitable[None], AfterDelivery]]
_Hold = tuple[Event, Handler, Awaitable[object]]
_Rest = tuple[Awaitable[object], Handler, list[Handler]]  # a delivery's awaited handler and the handlers after it


class EventBus:
    """Publish/subscribe for engine events.

    Handlers run in registration order, sync or async, each awaited before the next. Every subscriber
    sees a run's events in seq order: deliveries take turns (first come, first served) even when several
    tasks emit at once, and an event emitted from inside a handler is delivered right after the event
    being handled (its `emit` returns before that). An event once numbered is delivered even if its emitter
    is cancelled while waiting. A handler that raises is logged and reported as a HANDLER_FAILED event; it
    never stops the run or the other handlers. A handler that returns `AfterDelivery(x)` makes only that
    event's emitter wait for `x` (after the delivery, outside the turn-taking; `x` failing is reported the
    same way).
    """

    def __init__(self, *, keep_history: bool = False, max_history: int | None = None, history_limit: int | None = None) -> None:
        if history_limit is not None:  # the name `max_history` had before the V2 document's
            if max_history not in (None, history_limit):
                raise ValueError("give the history's size once: `history_limit` is the older name of `max_history`")
            max_history = history_limit
        self._subscriptions: list[tuple[str, Handler]] = []
        self._last_seq: dict[str, int] = {}
        self.keep_history = keep_history
        self._history: list[Event] = []
        self._max_history = max_history
        # The latest handler failures, for scripts and tests that ask (`get_errors`); each is also logged and
        # announced as HANDLER_FAILED. Bounded: a handler failing on every event must not grow a long run.
        self._errors: deque[tuple[Event, Exception]] = deque(maxlen=100)
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._delivering: asyncio.Task | None = None
        self._waiting = 0  # emitters waiting for the delivery lock
        self._nested: deque[Event] = deque()

    def on(self, event_type: EventType | str, handler: Handler | None = None) -> Any:
        """Subscribe to one type (an `EventType`, any other name for custom events, or "*" for all). Usable as
        `@bus.on(type)` or `bus.on(type, fn)`."""
        key = _key(event_type)

        def register(fn: Handler) -> Handler:
            self._subscriptions.append((key, fn))
            return fn

        return register(handler) if handler is not None else register

    def off(self, event_type: EventType | str, handler: Handler) -> None:
        key = _key(event_type)
        self._subscriptions = [(k, h) for k, h in self._subscriptions if not (k == key and h == handler)]

    def clear_handlers(self, event_type: EventType | str | None = None) -> None:
        """Unsubscribe every handler (of one type, when given)."""
        key = None if event_type is None else _key(event_type)
        self._subscriptions = [(k, h) for k, h in self._subscriptions if key is not None and k != key]

    @property
    def handlers(self) -> dict[str, list[Handler]]:
        """The subscriptions by event name ("*" for all), in delivery order. A copy: change them with on/off."""
        grouped: dict[str, list[Handler]] = {}
        for key, handler in self._subscriptions:
            grouped.setdefault(key, []).append(handler)
        return grouped

    def get_errors(self) -> list[tuple[Event, Exception]]:
        """The latest (up to 100) handler failures as (event, exception), oldest first."""
        return list(self._errors)

    def resume_sequence(self, run_id: str, last_seq: int) -> None:
        """Continue numbering after `last_seq`, e.g. when a stored run is resumed in a new process."""
        self._last_seq[run_id] = max(last_seq, self._last_seq.get(run_id, 0))

    def last_seq(self, run_id: str) -> int:
        return self._last_seq.get(run_id, 0)

    async def emit(
        self,
        event_type: EventType | str,
        data: Mapping[str, Any] | None = None,
        *,
        run_id: str = DEFAULT_RUN_ID,
        source: str = "engine",
        correlation_id: str | None = None,
    ) -> Event:
        event = self._number(event_type, data, run_id, source, correlation_id)
        task = asyncio.current_task()
        if task is not None and task is self._delivering:
            # Emitted by a handler: queued behind the event being handled, whose emitter awaits its holds.
            self._nested.append(event)
            return event
        if self._delivering is None and self._waiting == 0 and not self._delivery_lock().locked():
            # Nobody delivering or waiting: sync handlers are called from here, in a copy of the emitter's
            # context (as a task of their own would have), with no task and no trip round the event loop.
            holds: list[_Hold] = []
            context = contextvars.copy_context()
            rest = context.run(self._deliver_now, event, holds, task)
            if rest is not None:  # a handler to wait for: the rest of the delivery goes on in a task
                await self._delivery_lock().acquire()  # free, and nothing has waited since the check: taken at once
                holds = await asyncio.shield(self._hand_over(*rest, holds, context))
            if holds:
                await self._await_holds(holds)
            return event
        await self._await_holds(await asyncio.shield(self._queue(event)))
        return event

    def _number(self, event_type: EventType | str, data: Mapping[str, Any] | None, run_id: str, source: str,
                correlation_id: str | None) -> Event:
        seq = self._last_seq.get(run_id, 0) + 1
        event = Event(type=event_type, data=data or {}, run_id=run_id, seq=seq, source=source, correlation_id=correlation_id)
        self._last_seq[run_id] = seq
        return event

    def _delivery_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:  # a bus may outlive one asyncio.run()
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def publish(self, event: Event) -> None:
        """Deliver an already-numbered event (replays and relays use this; `emit` numbers new ones)."""
        task = asyncio.current_task()
        if task is not None and task is self._delivering:
            self._nested.append(event)
            return
        # Shielded like an emit: a numbered event reaches every subscriber whatever happens to its publisher.
        await self._await_holds(await asyncio.shield(self._queue(event)))

    def _queue(self, event: Event) -> asyncio.Future[list[_Hold]]:
        """Deliver `event` in a task of its own, behind every delivery under way or waiting. It counts as waiting
        from this moment (not from its task's first step), so no later emit can overtake it."""
        self._waiting += 1
        counted = [True]

        def done_waiting(_: object = None) -> None:
            if counted[0]:
                counted[0] = False
                self._waiting -= 1

        delivery = asyncio.ensure_future(self._publish(event, done_waiting))
        delivery.add_done_callback(done_waiting)  # a task cancelled before its first step still stops waiting
        return delivery

    async def _publish(self, event: Event, done_waiting: Callable[[], None]) -> list[_Hold]:
        """Deliver `event` (and what its handlers emit) in turn; return what its emitter must still wait for."""
        holds: list[_Hold] = []
        try:
            await self._delivery_lock().acquire()  # FIFO: deliveries keep the order their events were numbered in
        finally:
            done_waiting()
        self._delivering = asyncio.current_task()
        return await self._hold_until_delivered(self._deliver(event, self._handlers_of(event), holds), holds)

    def _deliver_now(self, event: Event, holds: list[_Hold], task: asyncio.Task | None) -> tuple[Event, _Rest] | None:
        """Deliver `event` and what its handlers emit while every handler returns at once; at the first that
        must be waited for, stop and return that event with the rest of its delivery."""
        self._delivering = task
        try:
            current: Event | None = event
            while current is not None:
                rest = self._call_until_wait(current, self._handlers_of(current), holds)
                if rest is not None:
                    return current, rest
                current = self._nested.popleft() if self._nested else None
            return None
        finally:
            self._delivering = None

    def _hand_over(self, event: Event, rest: _Rest, holds: list[_Hold], context: contextvars.Context) -> asyncio.Future[list[_Hold]]:
        """The rest of a delivery `emit` began, in a task of its own (in the context the delivery's first handlers
        ran in) that holds the delivery lock (emit took it) until every queued event is delivered."""
        lock = self._delivery_lock()
        started = [False]

        async def deliver_rest() -> list[_Hold]:
            started[0] = True
            self._delivering = asyncio.current_task()
            return await self._hold_until_delivered(self._go_on(event, rest, holds), holds)

        def release_if_never_started(_: object) -> None:
            if not started[0]:  # cancelled before its first step: its `finally` never ran
                self._delivering = None
                lock.release()
                if inspect.iscoroutine(rest[0]):
                    rest[0].close()  # the handler's coroutine, never to run

        delivery = asyncio.get_running_loop().create_task(deliver_rest(), context=context)
        delivery.add_done_callback(release_if_never_started)
        return delivery

    async def _go_on(self, event: Event, rest: _Rest, holds: list[_Hold]) -> None:
        pending, handler, handlers = rest
        await self._wait_for(event, handler, pending)
        await self._deliver(event, handlers, holds)

    async def _hold_until_delivered(self, delivery: Awaitable[None], holds: list[_Hold]) -> list[_Hold]:
        """With the delivery lock held by this task: finish `delivery`, deliver what its handlers emitted
        meanwhile, then let the next emitter in."""
        try:
            await delivery
            while self._nested:
                queued = self._nested.popleft()
                await self._deliver(queued, self._handlers_of(queued), holds)
        finally:
            self._delivering = None
            self._delivery_lock().release()
        return holds

    def _handlers_of(self, event: Event) -> list[Handler]:
        """The subscribers of `event` as they stand when its delivery starts (history kept first)."""
        if self.keep_history:
            self._history.append(event)
            if self._max_history is not None and len(self._history) > self._max_history:
                del self._history[: len(self._history) - self._max_history]
        name = str(event.type)
        return [handler for key, handler in self._subscriptions if key == WILDCARD or key == name]

    def _call_until_wait(self, event: Event, handlers: list[Handler], holds: list[_Hold]) -> _Rest | None:
        """Call handlers in order until one returns something to wait for (an async handler's coroutine): return
        it, with the handlers after it, for a task of its own to await."""
        for index, handler in enumerate(handlers):
            try:
                result = handler(event)
                if isinstance(result, AfterDelivery):
                    holds.append((event, handler, result.awaitable))
                elif inspect.isawaitable(result):
                    return result, handler, handlers[index + 1:]
            except Exception as exc:  # noqa: BLE001 - a subscriber must never stop the run
                self._queue_failure(event, handler, exc)
        return None

    async def _deliver(self, event: Event, handlers: list[Handler], holds: list[_Hold]) -> None:
        for handler in handlers:
            try:
                result = handler(event)
                if isinstance(result, AfterDelivery):
                    holds.append((event, handler, result.awaitable))
                elif inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001 - a subscriber must never stop the run
                self._queue_failure(event, handler, exc)

    async def _wait_for(self, event: Event, handler: Handler, pending: Awaitable[object]) -> None:
        try:
            await pending
        except Exception as exc:  # noqa: BLE001 - a subscriber must never stop the run
            self._queue_failure(event, handler, exc)

    async def _await_holds(self, holds: list[_Hold]) -> None:
        for event, handler, awaitable in holds:
            try:
                # Shielded: an emitter cancelled while it waits must not cancel what others may wait for too.
                await asyncio.shield(awaitable)
            except Exception as exc:  # noqa: BLE001 - as a failing handler: reported, never stops the run
                failure = self._failure_event(event, handler, exc)
                if failure is not None:
                    await self.publish(failure)

    def _queue_failure(self, event: Event, handler: Handler, exc: Exception) -> None:
        """A handler failed during a delivery: its report is delivered right after the event being handled."""
        failure = self._failure_event(event, handler, exc)
        if failure is not None:
            self._nested.append(failure)

    def _failure_event(self, event: Event, handler: Handler, exc: Exception) -> Event | None:
        """Log and keep a handler's failure; the HANDLER_FAILED event that reports it (none for a failing report,
        which would loop forever)."""
        self._errors.append((event, exc))
        name = getattr(handler, "__qualname__", repr(handler))
        logger.exception("event handler %s failed on %s #%s", name, event.type, event.seq, exc_info=exc)
        if event.type is EventType.HANDLER_FAILED:
            return None
        return self._number(EventType.HANDLER_FAILED,
                            {"event_type": str(event.type), "event_seq": event.seq, "handler": name, "error": repr(exc)},
                            event.run_id, "event_bus", event.correlation_id)

    def get_history(self, event_type: EventType | str | None = None) -> list[Event]:
        """The events delivered so far (with `keep_history`; the latest `max_history` of them), of one type if given."""
        if event_type is None:
            return list(self._history)
        wanted = str(event_type_of(event_type))
        return [event for event in self._history if event.type == wanted]


def _key(event_type: EventType | str) -> str:
    return WILDCARD if event_type == WILDCARD else str(event_type_of(event_type))


_process_bus: EventBus | None = None


def get_event_bus() -> EventBus:
    """The optional process-wide bus, for scripts that do not want to pass one around."""
    global _process_bus
    if _process_bus is None:
        _process_bus = EventBus()
    return _process_bus


default_bus = get_event_bus  # the name scripts written before the V2 document's `get_event_bus` call


__all__ = ["AfterDelivery", "DEFAULT_RUN_ID", "Event", "EventBus", "EventType", "Handler", "JSONValue", "WILDCARD",
           "default_bus", "event_type_of", "freeze_json", "get_event_bus", "thaw_json"]
