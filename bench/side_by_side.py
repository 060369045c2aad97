"""Side by side: every way to play a run, as a process of its own, against one fake LLM server.

    .venv/bin/python bench/side_by_side.py [--actors 6] [--turns 5] [--repeats 3]

The programs: the V1-like loop (bench/v1_like_loop.py, the V2 document's baseline: one call after another),
the engine SDK (bench/sdk_run.py), V1's command line over the engine (legacy_v1/run_scenario.py),
`manage.py run_scenario`, and a `run_huey` worker playing two stored runs one after the other. Each plays the
summit grown to --actors for --turns turns against the loopback fake LLM server answering at once (0 ms), on
the embedded profile in a fresh data folder, --repeats times in turn (so a slow moment of the machine hits
each program alike). For each: process start → the server's first chat request; the time per turn from that
request to the process's end (the worker: to its first run's last event), which at 0 ms a call is all the
program's own work, turn 1 and the final save included; and the peak RSS from the kernel (wait4). Medians;
the noise of a figure is half the spread of its repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import Figure, failed, report  # noqa: E402
from bench.profiles import embedded  # noqa: E402

# The targets: V1's own figures (0.29 s to the first call, 43.7 MB peak) and the V2 document's -30 % memory.
STARTUP_S = {"engine SDK": 0.35, "legacy_v1 CLI": 0.35, "manage.py run_scenario": 0.5}
PEAK_MB = {"engine SDK": 31, "legacy_v1 CLI": 40, "manage.py run_scenario": 63, "worker, 2 runs": 90}
HELP_S = {"legacy_v1 CLI": 0.3, "manage.py run_scenario": 0.5}
DJANGO_OVER_SDK_MS = 30
HELP_COMMANDS = {"legacy_v1 CLI": ["legacy_v1/run_scenario.py"], "manage.py run_scenario": ["manage.py", "run_scenario"]}


def commands(scenario: Path, turns: int, out: Path) -> dict[str, list[str]]:
    n = str(turns)
    return {
        "V1-like loop": ["bench/v1_like_loop.py", str(scenario), n, str(out / "v1-like")],
        "engine SDK": ["bench/sdk_run.py", str(scenario), n],
        "legacy_v1 CLI": ["legacy_v1/run_scenario.py", str(scenario), "--end-turn", n, "-o", str(out / "legacy"),
                          "--credit-limit", "100"],
        "manage.py run_scenario": ["manage.py", "run_scenario", str(scenario), "--turns", n, "--no-cache",
                                   "--credit-limit", "100"],
    }


def launched(command: list[str]) -> tuple[subprocess.Popen, Path]:
    """The program through bench/launch.py (its own peak RSS goes to the returned file)."""
    handle, result = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    process = subprocess.Popen([sys.executable, "-S", str(ROOT / "bench" / "launch.py"), result, sys.executable, *command],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, Path(result)


def peak_mb(result: Path) -> float:
    try:
        return json.loads(result.read_text())["peak_mb"]
    finally:
        result.unlink()


def play(command: list[str], server) -> dict:
    """Spawn one program, wait for it; its start → first request, seconds after that, peak RSS (MB)."""
    server.reset_stats()
    started = time.time()
    process, result = launched(command)
    process.wait()
    ended = time.time()
    peak = peak_mb(result)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} exited {process.returncode}: "
                           f"{process.stderr.read().decode(errors='replace').strip()[-300:]}")
    first = server.stats["first_request_at"]
    if first is None:
        raise RuntimeError(f"{' '.join(command[:2])} made no model call")
    return {"first_request_s": first - started, "after_first_s": ended - first, "peak_mb": peak}


def worker(scenario: Path, turns: int, server) -> dict:
    """Two stored, queued runs played by one `run_huey` process; its peak RSS once it is stopped."""
    from engine import Scenario
    from runs.models import Run, RunEvent
    from runs.services import run_create, run_enqueue, run_plan

    from bench.profiles import wait_for

    server.reset_stats()
    config = Scenario.load(scenario)
    runs = [run_create(plan=run_plan(config=config, turns=turns, use_cache=False), slug=f"side-by-side-{n}")
            for n in range(2)]
    process, result = launched(["manage.py", "run_huey", "--workers", "1", "--worker-type", "thread"])
    try:
        for run in runs:
            run_enqueue(run=run)
        ended = ("completed", "failed", "halted", "paused", "cancelled")
        wait_for(lambda: set(Run.objects.filter(pk__in=[r.pk for r in runs]).values_list("status", flat=True)) <= set(ended),
                 timeout=300, what="the worker to play both runs")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
        peak = peak_mb(result)
    bad = [r for r in Run.objects.filter(pk__in=[r.pk for r in runs]) if r.status != "completed"]
    if bad:
        raise RuntimeError(f"a worker's run ended {bad[0].status}: {bad[0].error}")
    last = RunEvent.objects.filter(run=runs[0]).order_by("-seq").values_list("timestamp", flat=True).first()
    first = server.stats["first_request_at"]  # the first run's: the worker plays them one after the other
    return {"after_first_s": last.timestamp() - first, "peak_mb": peak}


def help_seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    return time.perf_counter() - started


def measure(actors: int, turns: int, repeats: int) -> dict:
    from bench.memory import scenario_with_actors
    from bench.profiles import django_ready
    from engine.testing.fake_llm import FakeLLMServer

    django_ready()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed copy runs: bytecode cached
    server = FakeLLMServer(latency=0).start_in_thread()
    os.environ["SCENARIOLAB_LLM_BASE_URL"] = server.base_url  # the children inherit it
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        scenario = scenario_with_actors(Path(folder), actors)
        try:
            # A warm-up each (bytecode written, the scenario imported), then the repeats, each in new folders.
            for name, command in commands(scenario, turns, Path(folder) / "warm-up").items():
                play(command, server)
            for n in range(repeats):
                for name, command in commands(scenario, turns, Path(folder) / str(n)).items():
                    results.setdefault(name, []).append(play(command, server))
                results.setdefault("worker, 2 runs", []).append(worker(scenario, turns, server))
        finally:
            server.stop()
    helps = {name: [help_seconds(HELP_COMMANDS[name]) for _ in range(repeats)] for name in HELP_S}
    return {"programs": results, "help": helps}


def spread(values: list[float]) -> tuple[float, float]:
    """Median and noise (half the spread)."""
    return statistics.median(values), (max(values) - min(values)) / 2


def figures(r: dict, turns: int) -> list[Figure]:
    programs = r["programs"]
    out: list[Figure] = []
    for name, runs in programs.items():
        if "first_request_s" in runs[0]:
            value, noise = spread([x["first_request_s"] for x in runs])
            out.append(Figure(f"start-up: {name}, process start → first model request", round(value, 3), "s",
                              STARTUP_S.get(name), "<=" if name in STARTUP_S else "", noise=round(noise, 3)))
    for name, runs in programs.items():
        value, noise = spread([x["after_first_s"] / turns * 1000 for x in runs])
        out.append(Figure(f"time per turn at 0 ms a call: {name}", round(value, 1), "ms", noise=round(noise, 1)))
    sdk = statistics.median(x["after_first_s"] for x in programs["engine SDK"]) / turns * 1000
    for name in ("manage.py run_scenario", "worker, 2 runs"):
        extra = [x["after_first_s"] / turns * 1000 - sdk for x in programs[name]]
        value, noise = spread(extra)
        out.append(Figure(f"time per turn over the engine SDK: {name}", round(value, 1), "ms", DJANGO_OVER_SDK_MS, "<=",
                          noise=round(noise, 1)))
    for name, runs in programs.items():
        value, noise = spread([x["peak_mb"] for x in runs])
        note = "the V2 document's target: V1's 43.7 MB less 30 %" if name == "engine SDK" else ""
        out.append(Figure(f"peak RSS: {name}", round(value, 1), "MB", PEAK_MB.get(name), "<=" if name in PEAK_MB else "",
                          noise=round(noise, 1), note=note))
    for name, seconds in r["help"].items():
        value, noise = spread(seconds)
        out.append(Figure(f"start-up: {name} --help", round(value, 3), "s", HELP_S[name], "<=", noise=round(noise, 3)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=6)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.actors, args.turns, args.repeats)))
        return 0
    r = embedded(__file__, ["--actors", str(args.actors), "--turns", str(args.turns), "--repeats", str(args.repeats)])
    title = (f"Side by side: the summit with {args.actors} actors, {args.turns} turns, fake LLM server at 0 ms, "
             f"median of {args.repeats}")
    report(title, [failed("side by side", r["error"])] if "error" in r else figures(r, args.turns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
