"""Memory: peak RSS of a `manage.py run_scenario` run of 80 turns with 8 actors, and its RSS as turns pass.

    .venv/bin/python bench/memory.py [--turns 80] [--actors 8] [--samples 10 20 40 80]

The summit has 5 actors: the run plays a copy of it, written to a temporary folder, with delegations added
(copies of its actors under new names) up to --actors. It runs on the embedded profile, in a fresh data
folder, against the loopback fake LLM server (no latency), every call through the real HTTP client. This
process reads the child's resident set (/proc/PID/status) when the stored run reaches each sampled turn, and
its peak from the kernel when it ends. The engine keeps only the last `context_window_size` turns in prompts,
so RSS should level off to what the run's records add (about 40 KB a turn at 8 actors, the engine's own heap
measured with tracemalloc). The first turns also fill caches (SQLite's page and statement caches, the
allocator's pools): the growth between the last two samples, per turn, is the figure with a target; the one
before it is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine_overhead import SUMMIT  # noqa: E402
from bench.figures import Figure, failed, report  # noqa: E402
from bench.profiles import embedded  # noqa: E402

TARGET_GROWTH_MB_PER_TURN = 0.1  # a turn's records are kilobytes, and prompts keep only the last turns


def scenario_with_actors(folder: Path, count: int) -> Path:
    """A copy of the summit in `folder` with `count` actors (the added ones copy existing ones, renamed)."""
    target = folder / "summit"
    shutil.copytree(SUMMIT, target)
    config = yaml.safe_load((target / "scenario.yaml").read_text())
    actors = list(config["actors"])
    while len(actors) < count:
        template = yaml.safe_load((target / "actors" / f"{actors[len(actors) % 5]}.yaml").read_text())
        n = len(actors) + 1
        template.update(short_name=f"delegation-{n}", name=f"Delegation {n}")
        (target / "actors" / f"delegation-{n}.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
        actors.append(f"delegation-{n}")
    config["actors"] = actors[:count]
    (target / "scenario.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return target


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None  # it has ended
    return None


def measure(turns: int, actors: int, samples: list[int]) -> dict:
    from bench.profiles import django_ready
    from engine.testing.fake_llm import FakeLLMServer

    django_ready()
    from runs.models import Run

    server = FakeLLMServer(latency=0).start_in_thread()
    os.environ["SCENARIOLAB_LLM_BASE_URL"] = server.base_url  # the child run_scenario inherits it
    at: dict[int, float] = {}
    last = None
    with tempfile.TemporaryDirectory() as folder:
        scenario = scenario_with_actors(Path(folder), actors)
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "manage.py", "run_scenario", str(scenario), "--turns", str(turns),
                                    "--no-cache", "--credit-limit", "1000"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        try:
            while process.poll() is None:
                turn = Run.objects.order_by("-pk").values_list("turn", flat=True).first() or 0
                rss = rss_mb(process.pid)
                if rss is not None:
                    last = rss
                    for sample in samples:
                        if turn >= sample and sample not in at:
                            at[sample] = rss
                if time.perf_counter() - started > 600:
                    raise RuntimeError("the run did not end within 10 minutes")
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            server.stop()
        if process.returncode != 0:
            raise RuntimeError(f"run_scenario exited {process.returncode}: "
                               f"{process.stderr.read().decode(errors='replace').strip()[-300:]}")
    wall = time.perf_counter() - started
    final = Run.objects.order_by("-pk").values_list("turn", flat=True).first()
    for sample in samples:  # a last turn the loop missed: the process ended between two reads
        at.setdefault(sample, last)
    # Only this one child was ever waited for here, so the children's peak is its peak.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_mb": peak, "rss_at": {str(k): v for k, v in at.items()}, "turns": final, "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=80)
    parser.add_argument("--actors", type=int, default=8)
    parser.add_argument("--samples", type=int, nargs="+", default=[10, 20, 40, 80], help="turns at which RSS is read")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    samples = sorted(s for s in set(args.samples) if 0 < s <= args.turns)
    if len(samples) < 2:
        parser.error("--samples needs two turns between 1 and --turns")
    if args.measure:
        print(json.dumps(measure(args.turns, args.actors, samples)))
        return 0
    r = embedded(__file__, ["--turns", str(args.turns), "--actors", str(args.actors), "--samples", *map(str, samples)])
    what = f"{args.turns}-turn, {args.actors}-actor run"
    mid, end = samples[-2], samples[-1]
    growth = f"RSS growth per turn, turn {mid} → {end}"
    if "error" in r:
        figures = [failed(f"peak RSS, {what}", r["error"], "MB"),
                   failed(growth, r["error"], "MB", TARGET_GROWTH_MB_PER_TURN, "<=")]
    else:
        rss = {int(k): v for k, v in r["rss_at"].items()}
        figures = [Figure(f"peak RSS, {what}", round(r["peak_mb"], 1), "MB",
                          note=f"{r['turns']} turns in {r['wall_s']:.0f} s")]
        figures += [Figure(f"RSS at turn {s}", round(rss[s], 1), "MB") for s in samples]
        if len(samples) > 2:
            early = samples[-3]
            figures.append(Figure(f"RSS growth per turn, turn {early} → {mid} (caches filling)",
                                  round((rss[mid] - rss[early]) / (mid - early), 2), "MB"))
        figures.append(Figure(growth, round((rss[end] - rss[mid]) / (end - mid), 2), "MB", TARGET_GROWTH_MB_PER_TURN, "<="))
    report(f"Memory of manage.py run_scenario: {what} (embedded profile, fake LLM server, no latency)", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
