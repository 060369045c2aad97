"""LLM concurrency: turn wall time ÷ LLM critical path, in-process and through a Huey worker process.

    .venv/bin/python bench/llm_concurrency.py [--actors 6 12] [--turns 3] [--latency 0.2] [--concurrency 16]

Both play the summit (with N actors) through the real HTTP client against the loopback fake LLM server.
In-process: the engine's Runner in this process. Worker: a run stored and queued as the site does, played by a
`run_huey` process (embedded profile, fresh data folder), so every event is also stored as it happens; its
turn times come from the stored events and its call times from bench/timed_worker.py. The critical path of a
turn is its chain of dependent rounds, each costing its slowest HTTP exchange, a turn's QA checks beside the
next turn's talks (bench/engine_overhead.py critical_paths; target: wall ≤ 1.10 × path).
The server's listen backlog is 5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine_overhead import SUMMIT, critical_paths, mean_critical_path, time_turns, with_actors  # noqa: E402
from bench.figures import Figure, failed, report  # noqa: E402
from bench.profiles import embedded  # noqa: E402
from engine import EventBus, Runner, Scenario  # noqa: E402
from engine.llm.openai_compatible import Endpoint, OpenAICompatibleProvider  # noqa: E402
from engine.llm.provider import LLMRequest, LLMResponse  # noqa: E402
from engine.testing.fake_llm import FakeLLMServer  # noqa: E402

TARGET_RATIO = 1.10
# The fake server's listen backlog: as small as llama.cpp's or a small proxy's, so a burst of new connections
# that is not ramped up shows as a stall (dropped SYNs are sent again a second later).
BACKLOG = 5


class Timed:
    """Records when each call started and ended, to find each turn's critical path afterwards."""

    def __init__(self, inner: OpenAICompatibleProvider) -> None:
        self.inner, self.name = inner, inner.name
        self.calls: list[tuple[int, str, float]] = []

    def max_cost(self, request: LLMRequest) -> float:
        return self.inner.max_cost(request)

    # Price learning passes through, so the cost tracker guards this run as it does a worker's.
    def learns_prices(self, model: str) -> bool:
        return self.inner.learns_prices(model)

    def observe_cost(self, model: str, input_tokens: int, output_tokens: int, cost: float) -> None:
        self.inner.observe_cost(model, input_tokens, output_tokens, cost)

    def max_cost_unbilled(self, request: LLMRequest) -> float:
        return self.inner.max_cost_unbilled(request)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        response = await self.inner.complete(request)
        # The provider times the HTTP exchange only, not the wait for a free slot: queueing behind the
        # concurrency limit is the product's overhead, not the model's.
        self.calls.append((request.purpose.turn, request.purpose.task, response.latency_ms / 1000))
        return response


async def in_process(scenario: Scenario, *, turns: int, latency: float, concurrency: int) -> dict:
    async with FakeLLMServer(latency=latency, backlog=BACKLOG) as server:
        provider = Timed(OpenAICompatibleProvider(Endpoint("local", server.base_url, max_concurrency=concurrency)))
        bus = EventBus()
        walls = time_turns(bus)
        # The scenario's own credit limit, as a stored run gets it (run_plan).
        state = await Runner(provider=provider, bus=bus).run_async(scenario, max_turns=turns, credit_limit=scenario.config.credit_limit)
        await provider.inner.aclose()
        stats = server.stats
    if not walls:
        raise RuntimeError(f"no turn completed: {state.status.value} {state.error or ''}")
    wall = sum(walls.values()) / len(walls)
    path = mean_critical_path(provider.calls)
    return {"turn_wall_s": wall, "critical_path_s": path, "ratio": wall / path, "connections": stats["connections"]}


