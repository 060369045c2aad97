"""Which outside events happen in a turn: a pure function of the rules, the seed and the state so far.

Each random draw uses its own generator seeded by (run seed, turn, event name), so adding an event to a
scenario does not change whether the others fire, and a resumed or repeated run draws the same events.
"""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Callable

from engine.scenario.schema import EventCondition, ExogenousEventsConfig
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


def _in_range(turn: int, turn_range: tuple[int, int] | None) -> bool:
    return turn_range is None or turn_range[0] <= turn <= turn_range[1]


def _condition_holds(condition: EventCondition, state: ScenarioState) -> bool:
    if condition.type == "world_state_contains":
        text = state.world.content
        found = re.search(condition.pattern or "", text, re.IGNORECASE)
        if not found:
            return False
        return not condition.sensitivity or bool(re.search(condition.sensitivity, text, re.IGNORECASE))
    latest = [m for m in state.metrics if m.name == condition.metric and m.actor is None]
    if not latest or not isinstance(latest[-1].value, (int, float)) or condition.value is None:
        return False
    return _COMPARE[condition.operator](float(latest[-1].value), condition.value)


def events_for_turn(config: ExogenousEventsConfig, state: ScenarioState, turn: int) -> tuple[ExogenousOccurrence, ...]:
    """The events that shape `turn`, judged on the state before it (world and metrics of turn - 1)."""
    happened = {event.name for world in state.world_states for event in world.exogenous_events}
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
        if event.once and event.name in happened:
            continue
        if _in_range(turn, event.turn_range) and _draw(seed, turn, event.name) < event.probability:
            chosen.append(ExogenousOccurrence(event.name, "random", event.effect.strip()))
    for event in config.conditional_events:
        if event.once and event.name in happened:
            continue
        if all(_condition_holds(condition, state) for condition in event.conditions):
            chosen.append(ExogenousOccurrence(event.name, "conditional", event.effect.strip()))
    return tuple(chosen)
