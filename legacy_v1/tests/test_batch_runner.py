"""V1's batch command line over the engine: the files it writes, real costs, the budget, resume, the analyzer."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine.testing.fake_llm import FakeLLMServer
from engine.v1 import read_run_directory
from legacy_v1 import batch_analyzer, batch_runner

ROOT = Path(__file__).resolve().parents[2]
SUMMIT = ROOT / "scenarios" / "library" / "ai-summit"
T_975_DF2 = 4.302652729911275
RUN_FILES = {"scenario-state.json", "costs.json", "metrics.json", "scenario.log", "world-state-000.md", "world-state-001.md"}


def run(main, *argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def write_config(folder: Path, **changes) -> Path:
    config = {
        "experiment_name": "Chair models",
        "description": "Which model should chair the summit?",
        "base_scenario": str(SUMMIT),
        "variations": [{"type": "actor_model", "actor": "norvale", "values": ["openai/gpt-4o-mini", "openai/gpt-4o"]}],
        "runs_per_variation": 2,
        "max_parallel": 2,
        "turns": 1,
        "output_dir": "experiments/chair",
        **changes,
    }
    path = folder / "batch-config.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in config.items() if v is not None}, sort_keys=False))
    return path


def ledger_total(run_dir: Path) -> float:
    state, _ = read_run_directory(run_dir)
    return sum(record.cost for record in state.costs)


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # output_dir is relative to the folder the batch runs in, as in V1
    for variable in ("OPENROUTER_API_KEY", "OPENAI_API_KEY", "OLLAMA_BASE_URL", "SCENARIOLAB_LLM_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


@pytest.fixture
def priced_server(here, monkeypatch):
    """The loopback OpenAI-compatible server; the summit's models have real prices, so calls cost money."""
    server = FakeLLMServer().start_in_thread()
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", server.base_url)
    yield server
    server.stop()


def test_the_batch_writes_v1_files_and_its_costs_are_the_runs_ledgers(here, priced_server):
    code, out, err = run(batch_runner.main, write_config(here, budget_limit=2.0, cost_per_run_limit=0.3))
    assert code == 0, out + err
    batch = here / "experiments" / "chair"
    assert {p.name for p in batch.iterdir()} == {"batch-config.yaml", "batch-state.json", "batch-costs.json",
                                                 "batch-summary.json", "runs", "scenarios", "analysis"}
    names = ["var-001-run-001", "var-001-run-002", "var-002-run-001", "var-002-run-002"]
    assert sorted(p.name for p in (batch / "runs").iterdir()) == names
    for name in names:
        assert RUN_FILES <= {p.name for p in (batch / "runs" / name).iterdir()}
        assert read_json(batch / "runs" / name / "scenario-state.json")["status"] == "completed"
    assert {p.name for p in (batch / "analysis").iterdir()} == {
        "metrics-analysis.json", "variation-statistics.json", "patterns.json", "analysis-report.md"}

    costs = read_json(batch / "batch-costs.json")
    ledgers = {name: ledger_total(batch / "runs" / name) for name in names}
    assert {e["run_id"]: e["cost"] for e in costs["run_costs"]} == pytest.approx(ledgers)
    assert costs["summary"]["total_spent"] == pytest.approx(sum(ledgers.values()))
    assert sum(ledgers.values()) > 0, "real costs, not zeros"
    billed = sum(read_json(batch / "runs" / n / "costs.json")["totals"]["total_cost_usd"] for n in names)
    assert costs["summary"]["total_spent"] == pytest.approx(billed)
    assert (costs["summary"]["runs_completed"], costs["summary"]["runs_failed"]) == (4, 0)
    assert costs["variation_statistics"]["2"]["num_runs"] == 2
    assert costs["summary"]["remaining_budget"] == pytest.approx(2.0 - sum(ledgers.values()))

    state = read_json(batch / "batch-state.json")
    assert sorted(state["completed_runs"]) == names and state["failed_runs"] == []
    assert state["variations"][1] == {"variation_id": 2, "description": "norvale=gpt-4o", "modifications": {
        "actor_models": {"norvale": "openai/gpt-4o"}, "scenario_overrides": {}}}
    summary = read_json(batch / "batch-summary.json")
    assert (summary["total_variations"], summary["total_runs_planned"], summary["runs_completed"]) == (2, 4, 4)
    assert summary["cost_summary"]["total_spent"] == costs["summary"]["total_spent"]
    # Each run's scenario-state.json names the folder its variation plays, which holds that variation's model.
    played = read_json(batch / "runs" / "var-002-run-001" / "scenario-state.json")["scenario_path"]
    assert yaml.safe_load((Path(played) / "actors" / "norvale.yaml").read_text())["llm_model"] == "openai/gpt-4o"
    assert "var-002-run-001: completed" in out


