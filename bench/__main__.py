"""`python -m bench [--quick] [--only NAME]`: every benchmark, one table, and bench/results.json.

Each benchmark is its script run as a process of its own (its settings per profile stay apart), printing its
figures in the shape of bench/figures.py; this collects them into one table (figure, value, target, ratio,
verdict) and one JSON file with the date, the machine and the total time. --quick plays tiny sizes: a smoke
test of the machinery whose figures mean nothing. Exit status 1, naming the figures, when a benchmark failed
to measure or a figure missed its target by more than the noise it measured (its repeats' spread): a miss
within the noise is reported but passes, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from bench.figures import Figure, failed, markdown_table, parse, table

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    timeout: float = 300


BENCHMARKS = (
    Benchmark("llm", "llm_concurrency.py", quick=("--actors", "6", "--turns", "1", "--latency", "0.02")),
    Benchmark("engine", "engine_overhead.py", quick=("--turns", "1", "--repeats", "1", "--events", "2000")),
    Benchmark("persistence", "persistence.py", quick=("--turns", "1", "--actors", "2")),
    Benchmark("memory", "memory.py", quick=("--turns", "2", "--actors", "6", "--samples", "1", "2")),
    Benchmark("live", "live_latency.py", quick=("--events", "20")),
    Benchmark("batch", "batch_throughput.py", quick=("--runs-per-variation", "1", "--latency", "0.01")),
    Benchmark("api", "api_load.py", quick=("--seconds", "1", "--turns", "1", "--concurrency", "4")),
    Benchmark("v2", "v2_targets.py", quick=("--turns", "2", "--repeats", "1", "--latency", "0")),
    Benchmark("side", "side_by_side.py", quick=("--turns", "1", "--repeats", "1"), timeout=600),
)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def run_benchmark(benchmark: Benchmark, *, quick: bool) -> tuple[list[Figure], float]:
    """Its figures (one failed figure if it printed none) and its seconds. On timeout its whole process group
    is ended: a benchmark's workers and servers must not outlive it."""
    args = benchmark.quick if quick else benchmark.full
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, str(HERE / benchmark.script), *args], cwd=HERE.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=benchmark.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return [failed(f"{benchmark.name} benchmark", f"did not finish within {benchmark.timeout:.0f} s")], \
            time.monotonic() - started
    seconds = time.monotonic() - started
    if process.returncode != 0:
        return [failed(f"{benchmark.name} benchmark", f"exited {process.returncode}: {last_line(err)}")], seconds
    try:
        return parse(out), seconds
    except ValueError as exc:
        return [failed(f"{benchmark.name} benchmark", f"{exc}: {last_line(err)}")], seconds


def machine() -> dict:
    return {"machine": " ".join(platform.uname()), "cpus": os.cpu_count(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery, figures mean nothing")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help=f"only this benchmark (repeatable): {', '.join(b.name for b in BENCHMARKS)}")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes (default: %(default)s)")
    parser.add_argument("--markdown", action="store_true",
                        help="run nothing: print the last results as docs/PERFORMANCE.md's table")
    args = parser.parse_args(argv)
    if args.markdown:
        saved = json.loads(args.results.read_text())
        names = {f.name for f in fields(Figure)}
        print(markdown_table(Figure(**{k: v for k, v in item.items() if k in names}) for item in saved["figures"]))
        return 0
    unknown = sorted(set(args.only or ()) - {b.name for b in BENCHMARKS})
    if unknown:
        parser.error(f"unknown benchmark {', '.join(map(repr, unknown))}; known: {', '.join(b.name for b in BENCHMARKS)}")
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]

    started, at_start = time.monotonic(), machine()
    figures: list[Figure] = []
    runs = []
    for benchmark in chosen:
        print(f"{benchmark.name}: running {benchmark.script}…", file=sys.stderr, flush=True)
        got, seconds = run_benchmark(benchmark, quick=args.quick)
        figures += got
        runs.append({"name": benchmark.name, "script": benchmark.script, "seconds": round(seconds, 1),
                     "figures": [f.name for f in got], "failed": any(f.error for f in got)})
        print(f"{benchmark.name}: {len(got)} figure(s) in {seconds:.0f} s", file=sys.stderr, flush=True)
    total = time.monotonic() - started

    promised = [f for f in figures if f.passed is not None]
    print(table(figures))
    print(f"{sum(bool(f.passed) for f in promised)} of {len(promised)} targets met; {len(figures)} figures from "
          f"{len(chosen)} benchmark(s) in {total:.0f} s{' (--quick: sizes too small to mean anything)' if args.quick else ''}")
    args.results.write_text(json.dumps({
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick, **at_start,
        "total_seconds": round(total, 1), "benchmarks": runs, "figures": [f.as_json() for f in figures],
    }, indent=2, ensure_ascii=False) + "\n")
    failures = [f for f in figures if f.error or (f.missed_beyond_noise and not args.quick)]
    for f in failures:
        print(f"FAILED: {f.name}: " + (f.error or f"{f.value} {f.unit} against {f.comparison} {f.target} {f.unit} "
                                       f"(noise ± {f.noise})"), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
