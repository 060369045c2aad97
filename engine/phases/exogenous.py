"""Which outside events happen in a turn: a pure function of the rules, the seed and the turns before it.

Each random draw uses its own generator seeded by (run seed, turn, event name), so adding an event to a
scenario does not change whether the others fire, and a rerun, a resumed run or a branch draws the same
events. Everything is judged
on the turns before `turn` only (their worlds, metrics and fired events), so a turn played again, whole or in
part, chooses what it chose the first time.
"""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Callable

from engine.scenario.schema import ConditionalEvent, EventCondition, ExogenousEventsConfig
from engine.state import ExogenousOccurrence, ScenarioState

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def _draw(seed: int, turn: int, name: str) -> float:
    return random.Random(f"{seed}:{turn}:{name}").random()


def _in_range(turn: int, turn_range: tuple[int, int] | list[int] | None) -> bool:
    return turn_range is None or turn_range[0] <= turn <= turn_range[1]


def _number(value: object) -> float | None:
    """A metric value as a number: V1's string-typed metrics record numbers as text ("42")."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def latest_metric_value(state: ScenarioState, metric: str, before_turn: int) -> float | None:
    """The world-level value of `metric` in the latest turn before `before_turn` that measured it (a turn whose
    text gave no value, recorded as None, leaves the last measured value standing)."""
    records = [m for m in state.metrics
               if m.name == metric and m.actor is None and m.turn < before_turn and m.value is not None]
    if not records:
        return None
    latest = max(range(len(records)), key=lambda i: (records[i].turn, i))  # a later record of a turn wins
    return _number(records[latest].value)


def _condition_holds(condition: EventCondition, state: ScenarioState, turn: int) -> bool:
    if condition.type == "world_state_contains":
        text = next((w.content for w in reversed(state.world_states) if w.turn < turn), "")
        found = re.search(condition.pattern or "", text, re.IGNORECASE)
        if not found:
            return False
        return not condition.sensitivity or bool(re.search(condition.sensitivity, text, re.IGNORECASE))
    value = latest_metric_value(state, condition.metric or "", turn)
    if value is None or condition.value is None:
        return False
    return _COMPARE[condition.operator](value, condition.value)


def _conditional_turn_range(event: ConditionalEvent) -> tuple[int, int] | None:
    """V1's conditional events may carry a turn_range (kept as an extra key by the loader): they only fire
    inside it."""
    turn_range = (event.model_extra or {}).get("turn_range")
    return None if turn_range is None else (int(turn_range[0]), int(turn_range[1]))


def fired_before(state: ScenarioState, turn: int) -> set[tuple[str, str]]:
    """(kind, name) of every outside event that shaped a turn before `turn`: what `once` remembers. It lives in
    the world states, so it survives a resume, and a branch keeps exactly the events of the turns it keeps."""
    return {(event.kind, event.name) for world in state.world_states if world.turn < turn for event in world.exogenous_events}


def events_for_turn(config: ExogenousEventsConfig, state: ScenarioState, turn: int) -> tuple[ExogenousOccurrence, ...]:
    """The events that shape `turn`, judged on the state before it (world and metrics of earlier turns)."""
    happened = fired_before(state, turn)
    seed = state.seed
    chosen: list[ExogenousOccurrence] = []
    for event in config.scheduled_events:
        if turn in event.schedule.turns:
            chosen.append(ExogenousOccurrence(event.name, "scheduled", event.effect.strip()))
    for trend in config.trends:
        effect = next((e for e in trend.effects if _in_range(turn, e.turn_range)), None)
        if effect is not None and _draw(seed, turn, trend.name) < trend.probability_per_turn:
            text = f"{effect.description.strip()}" + (f" ({effect.impact.strip()})" if effect.impact else "")
            chosen.append(ExogenousOccurrence(trend.name, "trend", text))
    for event in config.random_events:
        if event.once and ("random", event.name) in happened:
            continue
        if _in_range(turn, event.turn_range) and _draw(seed, turn, event.name) < event.probability:
            chosen.append(ExogenousOccurrence(event.name, "random", event.effect.strip()))
    for event in config.conditional_events:
        if event.once and ("conditional", event.name) in happened:
            continue
        if not _in_range(turn, _conditional_turn_range(event)):
            continue
        if all(_condition_holds(condition, state, turn) for condition in event.conditions):
            chosen.append(ExogenousOccurrence(event.name, "conditional", event.effect.strip()))
    return tuple(chosen)
