"""The V2 document's performance targets, measured as it frames them.

    .venv/bin/python bench/v2_targets.py [--turns 10] [--actors 6] [--latency 0.01] [--repeats 3]

- Event overhead (< 10 %): the same turns (zero-latency offline provider) with the event bus and the document's
  two example handlers (one on turn_completed, one on "*"; async as the document writes them, and the same as
  plain functions), against the same turns with a bus that builds and delivers nothing. What subscribers do with events (store
  them, relay them) is storage, which a monolithic loop also pays for; it is measured by bench/persistence.py.
- Start-up (< 2 s): a new Python process to the first model call of `Runner().run(Scenario.load(...))`.
- Turn time (-20 %) and memory (-30 %) against a V1-like monolithic loop (bench/v1_like_loop.py) doing the
  same work: the same model calls per task through the same provider, with --latency seconds per call, and
  every turn's files written. Turn time is the mean wall time per turn; memory the peak of Python's
  allocations during the run (tracemalloc, in a second run of its own: tracing slows a run). Each variant
  runs in a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import logging
import tracemalloc
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine_overhead import SUMMIT, TimedOffline, with_actors  # noqa: E402
from bench.figures import Figure, report  # noqa: E402
from engine import EventBus, EventType, FilesystemPersistence, Runner, Scenario  # noqa: E402
from engine.llm.offline import OfflineProvider  # noqa: E402
from engine.llm.provider import LLMRequest, LLMResponse  # noqa: E402


LOG = logging.getLogger("bench.v2_targets")


class SilentBus(EventBus):
    """A bus that builds no event and calls no one: the engine's turns as if it had no event system."""

    async def emit(self, event_type, data=None, **kwargs):  # type: ignore[override]
        return None


class Slow:
    """The offline provider answering after `latency` seconds, counting its calls by task."""

    name = "offline"

    def __init__(self, scenario: Scenario, latency: float) -> None:
        self.inner, self.latency, self.calls = OfflineProvider(scenario), latency, Counter()

    def max_cost(self, request: LLMRequest) -> float:
        return 0.0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls[request.purpose.task] += 1
        await asyncio.sleep(self.latency)
        return await self.inner.complete(request)


# ---- event overhead ------------------------------------------------------------------------------------------
def turn_ms(scenario: Scenario, turns: int, bus: EventBus) -> tuple[float, float]:
    """Wall ms per turn, and the engine's share of it (the offline provider's composing taken out)."""
    provider = TimedOffline(scenario)
    started = time.perf_counter()
    Runner(provider=provider, bus=bus).run(scenario, max_turns=turns)
    wall = time.perf_counter() - started
    return wall / turns * 1000, (wall - provider.seconds) / turns * 1000


def subscribed_bus(*, asynchronous: bool = True) -> EventBus:
    """A bus with the document's own two handlers (its "Event Handlers" example): a turn's cost line, and every
    event logged (at INFO, which a default logger drops, as a deployment's would at its usual level). As the
    document writes them they are async; `asynchronous=False` makes the same handlers plain functions."""
    bus = EventBus()
    lines: list[str] = []

    def handle_turn_complete(event):
        lines.append(f"Turn {event.data['turn']} completed, cost: ${event.data['total_cost']:.2f}")

    def log_all(event):
        LOG.info(f"Event: {event.type}", extra=event.data)

    for event_type, handler in ((EventType.TURN_COMPLETED, handle_turn_complete), ("*", log_all)):
        bus.on(event_type, as_coroutine(handler) if asynchronous else handler)
    return bus


def as_coroutine(handler):
    async def handle(event):
        handler(event)

    return handle


