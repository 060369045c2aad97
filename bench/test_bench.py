"""`python -m bench`: the figure shape, the table, failures kept as rows, and a quick run end to end.

Timing targets are never asserted here (the machine is shared): only that each figure is measured and shaped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, Benchmark, run_benchmark
from bench.figures import Figure, emit, failed, parse, table

ROOT = Path(__file__).resolve().parents[1]


def test_a_ceiling_and_a_floor_are_judged_by_their_comparison() -> None:
    assert Figure("ratio", 1.02, "", 1.05, "<=").passed is True
    assert Figure("ratio", 1.10, "", 1.05, "<=").passed is False
    assert Figure("speed-up", 1.9, "×", 1.8, ">=").passed is True
    assert Figure("speed-up", 1.2, "×", 1.8, ">=").passed is False
    assert Figure("start-up", 1.0, "s", 1.0, "<").passed is False
    assert Figure("ratio", 1.1, "", 1.05, "<=").ratio == pytest.approx(1.1 / 1.05)


def test_a_figure_without_target_is_not_judged_and_a_failed_one_misses_its_target() -> None:
    assert Figure("overhead", 27.0, "ms").passed is None
    assert Figure("overhead", 27.0, "ms").ratio is None
    missing = failed("p95", "cannot reach PostgreSQL", "ms", 250, "<")
    assert missing.value is None and missing.passed is False and missing.ratio is None


@pytest.mark.parametrize("target, comparison", [(1.0, ""), (None, "<="), (1.0, "≤")])
def test_a_target_and_its_comparison_come_together(target, comparison) -> None:
    with pytest.raises(ValueError):
        Figure("x", 1.0, "", target, comparison)


def test_figures_travel_through_a_script_output_line(capsys) -> None:
    sent = [Figure("a", 1.5, "s", 1.0, "<", note="n"), failed("b", "broke")]
    print("the script's own table")
    emit(sent)
    assert parse(capsys.readouterr().out) == sent
    with pytest.raises(ValueError, match="no figures"):
        parse("a table, but no figures line")


def test_the_table_shows_value_target_ratio_and_verdict() -> None:
    text = table([Figure("turn ratio", 1.2, "", 1.05, "<="), Figure("bus", 53755, "events/s"),
                  failed("p95, Redis", "cannot reach Redis", "ms")])
    lines = text.splitlines()
    assert [cell.strip() for cell in lines[0].split("|")] == ["figure", "value", "target", "ratio", ""]
    assert "1.2" in lines[2] and "<= 1.05" in lines[2] and "1.14" in lines[2] and "MISSED" in lines[2]
    assert "53 755 events/s" in lines[3]
    assert "failed" in lines[4] and "FAILED: cannot reach Redis" in lines[4]


def test_a_benchmark_that_crashes_or_prints_nothing_is_a_failed_row(tmp_path) -> None:
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('Traceback…', file=sys.stderr)\nprint('RuntimeError: no server', file=sys.stderr)\nsys.exit(3)\n")
    silent = tmp_path / "silent.py"
    silent.write_text("print('a table and nothing else')\n")
    [crashed], _ = run_benchmark(Benchmark("crash", str(crash)), quick=False)
    assert crashed.name == "crash benchmark" and crashed.error == "exited 3: RuntimeError: no server"
    [quiet], _ = run_benchmark(Benchmark("silent", str(silent)), quick=False)
    assert quiet.error.startswith("the benchmark printed no figures")


def test_a_benchmark_that_hangs_is_ended_with_its_children(tmp_path) -> None:
    hang = tmp_path / "hang.py"
    marker = tmp_path / "child.pid"
    hang.write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    [row], seconds = run_benchmark(Benchmark("hang", str(hang), timeout=1), quick=False)
    assert row.error == "did not finish within 1 s" and seconds < 10
    child = int(marker.read_text())
    # The grandchild was killed with the group: it is gone, or a zombie waiting for init to reap it. A SIGKILL
    # lands asynchronously (a clean-clone CI once read it still "running" just after), so allow it a moment.
    status = Path(f"/proc/{child}/status")
    deadline = time.monotonic() + 5
    while status.exists() and "zombie" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not status.exists() or "zombie" in status.read_text()


def test_an_unknown_benchmark_name_is_refused_with_the_known_ones() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown benchmark 'nope'" in done.stderr and "llm" in done.stderr and "Traceback" not in done.stderr


def test_a_quick_run_prints_one_table_and_writes_the_json(tmp_path) -> None:
    """Two benchmarks at tiny sizes, through the real command: one in this kind of process, one with a worker."""
    results = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "engine", "--only", "llm",
                           "--results", str(results)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("figure ") == 1 and "BENCH-FIGURES" not in done.stdout
    saved = json.loads(results.read_text())
    assert {"date", "quick", "machine", "cpus", "total_seconds", "benchmarks", "figures"} <= saved.keys()
    assert saved["quick"] is True and saved["cpus"] >= 1 and saved["total_seconds"] > 0
    assert [b["name"] for b in saved["benchmarks"]] == ["llm", "engine"]
    names = [f["name"] for f in saved["figures"]]
    assert names == [n for b in saved["benchmarks"] for n in b["figures"]]
    assert any("Huey worker" in n for n in names) and any("in-process" in n for n in names)
    assert any(n.startswith("engine overhead per turn") for n in names)
    for figure in saved["figures"]:
        assert figure["error"] == "" and isinstance(figure["value"], (int, float)) and figure["value"] > 0, figure
        assert (figure["target"] is None) == (figure["ratio"] is None) == (figure["passed"] is None), figure
        assert figure["name"] in done.stdout


def test_every_benchmark_has_a_script_and_a_quick_size() -> None:
    for benchmark in BENCHMARKS:
        assert (ROOT / "bench" / benchmark.script).is_file(), benchmark
        assert benchmark.quick, f"{benchmark.name} has no --quick sizes"


def test_the_v2_targets_are_measured_as_the_document_frames_them() -> None:
    """Event overhead (async and sync handlers), start-up, and turn time against the V1-like loop, each judged;
    Python's allocations against the loop beside them (the document's memory target is side_by_side's RSS)."""
    done = subprocess.run([sys.executable, "bench/v2_targets.py", "--turns", "2", "--repeats", "1", "--latency", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = {f.name: f for f in parse(done.stdout)}
    assert len(figures) == 5 and all(name.startswith("V2: ") for name in figures)
    for figure in figures.values():
        assert figure.error == "" and figure.value is not None, figure
    assert [name for name, figure in figures.items() if figure.target is None] == [
        "V2: Python allocations at the peak vs a V1-like monolithic loop"]
    assert figures["V2: start-up, new process → first model call"].value > 0


def test_a_turns_chain_takes_its_checks_beside_the_next_turns_talks():
    from bench.engine_overhead import critical_paths

    calls = [(1, "outreach", 0.2), (1, "outreach", 0.3), (1, "reply", 0.2), (1, "decision", 0.2), (1, "world_update", 0.2),
             (1, "metric", 0.1), (1, "validation", 0.6),
             (2, "outreach", 0.2), (2, "reply", 0.2), (2, "decision", 0.2), (2, "world_update", 0.2), (2, "metric", 0.1),
             (2, "validation", 0.1)]
    paths = critical_paths(calls)
    assert paths[1] == pytest.approx(0.3 + 0.2 + 0.2 + 0.2 + 0.1)  # its checks are turn 2's
    assert paths[2] == pytest.approx(max(0.2 + 0.2, 0.6) + 0.2 + 0.2 + 0.1 + 0.1)  # turn 1's checks outlast its talks


def test_a_miss_fails_the_bench_only_beyond_the_noise_it_measured() -> None:
    assert Figure("t", 1.04, "s", 1.0, "<=", noise=0.05).missed_beyond_noise is False  # within its own spread
    assert Figure("t", 1.04, "s", 1.0, "<=", noise=0.01).missed_beyond_noise is True
    assert Figure("speed-up", 1.7, "×", 1.8, ">=", noise=0.2).missed_beyond_noise is False
    assert Figure("t", 0.9, "s", 1.0, "<=").missed_beyond_noise is False  # met
    assert Figure("t", None, "s", 1.0, "<=", error="no server").missed_beyond_noise is True
    assert "missed within noise" in table([Figure("t", 1.04, "s", 1.0, "<=", noise=0.05)])
    assert "MISSED" in table([Figure("t", 1.04, "s", 1.0, "<=", noise=0.01)])


def test_the_docs_table_shows_value_noise_target_ratio_and_verdict() -> None:
    from bench.figures import markdown_table

    lines = markdown_table([Figure("start-up", 0.45, "s", 0.5, "<=", noise=0.01, note="median of 3"),
                            Figure("peak RSS", 80.0, "MB", 63, "<="), failed("api", "no server")]).splitlines()
    assert lines[2] == "| start-up | 0.45 ± 0.01 s | ≤ 0.5 s | 0.90 | met; median of 3 |"
    assert lines[3] == "| peak RSS | 80 MB | ≤ 63 MB | 1.27 | MISSED |"
    assert lines[4] == "| api | failed |  |  | no server |"


def test_a_p95_taken_once_gets_the_noise_of_its_two_halves() -> None:
    from bench.figures import p95, p95_noise

    assert p95([float(n) for n in range(1, 101)]) == 95
    steady = [10.0] * 50 + [10.0] * 50
    assert p95_noise(steady) == 0
    assert p95_noise([10.0] * 50 + [30.0] * 50) == 10  # the second half was slower: a p95 this far apart is noise
