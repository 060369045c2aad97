"""Batch throughput: runs per minute with 1 and 2 Huey worker processes against the fake LLM server.

    .venv/bin/python bench/batch_throughput.py [--runs-per-variation 4] [--turns 1] [--latency 0.2] [--workers 1 2]

For each worker count N, in a fresh process and data folder (embedded profile: SQLite database and queue), it
starts the loopback fake LLM server (200 ms a call) and N `run_huey` processes of one thread each, then starts
a batch of the bundled summit (2 variations, max_parallel N, every call through the real HTTP client) and
times it from its start to its last run's end. Prints runs per minute for each N and the speed-up (target
≥ 1.8× with 2 workers) as figures (bench/figures.py) for `python -m bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_SPEEDUP = 1.8

from bench.figures import Figure, failed, report  # noqa: E402
from bench.profiles import embedded  # noqa: E402


def measure(workers: int, runs_per_variation: int, turns: int, latency: float) -> dict:
    """In a process of its own (settings come from its environment): serve, work, time."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from batches import planning, services
    from batches.models import Batch, BatchStatus
    from engine.batch import BatchConfig
    from engine.testing.fake_llm import FakeLLMServer
    from runs.models import Run

    call_command("migrate", verbosity=0)
    if "channels" in settings.DATABASES:
        call_command("migrate", database="channels", verbosity=0)
    server = FakeLLMServer(latency=latency).start_in_thread()
    os.environ["SCENARIOLAB_LLM_BASE_URL"] = server.base_url  # the plan here, and the workers, call it
    processes = [
        subprocess.Popen([sys.executable, "manage.py", "run_huey", "--workers", "1", "--worker-type", "thread", "--delay", "0.1"],
                         cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        time.sleep(4)  # every worker is consuming before the clock starts
        config = BatchConfig.parse({
            "experiment_name": f"throughput-{workers}", "base_scenario": "ai-summit", "turns": turns,
            "variations": [{"type": "scenario_parameter", "parameter": "seed", "values": [1, 101]}],
            "runs_per_variation": runs_per_variation, "max_parallel": workers,
        })
        plan = planning.batch_plan(config=config, base=planning.batch_base_scenario(name="ai-summit"))
        started = time.perf_counter()
        batch = services.batch_start(plan=plan)
        while Batch.objects.get(pk=batch.pk).status not in (BatchStatus.COMPLETED, BatchStatus.HALTED):
            if time.perf_counter() - started > 600:
                raise RuntimeError("the batch did not finish within 10 minutes")
            time.sleep(0.05)
        wall = time.perf_counter() - started
        runs = list(Run.objects.filter(batch_run__batch=batch))
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        server.stop()
    return {
        "workers": workers,
        "runs": len(runs),
        "completed": sum(r.status == "completed" for r in runs),
        "calls": sum(r.calls for r in runs),
        "wall_s": round(wall, 2),
        "runs_per_minute": round(60 * len(runs) / wall, 1),
        "seconds_per_run": round(sum((r.finished_at - r.started_at).total_seconds() for r in runs) / len(runs), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-per-variation", type=int, default=4)
    parser.add_argument("--turns", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.runs_per_variation, args.turns, args.latency)))
        return 0

    figures, base = [], None
    for workers in args.workers:
        name = f"batch runs per minute, {workers} worker{'s' if workers > 1 else ''}"
        speedup = f"batch speed-up, {workers} workers ÷ {args.workers[0]}"
        # `--measure N …`: each worker count in a fresh process and data folder.
        r = embedded(__file__, [str(workers), "--runs-per-variation", str(args.runs_per_variation), "--turns",
                                str(args.turns), "--latency", str(args.latency)])
        if "error" in r:
            figures.append(failed(name, r["error"], "runs/min"))
            if workers != args.workers[0]:
                figures.append(failed(speedup, "no figure for this count", "×", TARGET_SPEEDUP, ">="))
            continue
        figures.append(Figure(name, r["runs_per_minute"], "runs/min", note=f"{r['completed']}/{r['runs']} runs completed "
                              f"in {r['wall_s']} s, {r['seconds_per_run']} s per run"))
        if workers == args.workers[0]:
            base = r["runs_per_minute"]
        elif base is None:
            figures.append(failed(speedup, f"no figure for {args.workers[0]} worker(s)", "×", TARGET_SPEEDUP, ">="))
        else:
            figures.append(Figure(speedup, round(r["runs_per_minute"] / base, 2), "×", TARGET_SPEEDUP, ">="))
    report(f"Batch throughput: ai-summit, 2 variations × {args.runs_per_variation} runs of {args.turns} turn(s), fake LLM "
           f"server at {args.latency * 1000:.0f} ms a call, max_parallel = workers (embedded profile)", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