def event_overhead(scenario: Scenario, turns: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Best-of-`repeats` turn_ms with the bus and the handlers async, sync, and without a bus; alternated, after a
    warm-up of each (the first run also imports what the engine loads lazily)."""
    buses = {"async": lambda: subscribed_bus(), "sync": lambda: subscribed_bus(asynchronous=False), "none": SilentBus}
    for make in buses.values():
        turn_ms(scenario, 1, make())
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in buses}
    for _ in range(repeats):
        for name, make in buses.items():
            runs[name].append(turn_ms(scenario, turns, make()))
    return {name: min(results) for name, results in runs.items()} | {
        f"{name} noise": (overhead_noise(runs[name], runs["none"]), 0.0) for name in buses if name != "none"}


def overhead_noise(with_bus: list[tuple[float, float]], without: list[tuple[float, float]]) -> float:
    """Half the spread of the overhead (%) across the repeats, each against the bus-less run beside it."""
    each = [(a[0] / b[0] - 1) * 100 for a, b in zip(with_bus, without, strict=True)]
    return (max(each) - min(each)) / 2


# ---- start-up ------------------------------------------------------------------------------------------------
STARTUP_CHILD = """
import sys, time
from engine import Runner, Scenario
from engine.llm.offline import OfflineProvider

class First(OfflineProvider):
    async def complete(self, request):
        print(time.time(), flush=True)
        raise SystemExit(0)

scenario = Scenario.load(sys.argv[1])
Runner(provider=First(scenario)).run(scenario, max_turns=1)
"""


def startup_seconds(repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.time()
        out = subprocess.run([sys.executable, "-c", STARTUP_CHILD, str(SUMMIT)], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
        seconds.append(float(out.split()[0]) - started)
    return seconds


# ---- the same work, engine and V1-like loop ------------------------------------------------------------------
def play_variant(variant: str, turns: int, actors: int, latency: float, traced: bool, calls: dict | None) -> dict:
    scenario = with_actors(Scenario.load(SUMMIT), actors)
    with tempfile.TemporaryDirectory() as folder:
        # A warm-up turn first: both sides then start with what they load lazily already loaded (the engine's
        # price table, the provider's and the writers' modules), so the figures are the run's own.
        run_variant(variant, scenario, Slow(scenario, 0), 1, calls, Path(folder) / "warm-up")
        provider = Slow(scenario, latency)
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        run_variant(variant, scenario, provider, turns, calls, Path(folder) / "run")
        wall = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
        tracemalloc.stop()
    return {"turn_s": wall / turns, "peak_mb": peak / 2**20, "calls": dict(provider.calls)}


def run_variant(variant: str, scenario: Scenario, provider: Slow, turns: int, calls: dict | None, folder: Path) -> None:
    from bench.v1_like_loop import play

    if variant == "engine":
        Runner(provider=provider, persistence=FilesystemPersistence(folder)).run(scenario, max_turns=turns)
    else:  # the engine's calls of one turn (counted in its run of `calls_turns` turns), turn after turn
        per_turn = Counter({task: n // calls["turns"] for task, n in calls["calls"].items()})
        asyncio.run(play(scenario, provider, turns=turns, calls_per_turn=per_turn, out=folder))


def variant_in_child(variant: str, args: argparse.Namespace, *, traced: bool, calls: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--child", variant, "--turns", str(args.turns), "--actors", str(args.actors),
               "--latency", str(args.latency), "--calls", json.dumps(calls or {})] + (["--traced"] if traced else [])
    return json.loads(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--actors", type=int, default=6)
    parser.add_argument("--latency", type=float, default=0.01, help="seconds per model call in the same-work runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=("engine", "monolithic"), help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--calls", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(play_variant(args.child, args.turns, args.actors, args.latency, args.traced, json.loads(args.calls))))
        return 0

    scenario = with_actors(Scenario.load(SUMMIT), args.actors)
    overhead = event_overhead(scenario, args.turns, args.repeats)
    without = overhead["none"]
    starts = sorted(startup_seconds(args.repeats))
    engine = min((variant_in_child("engine", args, traced=False) for _ in range(args.repeats)), key=lambda r: r["turn_s"])
    calls = {"turns": args.turns, "calls": engine["calls"]}
    loop = min((variant_in_child("monolithic", args, traced=False, calls=calls) for _ in range(args.repeats)),
               key=lambda r: r["turn_s"])
    engine_mb = variant_in_child("engine", args, traced=True)["peak_mb"]
    loop_mb = variant_in_child("monolithic", args, traced=True, calls=calls)["peak_mb"]
    same = f"{args.actors} actors, {args.turns} turns, {args.latency * 1000:g} ms a call, {sum(engine['calls'].values())} calls"
    report(f"The V2 document's targets ({same}; best of {args.repeats})", [
        *(Figure(f"V2: event overhead (bus + the document's 2 handlers, {name}, vs no bus)",
                 round((overhead[name][0] / without[0] - 1) * 100, 1), "%", 10, "<", noise=round(overhead[f"{name} noise"][0], 1),
                 note=f"{overhead[name][0]:.1f} vs {without[0]:.1f} ms a turn, zero-latency offline model; engine "
                      f"time alone {overhead[name][1]:.1f} vs {without[1]:.1f} ms") for name in ("async", "sync")),
        Figure("V2: start-up, new process → first model call", round(starts[len(starts) // 2], 3), "s", 2, "<",
               note="median; each: " + ", ".join(f"{s:.2f}" for s in starts)),
        Figure("V2: turn time vs a V1-like monolithic loop", round((engine["turn_s"] / loop["turn_s"] - 1) * 100, 1), "%",
               -20, "<=", note=f"{engine['turn_s'] * 1000:.0f} vs {loop['turn_s'] * 1000:.0f} ms a turn"),
        # The document's memory target (-30 % against V1) is a process's peak RSS: bench/side_by_side.py
        # "peak RSS: engine SDK" against V1's own 43.7 MB. This is where the engine's own heap stands.
        Figure("V2: Python allocations at the peak vs a V1-like monolithic loop", round((engine_mb / loop_mb - 1) * 100, 1), "%",
               note=f"{engine_mb:.1f} vs {loop_mb:.1f} MB allocated at the peak"),
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