def test_the_budget_stops_the_batch_before_a_run_that_could_exceed_it(here, priced_server):
    # Each run may spend $0.10; the budget is $0.15: runs start while the next one's limit fits what is left.
    code, out, _ = run(batch_runner.main, write_config(here, budget_limit=0.15, cost_per_run_limit=0.10, max_parallel=1))
    batch = here / "experiments" / "chair"
    costs = read_json(batch / "batch-costs.json")
    spent = costs["summary"]["total_spent"]
    started = len(list((batch / "runs").iterdir()))
    assert code == 3 and "Stopped: budget:" in out
    assert spent <= 0.15
    assert spent + 0.10 > 0.15, "it stopped only when the next run's limit no longer fit"
    assert started == len(costs["run_costs"]) < 4
    assert read_json(batch / "batch-summary.json")["stopped"].startswith("budget:")

    # A larger budget, and --resume goes on without replaying what was done.
    first = (batch / "runs" / "var-001-run-001" / "scenario-state.json").read_text()
    code, out, _ = run(batch_runner.main, write_config(here, budget_limit=1.0, cost_per_run_limit=0.10, max_parallel=1), "--resume")
    assert code == 0, out
    assert (batch / "runs" / "var-001-run-001" / "scenario-state.json").read_text() == first
    costs = read_json(batch / "batch-costs.json")
    assert len(costs["run_costs"]) == 4 and costs["summary"]["runs_completed"] == 4
    assert costs["summary"]["total_spent"] == pytest.approx(sum(ledger_total(p) for p in (batch / "runs").iterdir()))


def test_resume_continues_runs_halted_by_their_limit_from_their_directories(here, priced_server):
    config = write_config(here, cost_per_run_limit=0.01, runs_per_variation=1,
                          variations=[{"type": "actor_model", "actor": "norvale", "values": ["openai/gpt-4o-mini"]}])
    code, out, _ = run(batch_runner.main, config)
    batch = here / "experiments" / "chair"
    state = read_json(batch / "batch-state.json")
    assert code == 0 and state["completed_runs"] == []
    assert state["failed_runs"][0]["run_id"] == "var-001-run-001" and state["failed_runs"][0]["status"] == "cost_limit_exceeded"
    halted_cost = read_json(batch / "batch-costs.json")["run_costs"][0]["cost"]
    assert 0 < halted_cost <= 0.01

    code, out, _ = run(batch_runner.main, write_config(here, cost_per_run_limit=0.5, runs_per_variation=1,
                       variations=[{"type": "actor_model", "actor": "norvale", "values": ["openai/gpt-4o-mini"]}]), "--resume")
    assert code == 0, out
    state = read_json(batch / "batch-state.json")
    assert state["completed_runs"] == ["var-001-run-001"] and state["failed_runs"] == []
    costs = read_json(batch / "batch-costs.json")
    (entry,) = costs["run_costs"]
    ledger = ledger_total(batch / "runs" / "var-001-run-001")
    assert entry["cost"] == pytest.approx(ledger) and ledger > halted_cost, "one entry: the run's whole ledger, both attempts"
    assert costs["summary"]["total_spent"] == pytest.approx(ledger)


def test_a_dry_run_prints_the_plan_and_writes_nothing(here):
    code, out, _ = run(batch_runner.main, write_config(here, budget_limit=5, provider="offline"), "--dry-run")
    assert code == 0
    for text in ("BATCH PREVIEW", "Total runs: 4", "Execution: parallel, 2 runs at once", "Estimated cost: $0.0000",
                 "Estimated time: about", "2. norvale=gpt-4o", "var-002-run-002 (seed 8)", "Output directory: experiments/chair"):
        assert text in out, out
    assert not (here / "experiments").exists()


@pytest.mark.parametrize(("changes", "message"), [
    ({"base_scenario": "nowhere"}, "is not a scenario folder"),
    ({"runs_per_variation": 0}, "runs_per_variation"),
    ({"variations": [{"type": "actor_model", "actor": "ghost", "values": ["m/x"]}]}, "no actor 'ghost'"),
    ({"runs_per_variaton": 2}, "runs_per_variaton: unknown key; did you mean 'runs_per_variation'?"),
    ({"variations": [{"type": "scenario_parameter", "parameter": "context_window_sise", "values": [1, 2]}]},
     "did you mean 'context_window_size'?"),
])
def test_bad_configs_exit_2_naming_the_problem(here, changes, message):
    code, _, err = run(batch_runner.main, write_config(here, **changes))
    assert code == 2 and message in err