def through_worker(actors: int, *, turns: int, latency: float) -> dict:
    """In a process of its own on the embedded profile: store and queue a run, let a worker process play it."""
    from bench.profiles import django_ready, start, stop, wait_for

    django_ready()
    from runs.models import Run, RunEvent
    from runs.services import run_create, run_enqueue, run_plan

    calls_file = Path(os.environ["SCENARIOLAB_DATA_DIR"]) / "calls.jsonl"  # the temporary data folder
    server = FakeLLMServer(latency=latency, backlog=BACKLOG).start_in_thread()
    os.environ["SCENARIOLAB_LLM_BASE_URL"] = server.base_url  # the plan here, and the worker, call it
    worker = start(["bench/timed_worker.py", "run_huey", "--workers", "1", "--worker-type", "thread", "--delay", "0.1"],
                   BENCH_CALLS_FILE=str(calls_file))
    try:
        config = with_actors(Scenario.load(SUMMIT), actors)
        run = run_create(plan=run_plan(config=config, turns=turns, use_cache=False), slug=f"bench-{actors}")
        run_enqueue(run=run)
        ended = ("completed", "failed", "halted", "paused", "cancelled")
        status = wait_for(lambda: (s := Run.objects.values_list("status", flat=True).get(pk=run.pk)) in ended and s,
                          timeout=300, what="the worker to finish the run")
    finally:
        log = stop(worker)
        server.stop()
    if status != "completed":
        raise RuntimeError(f"the run ended {status}: {Run.objects.get(pk=run.pk).error or log[-300:]}")
    marks: dict[tuple[str, int], float] = {}
    for event in RunEvent.objects.filter(run=run, type__in=["turn_started", "turn_completed"]):
        marks[(event.type, event.data["turn"])] = event.timestamp.timestamp()
    walls = [marks[("turn_completed", t)] - marks[("turn_started", t)]
             for t in sorted({t for _, t in marks}) if ("turn_completed", t) in marks and ("turn_started", t) in marks]
    calls = [tuple(json.loads(line)) for line in calls_file.read_text().splitlines()]
    wall = sum(walls) / len(walls)
    path = mean_critical_path(calls)
    paths = critical_paths(calls)
    per_turn = [round(w / paths[t], 2) for t, w in enumerate(walls, start=1)]
    return {"turn_wall_s": wall, "critical_path_s": path, "ratio": wall / path, "per_turn": per_turn}


def figures_for(actors: int, args: argparse.Namespace) -> list[Figure]:
    name = f"turn wall ÷ LLM critical path, {actors} actors, {args.latency * 1000:.0f} ms"
    out = []
    try:
        r = asyncio.run(in_process(with_actors(Scenario.load(SUMMIT), actors), turns=args.turns, latency=args.latency,
                                   concurrency=args.concurrency))
        out.append(Figure(f"{name}, in-process", round(r["ratio"], 3), "", TARGET_RATIO, "<=",
                          note=f"wall {r['turn_wall_s']:.2f} s, path {r['critical_path_s']:.2f} s"))
        out.append(Figure(f"TCP connections to the LLM server, {actors} actors", r["connections"], "", args.concurrency, "<="))
    except Exception as exc:  # noqa: BLE001 - one failed figure, not a lost table
        out.append(failed(f"{name}, in-process", str(exc), "", TARGET_RATIO, "<="))
    r = embedded(__file__, ["--actors", str(actors), "--turns", str(args.turns), "--latency", str(args.latency)])
    if "error" in r:
        out.append(failed(f"{name}, Huey worker", r["error"], "", TARGET_RATIO, "<="))
    else:
        out.append(Figure(f"{name}, Huey worker", round(r["ratio"], 3), "", TARGET_RATIO, "<=",
                          note=f"wall {r['turn_wall_s']:.2f} s, path {r['critical_path_s']:.2f} s; by turn "
                               + " ".join(f"{x:.2f}" for x in r["per_turn"])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[6, 12])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(through_worker(args.actors[0], turns=args.turns, latency=args.latency)))
        return 0
    figures = [f for actors in args.actors for f in figures_for(actors, args)]
    report(f"LLM concurrency: the summit × {args.turns} turns, fake LLM server at {args.latency * 1000:.0f} ms a call, "
           f"client limit {args.concurrency}", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
