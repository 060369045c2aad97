"""LLM concurrency benchmark: the real HTTP client against the loopback fake server.

    .venv/bin/python bench/llm_concurrency.py [--actors 6] [--turns 10] [--latency 0.2] [--concurrency 16]

Prints turn wall time ÷ LLM critical path (target ≤ 1.10) and the TCP connections the server saw
(target ≤ the client's concurrency limit), and writes them to bench/results-llm.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine_overhead import SUMMIT, mean_critical_path, time_turns, with_actors  # noqa: E402
from engine import EventBus, Runner, Scenario  # noqa: E402
from engine.llm.openai_compatible import Endpoint, OpenAICompatibleProvider  # noqa: E402
from engine.llm.provider import LLMRequest, LLMResponse  # noqa: E402
from engine.testing.fake_llm import FakeLLMServer  # noqa: E402


class Timed:
    """Records when each call started and ended, to find each turn's critical path afterwards."""

    def __init__(self, inner: OpenAICompatibleProvider) -> None:
        self.inner, self.name = inner, inner.name
        self.calls: list[tuple[int, str, float]] = []

    def max_cost(self, request: LLMRequest) -> float:
        return self.inner.max_cost(request)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        response = await self.inner.complete(request)
        # The provider times the HTTP exchange only, not the wait for a free slot: queueing behind the
        # concurrency limit is the product's overhead, not the model's.
        self.calls.append((request.purpose.turn, request.purpose.task, response.latency_ms / 1000))
        return response


async def measure(scenario: Scenario, *, turns: int, latency: float, concurrency: int) -> dict:
    async with FakeLLMServer(latency=latency) as server:
        provider = Timed(OpenAICompatibleProvider(Endpoint("local", server.base_url, max_concurrency=concurrency)))
        bus = EventBus()
        walls = time_turns(bus)
        state = await Runner(provider=provider, bus=bus).run_async(scenario, max_turns=turns)
        await provider.inner.aclose()
        stats = server.stats
    # Calls are timed as the server answered them; everything else in a turn is the product's overhead.
    wall = sum(walls.values()) / len(walls)
    path = mean_critical_path(provider.calls)
    return {
        "status": state.status.value,
        "calls": len(provider.calls),
        "turn_wall_s": round(wall, 3),
        "critical_path_s": round(path, 3),
        "ratio": round(wall / path, 3),
        "connections": stats["connections"],
        "max_concurrent_requests": stats["max_concurrent_requests"],
        "concurrency_limit": concurrency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=6)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    scenario = with_actors(Scenario.load(SUMMIT), args.actors)
    result = asyncio.run(measure(scenario, turns=args.turns, latency=args.latency, concurrency=args.concurrency))
    print(f"LLM concurrency: {args.actors} actors × {args.turns} turns, {args.latency * 1000:.0f} ms per call, limit {args.concurrency}")
    print(f"{'figure':44} {'value':>10} {'target':>8}")
    print(f"{'turn wall time (s)':44} {result['turn_wall_s']:>10} {'':>8}")
    print(f"{'LLM critical path per turn (s)':44} {result['critical_path_s']:>10} {'':>8}")
    print(f"{'turn wall time ÷ critical path':44} {result['ratio']:>10} {'≤ 1.10':>8}")
    print(f"{'TCP connections the server saw':44} {result['connections']:>10} {'≤ ' + str(args.concurrency):>8}")
    print(f"{'peak requests in flight':44} {result['max_concurrent_requests']:>10} {'':>8}")
    (ROOT / "bench" / "results-llm.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