def test_the_analyzer_matches_a_hand_computation(here):
    """Offline, three seeded runs per variation: the statistics by hand from each run's metrics.json."""
    config = write_config(here, provider="offline", runs_per_variation=3, seeds=[3, 4, 5],
                          variations=[{"type": "scenario_parameter", "parameter": "context_window_size", "values": [1, 2]}])
    code, out, _ = run(batch_runner.main, config)
    assert code == 0, out
    batch = here / "experiments" / "chair"
    code, out, _ = run(batch_analyzer.main, batch, "--report")
    assert code == 0 and "# Batch Analysis Report" in out and "**Configuration:** context_window_size=2" in out

    finals = {1: [], 2: []}
    for folder in sorted((batch / "runs").iterdir()):
        finals[int(folder.name.split("-")[1])].append(read_json(folder / "metrics.json")["final_metrics"])
    stats = read_json(batch / "analysis" / "variation-statistics.json")
    for variation, runs in finals.items():
        entry = stats[str(variation)]
        assert (entry["total_runs"], entry["successful_runs"], entry["success_rate"]) == (3, 3, 1.0)
        assert entry["cost"] == {"total": 0.0, "mean": 0.0, "min": 0.0, "max": 0.0}
        for name in runs[0]:
            values = [float(run[name]) for run in runs]
            mean = sum(values) / 3
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
            m = entry["metrics"][name]
            assert (m["count"], m["min"], m["max"], m["median"]) == (3, min(values), max(values), statistics.median(values))
            assert m["mean"] == pytest.approx(mean) and m["stdev"] == pytest.approx(sd)
            assert m["ci95_low"] == pytest.approx(mean - T_975_DF2 * sd / math.sqrt(3))
            assert m["ci95_high"] == pytest.approx(mean + T_975_DF2 * sd / math.sqrt(3))
    overall = read_json(batch / "analysis" / "metrics-analysis.json")
    name = next(iter(overall))
    everything = [float(run[name]) for runs in finals.values() for run in runs]
    assert overall[name]["count"] == 6 and overall[name]["mean"] == pytest.approx(sum(everything) / 6)
    patterns = read_json(batch / "analysis" / "patterns.json")
    assert (patterns["total_runs"], patterns["success_rate"], patterns["best_variation"]["variation_id"]) == (6, 1.0, 1)
    assert (batch / "analysis" / "analysis-report.md").read_text().startswith("# Batch Analysis Report")


def test_the_analyzer_needs_a_batch_directory(here):
    code, _, err = run(batch_analyzer.main, here / "nothing")
    assert code == 2 and "Runs directory not found" in err


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_saves_the_runs_and_books_their_costs_then_resume_finishes(here, monkeypatch):
    server = FakeLLMServer(latency=0.2).start_in_thread()
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", server.base_url)
    try:
        config = write_config(here, runs_per_variation=1)
        batch = here / "experiments" / "chair"
        # Started as a shell's background job is (SIGINT ignored): Ctrl-C must stop it all the same.
        process = subprocess.Popen([sys.executable, str(ROOT / "legacy_v1" / "batch_runner.py"), str(config)], cwd=here,
                                   env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   preexec_fn=ignore_sigint)
        deadline = time.monotonic() + 60
        while server.stats["completions"] < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 130, out
        assert "--resume" in out
        costs = read_json(batch / "batch-costs.json")
        ledgers = {p.name: ledger_total(p) for p in (batch / "runs").iterdir()}
        assert {e["run_id"]: e["cost"] for e in costs["run_costs"]} == pytest.approx(ledgers)
        assert sum(ledgers.values()) > 0
        assert all(f["error"].startswith("interrupted") for f in read_json(batch / "batch-state.json")["failed_runs"])

        code, out, _ = run(batch_runner.main, config, "--resume")
        assert code == 0, out
        state = read_json(batch / "batch-state.json")
        assert sorted(state["completed_runs"]) == ["var-001-run-001", "var-002-run-001"] and state["failed_runs"] == []
        costs = read_json(batch / "batch-costs.json")
        assert costs["summary"]["total_spent"] == pytest.approx(sum(ledger_total(p) for p in (batch / "runs").iterdir()))
    finally:
        server.stop()
