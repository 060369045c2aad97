"""Engine benchmarks: overhead per turn, event bus throughput, and turn time against the LLM critical path.

    .venv/bin/python bench/engine_overhead.py [--turns 5] [--latency 0.2]

Prints one line per figure (value, target, ratio) and writes them to bench/results-engine.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import EventBus, EventType, Runner, Scenario  # noqa: E402
from engine.llm.offline import OfflineProvider  # noqa: E402
from engine.llm.provider import LLMRequest, LLMResponse  # noqa: E402
from engine.testing.providers import SleepingProvider  # noqa: E402

SUMMIT = ROOT / "scenarios" / "library" / "ai-summit"


def with_actors(scenario: Scenario, count: int) -> Scenario:
    """The summit with `count` actors: extra ones are copies of the first under new names."""
    actors = list(scenario.actors)
    while len(actors) < count:
        template = scenario.actors[len(actors) % len(scenario.actors)]
        n = len(actors) + 1
        actors.append(template.model_copy(update={"short_name": f"delegation-{n}", "name": f"Delegation {n}"}))
    return scenario.model_copy(update={"actors": actors[:count]})


class TimedOffline:
    """The offline provider, with the time spent inside it counted (it is the 'model', not the engine)."""

    name = "offline"

    def __init__(self, scenario: Scenario) -> None:
        self.inner = OfflineProvider(scenario)
        self.seconds = 0.0

    def max_cost(self, request: LLMRequest) -> float:
        return 0.0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        started = time.perf_counter()
        response = await self.inner.complete(request)
        self.seconds += time.perf_counter() - started
        return response


def engine_overhead_ms(scenario: Scenario, turns: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        provider = TimedOffline(scenario)
        started = time.perf_counter()
        Runner(provider=provider).run(scenario, max_turns=turns)
        wall = time.perf_counter() - started
        best = min(best, (wall - provider.seconds) / turns * 1000)
    return best


async def bus_events_per_second(count: int = 100_000) -> float:
    bus = EventBus()
    received = []
    bus.on(EventType.COST_INCURRED, received.append)
    bus.on("*", lambda event: None)
    started = time.perf_counter()
    for i in range(count):
        await bus.emit(EventType.COST_INCURRED, {"turn": 1, "actor": "a", "cost": 0.001, "i": i}, run_id="bench")
    elapsed = time.perf_counter() - started
    assert len(received) == count
    return count / elapsed


def time_turns(bus: EventBus) -> dict[int, float]:
    """Subscribe to `bus` and return the dict it fills with each turn's wall time in seconds."""
    starts: dict[int, float] = {}
    walls: dict[int, float] = {}
    bus.on(EventType.TURN_STARTED, lambda e: starts.__setitem__(e.data["turn"], time.perf_counter()))
    bus.on(EventType.TURN_COMPLETED, lambda e: walls.__setitem__(e.data["turn"], time.perf_counter() - starts[e.data["turn"]]))
    return walls


def mean_critical_path(calls: Iterable[tuple[int, str, float]]) -> float:
    """The mean per turn of the chain of dependent rounds (outreach → replies → decisions → world update →
    metrics → validation), each round costing its slowest call. Calls are (turn, task, seconds)."""
    slowest: dict[tuple[int, str], float] = defaultdict(float)
    for turn, task, seconds in calls:
        slowest[(turn, task)] = max(slowest[(turn, task)], seconds)
    per_turn: dict[int, float] = defaultdict(float)
    for (turn, _task), seconds in slowest.items():
        per_turn[turn] += seconds
    return sum(per_turn.values()) / len(per_turn)


def critical_path_ratio(scenario: Scenario, turns: int, latency: float) -> tuple[float, float, float]:
    """Turn wall time ÷ the LLM critical path, with a provider that sleeps `latency` per call."""
    provider = SleepingProvider(scenario, latency=latency)
    bus = EventBus()
    walls = time_turns(bus)
    Runner(provider=provider, bus=bus).run(scenario, max_turns=turns)
    wall = sum(walls.values()) / len(walls)
    path = mean_critical_path((c.turn, c.task, c.ended - c.started) for c in provider.calls)
    return wall, path, wall / path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    six = with_actors(Scenario.load(SUMMIT), 6)

    overhead = engine_overhead_ms(six, args.turns)
    events = asyncio.run(bus_events_per_second())
    wall, path, ratio = critical_path_ratio(six, min(args.turns, 3), args.latency)
    figures = [
        {"figure": "engine overhead per turn, 6 actors, zero-latency provider", "value": round(overhead, 2), "unit": "ms", "target": None},
        {"figure": "event bus throughput (2 subscribers)", "value": round(events), "unit": "events/s", "target": None},
        {"figure": f"turn wall time, 6 actors, {args.latency * 1000:.0f} ms per call", "value": round(wall, 3), "unit": "s", "target": None},
        {"figure": "LLM critical path per turn", "value": round(path, 3), "unit": "s", "target": None},
        {"figure": "turn wall time ÷ critical path", "value": round(ratio, 3), "unit": "", "target": 1.10},
    ]
    print(f"Engine benchmarks on {platform.node()} ({platform.python_implementation()} {platform.python_version()})")
    print(f"{'figure':62} {'value':>12} {'target':>8} {'ratio':>7}")
    for figure in figures:
        target = figure["target"]
        ratio_text = f"{figure['value'] / target:.3f}" if target else ""
        unit = f" {figure['unit']}" if figure["unit"] else ""
        print(f"{figure['figure']:62} {str(figure['value']) + unit:>12} {target or '':>8} {ratio_text:>7}")
    (ROOT / "bench" / "results-engine.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
