"""Event types, the frozen Event record and the EventBus that carries them.

Events are the spine of Scenario Lab: every state change the engine makes is announced as an Event with a
per-run sequence number, so that persistence, live pages and the terminal can follow a run without the
engine knowing about any of them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Union

logger = logging.getLogger(__name__)


class EventType(StrEnum):
    """Every kind of event the engine emits. The value is the wire name (`"turn_completed"`)."""

    # Scenario lifecycle. data: {"status", "turn", "max_turns"} plus "reason" / "error" where relevant.
    SCENARIO_STARTED = "scenario_started"
    SCENARIO_RESUMED = "scenario_resumed"
    SCENARIO_PAUSED = "scenario_paused"
    SCENARIO_HALTED = "scenario_halted"
    SCENARIO_CANCELLED = "scenario_cancelled"
    SCENARIO_COMPLETED = "scenario_completed"
    SCENARIO_FAILED = "scenario_failed"
    # The run stopped until a person decides for a human seat. data as the other ends, plus "seats".
    SCENARIO_WAITING = "scenario_waiting"
    # A seat changed hands (taken over by a person, handed back, or given to the model after a timeout).
    # data: {"actor", "control" ("ai" | "human"), "reason"}.
    SEAT_CONTROL_CHANGED = "seat_control_changed"
    # Turns. data: {"turn"} plus "error" on failure.
    TURN_STARTED = "turn_started"
    TURN_COMPLETED = "turn_completed"
    TURN_FAILED = "turn_failed"
    # Phases. data: {"turn", "phase"} plus "attempt", "error".
    PHASE_STARTED = "phase_started"
    PHASE_COMPLETED = "phase_completed"
    PHASE_FAILED = "phase_failed"
    # Actor decisions. data: {"turn", "actor"} plus the decision fields or "error".
    ACTOR_DECISION_STARTED = "actor_decision_started"
    ACTOR_DECISION_COMPLETED = "actor_decision_completed"
    ACTOR_DECISION_FAILED = "actor_decision_failed"
    # A message between actors. data: Communication.to_dict().
    COMMUNICATION_SENT = "communication_sent"
    # data: {"turn", "content", "exogenous_events"}.
    WORLD_STATE_UPDATED = "world_state_updated"
    # An outside event the world update used, one per event, just before that turn's world_state_updated.
    # data: {"turn", "name", "kind" (scheduled, trend, random, conditional), "text"}.
    EXOGENOUS_EVENT = "exogenous_event"
    # Costs. data: CostRecord.to_dict() plus running totals; warning/exceeded: {"spent", "limit", ...}.
    COST_INCURRED = "cost_incurred"
    CREDIT_LIMIT_WARNING = "credit_limit_warning"
    CREDIT_LIMIT_EXCEEDED = "credit_limit_exceeded"
    # data: MetricRecord.to_dict() plus "threshold" (None, "warning" or "critical").
    METRIC_RECORDED = "metric_recorded"
    # A value at or past a warning or critical threshold, after its metric_recorded. data: {"turn",
    # "name", "actor", "value", "level" ("warning" | "critical"), "limit" (the threshold reached), "direction"
    # ("above" | "below"), "previous_level" (the same series' level the turn before: None for a new crossing),
    # "halts" (true when the scenario stops the run at this level)}.
    METRIC_THRESHOLD_CROSSED = "metric_threshold_crossed"
    # Validation. started: {"turn", "checks"}; completed: {"turn", "results"}; failed: a failing result.
    VALIDATION_STARTED = "validation_started"
    VALIDATION_COMPLETED = "validation_completed"
    VALIDATION_FAILED = "validation_failed"
    # data: {"turn", "status", "location"}.
    STATE_SAVED = "state_saved"
    # A subscriber raised. data: {"event_type", "handler", "error"}.
    HANDLER_FAILED = "handler_failed"


WILDCARD = "*"
# The run an event belongs to when its emitter names none: scripts and plugins with a bus of their own.
DEFAULT_RUN_ID = "default"

JSONValue = Union[None, bool, int, float, str, tuple["JSONValue", ...], Mapping[str, "JSONValue"]]


def freeze_json(value: Any, path: str = "data") -> JSONValue:
    """Return a read-only copy of a JSON-compatible value, or raise TypeError naming the offending path.

    Lists become tuples and dicts become mappingproxies, so an Event's payload cannot be changed after
    it is emitted; `thaw_json` turns it back into plain JSON types.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path} is {value!r}; JSON has no NaN or infinity")
        return value
    if isinstance(value, Mapping):
        frozen = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a non-string key {key!r}")
            frozen[key] = freeze_json(item, f"{path}.{key}")
        return MappingProxyType(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(freeze_json(item, f"{path}[{i}]") for i, item in enumerate(value))
    raise TypeError(f"{path} is a {type(value).__name__}, which is not JSON-serialisable")


def thaw_json(value: JSONValue) -> Any:
    """Plain dict/list copy of a frozen JSON value (what `json.dumps` accepts)."""
    if isinstance(value, Mapping):
        return {key: thaw_json(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(item) for item in value]
    return value


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

    def __init__(self, *, keep_history: bool = False, max_history: int | None = None) -> None:
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
        seq = self._last_seq.get(run_id, 0) + 1
        event = Event(
            type=event_type,
            data=data or {},
            run_id=run_id,
            seq=seq,
            source=source,
            correlation_id=correlation_id,
        )
        self._last_seq[run_id] = seq
        if asyncio.current_task() is self._delivering:
            # Emitted by a handler: queued behind the event being handled, whose emitter awaits its holds.
            await self._publish(event)
        else:
            # Shielded: an emitter cancelled while waiting its turn (a cancelled phase, Ctrl-C) still has its
            # event delivered, so every numbered event reaches every subscriber and seq has no gaps.
            await self._await_holds(await asyncio.shield(self._publish(event)))
        return event

    def _delivery_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:  # a bus may outlive one asyncio.run()
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def publish(self, event: Event) -> None:
        """Deliver an already-numbered event (replays and relays use this; `emit` numbers new ones)."""
        await self._await_holds(await self._publish(event))

    async def _publish(self, event: Event) -> list[_Hold]:
        """Deliver `event` (and what its handlers emit); return what its emitter must still wait for."""
        task = asyncio.current_task()
        if task is not None and task is self._delivering:
            self._nested.append(event)  # emitted by a handler: delivered after the event being handled
            return []
        holds: list[_Hold] = []
        # No await between numbering (in emit) and queueing here, and the lock is FIFO: seq order holds.
        async with self._delivery_lock():
            self._delivering = task
            try:
                await self._deliver(event, holds)
                while self._nested:
                    await self._deliver(self._nested.popleft(), holds)
            finally:
                self._delivering = None
        return holds

    async def _await_holds(self, holds: list[_Hold]) -> None:
        for event, handler, awaitable in holds:
            try:
                # Shielded: an emitter cancelled while it waits must not cancel what others may wait for too.
                await asyncio.shield(awaitable)
            except Exception as exc:  # noqa: BLE001 - as a failing handler: reported, never stops the run
                await self._report_handler_failure(event, handler, exc)

    async def _deliver(self, event: Event, holds: list[_Hold]) -> None:
        if self.keep_history:
            self._history.append(event)
            if self._max_history is not None and len(self._history) > self._max_history:
                del self._history[: len(self._history) - self._max_history]
        name = str(event.type)
        for key, handler in list(self._subscriptions):
            if key != WILDCARD and key != name:
                continue
            try:
                result = handler(event)
                if isinstance(result, AfterDelivery):
                    holds.append((event, handler, result.awaitable))
                elif inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001 - a subscriber must never stop the run
                await self._report_handler_failure(event, handler, exc)

    async def _report_handler_failure(self, event: Event, handler: Handler, exc: Exception) -> None:
        self._errors.append((event, exc))
        name = getattr(handler, "__qualname__", repr(handler))
        logger.exception("event handler %s failed on %s #%s", name, event.type, event.seq)
        if event.type is EventType.HANDLER_FAILED:
            return  # a failing failure-handler is only logged, or it would loop forever
        await self.emit(
            EventType.HANDLER_FAILED,
            {"event_type": str(event.type), "event_seq": event.seq, "handler": name, "error": repr(exc)},
            run_id=event.run_id,
            source="event_bus",
            correlation_id=event.correlation_id,
        )

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
