"""Persistence benchmark: the time to store one turn of a 6-actor run, on SQLite and on PostgreSQL.

    .venv/bin/python bench/persistence.py [--turns 5] [--actors 6] [--database-url postgres://…]

A turn's storage is what the Django side adds to the engine: every event of the turn recorded as it happens
(a cost event also writes its ledger line) plus the turn's records written at its end. The engine plays the
run once in memory; the benchmark then replays its events and end-of-turn states into each database through
the same functions the workers use. Prints its figures (bench/figures.py) for `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import Figure, failed, report  # noqa: E402
from bench.profiles import measure_each_profile  # noqa: E402
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/scenariolab_bench"


def measure(turns: int, actors: int) -> dict:
    """In a process whose environment already chose the database: migrate, play, replay, time."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.engine_overhead import SUMMIT, with_actors
    from engine import EventBus, Runner, Scenario
    from runs.execution.store import append_events, save_run_state
    from runs.services import run_create, run_plan

    call_command("migrate", verbosity=0)
    config = with_actors(Scenario.load(SUMMIT), actors)

    class Keep:  # a StatePersistence that keeps each saved state in memory
        def __init__(self) -> None:
            self.states = []

        async def save(self, state):
            self.states.append(state)
            return "memory"

        async def load(self, run_id):
            return None

    bus, kept = EventBus(keep_history=True), Keep()
    final = asyncio.run(Runner(bus=bus, persistence=kept).run_async(config, max_turns=turns, run_id="bench"))
    assert final.turn == turns, final.error
    events = bus.get_history()

    run = run_create(plan=run_plan(config=config, turns=turns), slug=f"bench-{os.getpid()}")
    claim = "bench"  # appended as a worker does: each write checks the executor still owns the run
    type(run).objects.filter(pk=run.pk).update(claim=claim)
    per_turn, event_ms, cursor = [], [], 0
    for state in kept.states[:turns]:
        started = time.perf_counter()
        while cursor < len(events):  # this turn's events, up to its state_saved
            event = events[cursor]
            cursor += 1
            t0 = time.perf_counter()
            append_events(run.pk, [event], claim=claim)
            event_ms.append((time.perf_counter() - t0) * 1000)
            if str(event.type) == "turn_completed":
                break
        save_run_state(run.pk, state, claim=claim)
        per_turn.append((time.perf_counter() - started) * 1000)
    return {
        "database": connection.vendor,
        "turn_ms": statistics.median(per_turn),
        "event_ms": statistics.median(event_ms),
        "events_per_turn": len(event_ms) / turns,
        "ledger_lines_per_turn": sum(1 for e in events if str(e.type) == "cost_incurred") / turns,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--actors", type=int, default=6)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_POSTGRES))
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.turns, args.actors)))
        return 0

    results = measure_each_profile(__file__, ["--turns", str(args.turns), "--actors", str(args.actors)],
                                   database_url=args.database_url, redis_url=None)
    figures = []
    for r, database in zip(results, ("SQLite", "PostgreSQL")):
        name = f"persistence per turn, {args.actors} actors, {database}"
        if "error" in r:
            figures.append(failed(name, r["error"], "ms"))
            continue
        figures.append(Figure(name, round(r["turn_ms"], 1), "ms", note=f"{r['events_per_turn']:.0f} events, "
                              f"{r['ledger_lines_per_turn']:.0f} ledger lines, {r['event_ms']:.2f} ms per event"))
    report(f"Persistence of one turn, {args.actors} actors, median of {args.turns} turns (offline provider)", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
