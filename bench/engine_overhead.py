"""Engine benchmarks: overhead per turn with a zero-latency provider, and event bus throughput.

    .venv/bin/python bench/engine_overhead.py [--turns 5] [--repeats 3] [--events 100000]

Also the helpers the other benchmarks share: the summit with N actors, per-turn wall times from the bus,
and the LLM critical path of a turn. Prints its figures (bench/figures.py); `python -m bench` collects them.
"""

from __future__ import annotations

import argparse
import asyncio
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
from bench.figures import Figure, report  # noqa: E402

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


TALKS = ("summary", "outreach", "reply")


def critical_paths(calls: Iterable[tuple[int, str, float]]) -> dict[int, float]:
    """Each turn's chain of dependent rounds, each round costing its slowest call. Calls are
    (turn, task, seconds). A turn's QA checks play alongside the next turn's talks (summary, outreach,
    replies), so that part of a turn costs whichever is longer; the last turn's checks are a round of its own:
    max(talks, last turn's checks) → decisions → world update → metrics."""
    slowest: dict[tuple[int, str], float] = defaultdict(float)
    for turn, task, seconds in calls:
        slowest[(turn, task)] = max(slowest[(turn, task)], seconds)
    turns = sorted({turn for turn, _ in slowest})
    per_turn = {}
    for turn in turns:
        talks = sum(slowest.get((turn, task), 0.0) for task in TALKS)
        rest = sum(seconds for (t, task), seconds in slowest.items() if t == turn and task not in (*TALKS, "validation"))
        last = slowest.get((turn, "validation"), 0.0) if turn == turns[-1] else 0.0
        per_turn[turn] = max(talks, slowest.get((turn - 1, "validation"), 0.0)) + rest + last
    return per_turn


def mean_critical_path(calls: Iterable[tuple[int, str, float]]) -> float:
    paths = critical_paths(calls)
    return sum(paths.values()) / len(paths)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="the best of this many runs counts")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    six = with_actors(Scenario.load(SUMMIT), 6)
    overhead = engine_overhead_ms(six, args.turns, args.repeats)
    events = asyncio.run(bus_events_per_second(args.events))
    report(f"Engine on {platform.node()} ({platform.python_implementation()} {platform.python_version()}), "
           f"6 actors, {args.turns} turns, best of {args.repeats}", [
               Figure("engine overhead per turn, 6 actors, zero-latency provider", round(overhead, 2), "ms"),
               Figure("event bus throughput, 2 subscribers", round(events), "events/s"),
           ])


if __name__ == "__main__":
    main()
