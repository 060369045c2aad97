"""V1's command line over the engine: the files it writes, halts and resumes, branches, and bad input."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.testing.fake_llm import FakeLLMServer
from legacy_v1.run_scenario import main
from engine.testing.v1_folders import write_v1_scenario

ROOT = Path(__file__).resolve().parents[2]
# The original project's folders and runs sit beside the repository (../shared/v1-samples), in CI as here.
V1_SAMPLES = ROOT.parent / "shared" / "v1-samples"
STATE_KEYS = {
    "scenario_name", "scenario_path", "status", "halt_reason", "current_turn", "total_turns", "completed_turns",
    "world_state", "actors", "cost_tracker_state", "metrics_tracker_state", "communication_manager_state",
    "execution_metadata",
}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def names_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def offline(monkeypatch):
    for variable in ("OPENROUTER_API_KEY", "OPENAI_API_KEY", "OLLAMA_BASE_URL", "SCENARIOLAB_LLM_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def priced_server(monkeypatch):
    """The loopback OpenAI-compatible server; gpt-4o-mini has a real price, so calls cost money."""
    server = FakeLLMServer().start_in_thread()
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", server.base_url)
    yield server
    server.stop()


# ---- the golden run ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("metrics", ["dict", "list"])
def test_a_three_turn_run_writes_exactly_the_v1_files(tmp_path, offline, metrics):
    folder = write_v1_scenario(tmp_path, metrics=metrics)
    out_dir = tmp_path / "run"
    code, out, err = run(folder, "-o", out_dir)
    assert code == 0, err
    assert "offline" in out and "Estimated cost" in out

    state = read_json(out_dir / "scenario-state.json")
    actors = {"highland": "Highland Republic", "valley": "Valley Federation", "delta": "Delta Cities/Ports"}
    talks = {
        f"{channel['channel_type']}-{'-'.join(p.replace('/', '-') for p in sorted(channel['participants']))}-{channel['turn']:03d}.md"
        for channel in state["communication_manager_state"]["channels"].values()
    }
    assert any(t.startswith("bilateral-") for t in talks) and any(t.startswith("coalition-") for t in talks)
    assert "Delta Cities-Ports" in " ".join(talks)  # '/' in a name never makes a sub-folder
    expected = {
        *(f"world-state-{t:03d}.md" for t in range(4)),
        *(f"{short}-{t:03d}.md" for short in actors for t in range(1, 4)),
        *(f"validation-{t:03d}.md" for t in range(1, 4)),
        *talks,
        "validation-summary.md", "scenario-state.json", "costs.json", "metrics.json", "scenario.log",
    }
    assert names_in(out_dir) == expected

    # Markdown headers as V1 wrote them.
    world = (out_dir / "world-state-002.md").read_text(encoding="utf-8")
    assert re.match(r"# World State - Turn 2\n\n\*\*Scenario:\*\* River Compact\n\n\*\*Turn Duration:\*\* 1 season\n\n"
                    r"\*\*Generated:\*\* \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n\n---\n\n## Current Situation\n", world)
    assert "## Actions Taken This Turn" in world and "### Valley Federation" in world
    assert "heatwave" in world  # the scheduled outside event of turn 2
    assert "offline provider" in world
    decision = (out_dir / "valley-001.md").read_text(encoding="utf-8")
    assert decision.startswith("# Valley Federation - Turn 1\n\n**Scenario:** River Compact\n\n**Turn Duration:** 1 season\n")
    assert [line for line in decision.splitlines() if line.startswith("## ")] == ["## Current Goals", "## Reasoning", "## Action"]
    talk = (out_dir / sorted(talks)[0]).read_text(encoding="utf-8")
    assert re.match(r"# (Bilateral Negotiation|Coalition Communication) - Turn \d\n\n\*\*Scenario:\*\* River Compact\n\n"
                    r"\*\*Participants:\*\* .+\n\n\*\*Generated:\*\* .+\n\n---\n\n## Messages\n\n### ", talk)
    report = (out_dir / "validation-001.md").read_text(encoding="utf-8")
    assert report.startswith("# Validation Report - Turn 1\n\n**Generated:**")
    assert "## Actor Decision Consistency" in report and "## World State Coherence" in report and "*Tokens used: " in report
    assert "## Summary Statistics" in (out_dir / "validation-summary.md").read_text(encoding="utf-8")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - scenario_lab - INFO - ", (out_dir / "scenario.log").read_text(encoding="utf-8"))
    assert " - DEBUG - event turn_completed" in (out_dir / "scenario.log").read_text(encoding="utf-8")

    # scenario-state.json
    assert set(state) == STATE_KEYS
    assert (state["status"], state["halt_reason"], state["current_turn"], state["total_turns"]) == ("completed", None, 3, 3)
    assert state["completed_turns"] == [1, 2, 3]
    world_state = state["world_state"]
    assert {"current_state", "current_turn", "turn_duration", "scenario_name", "states", "actor_decisions"} <= set(world_state)
    assert sorted(world_state["states"]) == ["0", "1", "2", "3"]
    assert set(world_state["actor_decisions"]["1"]) == set(actors.values())
    entry = world_state["actor_decisions"]["1"]["Valley Federation"]
    assert {"goals", "reasoning", "action", "raw_response", "tokens_used"} <= set(entry) and entry["tokens_used"] > 0
    assert state["actors"]["delta"] | {"control": None} == {"name": "Delta Cities/Ports", "short_name": "delta", "llm_model": "openai/gpt-4o-mini", "control": None}
    assert {"metrics_by_turn", "final_metrics"} <= set(state["metrics_tracker_state"])
    assert {"actor_names", "channels", "channels_by_turn"} <= set(state["communication_manager_state"])
    assert {"started_at", "last_updated", "output_path"} <= set(state["execution_metadata"])
    assert "branched_from" not in state["execution_metadata"]

    # costs.json: V1's shape, the ledger's numbers.
    costs = read_json(out_dir / "costs.json")
    assert set(costs) == {"scenario_execution", "costs_by_actor", "costs_by_turn", "world_state_costs", "totals", "validation"}
    assert set(costs["scenario_execution"]) == {"start_time", "end_time", "duration_seconds"}
    ledger = state["cost_tracker_state"]["records"]
    assert costs["totals"] == {"total_tokens": sum(r["input_tokens"] + r["output_tokens"] for r in ledger), "total_cost_usd": 0.0}
    for name, entry in costs["costs_by_actor"].items():
        short = next(s for s, n in actors.items() if n == name)
        calls = [r for r in ledger if r["actor"] == short and r["phase"] in ("communication", "decision")]
        assert len(entry["turns"]) == len(calls) > 3  # every call listed, talks included (V1 kept one per turn)
        assert entry["total_tokens"] == sum(r["input_tokens"] + r["output_tokens"] for r in calls)
    assert set(costs["costs_by_turn"]) == {"1", "2", "3"}
    assert set(costs["costs_by_turn"]["1"]) == {"actor_costs", "world_state_cost", "total"}
    assert [line["turn"] for line in costs["world_state_costs"]] == [1, 2, 3]
    validation_lines = [r for r in ledger if r["phase"] == "validation"]
    assert costs["validation"]["total_tokens"] == sum(r["input_tokens"] + r["output_tokens"] for r in validation_lines) > 0
    assert costs["validation"]["checks_performed"] == 3 * (3 + 1)  # per actor, plus the world check, each turn

    # metrics.json
    metrics_doc = read_json(out_dir / "metrics.json")
    assert set(metrics_doc) == {"scenario", "metrics_definitions", "metrics_by_turn", "final_metrics", "summary_statistics"}
    assert metrics_doc["scenario"] == "River Compact"
    assert "flow_share" in metrics_doc["metrics_definitions"]
    for stats in metrics_doc["summary_statistics"].values():
        assert set(stats) == {"min", "max", "mean", "count", "values"} and stats["count"] == len(stats["values"])
    if metrics_doc["metrics_by_turn"]:
        last = max(metrics_doc["metrics_by_turn"], key=int)
        assert metrics_doc["final_metrics"] == metrics_doc["metrics_by_turn"][last]


def test_runs_are_numbered_in_output_by_scenario_folder_name(tmp_path, offline, monkeypatch):
    folder = write_v1_scenario(tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    assert run(folder, "--end-turn", "1")[0] == 0
    (tmp_path / "output" / "river-compact" / "run-007").mkdir()
    code, out, _ = run(folder, "--end-turn", "1")
    assert code == 0 and "output/river-compact/run-008" in out
    assert sorted(p.name for p in (tmp_path / "output" / "river-compact").iterdir()) == ["run-001", "run-007", "run-008"]


# ---- halts and resumes -------------------------------------------------------------------------------------
def comparable(state: dict) -> dict:
    """What must be identical between two runs of the same seed, timestamps and run ids aside."""
    world = state["world_state"]
    ledger = [{k: v for k, v in r.items() if k != "timestamp"} for r in state["cost_tracker_state"]["records"]]
    return {
        "states": world["states"],
        "decisions": {t: {a: {k: v for k, v in d.items()} for a, d in by.items()} for t, by in world["actor_decisions"].items()},
        "messages": [(c["channel_type"], c["participants"], c["turn"], [(m["sender"], m["content"]) for m in c["messages"]])
                     for c in state["communication_manager_state"]["channels"].values()],
        "ledger": sorted(ledger, key=lambda r: json.dumps(r, sort_keys=True)),
        "metrics": state["metrics_tracker_state"]["metrics_by_turn"],
    }


def test_end_turn_halts_and_resume_completes_the_same_run(tmp_path, offline):
    folder = write_v1_scenario(tmp_path)
    code, out, _ = run(folder, "-o", tmp_path / "a", "--max-turns", "2")  # V1's old name for --end-turn
    assert code == 0 and f"--resume {tmp_path / 'a'}" in out
    halted = read_json(tmp_path / "a" / "scenario-state.json")
    assert (halted["status"], halted["halt_reason"], halted["current_turn"]) == ("halted", "end_turn", 2)
    assert not (tmp_path / "a" / "costs.json").exists() and not (tmp_path / "a" / "world-state-003.md").exists()
    started = halted["execution_metadata"]["started_at"]

    code, out, _ = run("--resume", tmp_path / "a")
    assert code == 0, out
    resumed = read_json(tmp_path / "a" / "scenario-state.json")
    assert (resumed["status"], resumed["current_turn"]) == ("completed", 3)
    assert resumed["execution_metadata"]["started_at"] == started
    assert (tmp_path / "a" / "costs.json").exists() and (tmp_path / "a" / "world-state-003.md").exists()

    assert run(folder, "-o", tmp_path / "b")[0] == 0  # the same run, uninterrupted
    assert comparable(resumed) == comparable(read_json(tmp_path / "b" / "scenario-state.json"))
    assert run("--resume", tmp_path / "a")[1].startswith(f"{tmp_path / 'a'} has already completed turn 3")


def test_the_credit_limit_halts_and_a_higher_limit_resumes(tmp_path, priced_server):
    folder = write_v1_scenario(tmp_path)
    code, out, _ = run(folder, "-o", tmp_path / "run", "--credit-limit", "0.002")
    assert code == 3 and "--credit-limit <higher USD>" in out
    halted = read_json(tmp_path / "run" / "scenario-state.json")
    assert (halted["status"], halted["halt_reason"]) == ("halted", "credit_limit")
    spent = halted["cost_tracker_state"]["total_cost"]
    assert 0 < spent <= 0.002
    billed = priced_server.stats["prompt_tokens"] + priced_server.stats["completion_tokens"]
    assert halted["cost_tracker_state"]["total_tokens"] == billed  # every paid call is in the ledger

    code, out, _ = run("--resume", tmp_path / "run")  # the stored limit still holds
    assert code == 3
    code, out, _ = run("--resume", tmp_path / "run", "--credit-limit", "5")
    assert code == 0, out
    done = read_json(tmp_path / "run" / "scenario-state.json")
    assert done["status"] == "completed" and done["cost_tracker_state"]["total_cost"] > spent
    costs = read_json(tmp_path / "run" / "costs.json")
    billed = priced_server.stats["prompt_tokens"] + priced_server.stats["completion_tokens"]
    assert costs["totals"]["total_tokens"] == billed
    assert costs["totals"]["total_cost_usd"] == pytest.approx(sum(t["total"] for t in costs["costs_by_turn"].values()))


# ---- branches --------------------------------------------------------------------------------------------
def test_branch_at_turn_one_then_resume(tmp_path, offline, monkeypatch):
    folder = write_v1_scenario(tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    assert run(folder)[0] == 0
    source = Path("output/river-compact/run-001")
    code, out, _ = run("--branch-from", source, "--branch-at-turn", "1")
    child = Path("output/river-compact/run-002")
    assert code == 0 and f"--resume {child}" in out

    branched = read_json(child / "scenario-state.json")
    assert (branched["status"], branched["halt_reason"], branched["current_turn"]) == ("halted", "branched", 1)
    assert branched["execution_metadata"]["branched_from"] == str(source) and branched["execution_metadata"]["branch_point"] == 1
    assert all(r["turn"] <= 1 for r in branched["cost_tracker_state"]["records"])
    assert set(branched["metrics_tracker_state"]["metrics_by_turn"]) <= {"1"}
    assert not any(re.search(r"-00[23]\.md$", name) for name in names_in(child))
    for name in ("world-state-001.md", "valley-001.md"):
        assert (child / name).read_text(encoding="utf-8") == (source / name).read_text(encoding="utf-8")

    assert run("--resume", child)[0] == 0
    parent, resumed = read_json(source / "scenario-state.json"), read_json(child / "scenario-state.json")
    assert resumed["status"] == "completed" and resumed["execution_metadata"]["branch_point"] == 1
    assert resumed["world_state"]["states"]["1"] == parent["world_state"]["states"]["1"]
    assert resumed["world_state"]["actor_decisions"]["1"] == parent["world_state"]["actor_decisions"]["1"]
    first = [r for r in resumed["cost_tracker_state"]["records"] if r["turn"] <= 1]
    assert first == [r for r in parent["cost_tracker_state"]["records"] if r["turn"] <= 1]


@pytest.mark.parametrize(("argv", "message"), [
    (["--branch-from", "{run}"], "--branch-from needs --branch-at-turn"),
    (["--branch-from", "{run}", "--branch-at-turn", "3"], "completed turns 1 to 1"),
    (["--branch-at-turn", "1"], "--branch-at-turn needs --branch-from"),
    (["--resume", "{run}", "--branch-from", "{run}", "--branch-at-turn", "1"], "not both"),
    (["--resume", "{missing}"], "is not a run directory"),
    ([], "give SCENARIO_DIR"),
    (["{folder}", "--end-turn", "9"], "the scenario has turns 1 to 3"),
    (["{folder}", "-o", "{run}"], "already holds a run"),
])
def test_wrong_options_are_refused_with_exit_2(tmp_path, offline, argv, message):
    folder = write_v1_scenario(tmp_path)
    assert run(folder, "-o", tmp_path / "run", "--end-turn", "1")[0] == 0
    places = {"run": tmp_path / "run", "missing": tmp_path / "nowhere", "folder": folder}
    code, _, err = run(*(a.format(**{k: str(v) for k, v in places.items()}) for a in argv))
    assert code == 2 and message in err and "Traceback" not in err


def test_a_malformed_folder_gives_located_errors_and_exit_2(tmp_path, offline):
    folder = write_v1_scenario(tmp_path)
    (folder / "scenario.yaml").write_text((folder / "scenario.yaml").read_text() + "turn_duration: [oops\n")
    (folder / "actors" / "valley.yaml").write_text("name: Valley\nshort_name: valley\ngoals: 3\n")
    code, _, err = run(folder, "-o", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    assert re.search(r"scenario\.yaml:\d+: ", err) and "actors/valley.yaml:3: goals" in err
    assert not (tmp_path / "run").exists()  # nothing written for a run that never started


# ---- directories V1 itself wrote -------------------------------------------------------------------------
needs_samples = pytest.mark.skipif(not V1_SAMPLES.is_dir(), reason=f"V1 samples not found at {V1_SAMPLES}")


@needs_samples
def test_resumes_a_run_directory_written_by_v1(tmp_path, offline, monkeypatch):
    # V1 stored scenario_path relative to the folder it was started in: the folder above scenarios/.
    shutil.copytree(V1_SAMPLES / "scenarios" / "test-regulation-negotiation", tmp_path / "scenarios" / "test-regulation-negotiation")
    run_dir = tmp_path / "output" / "test-regulation-negotiation" / "run-001"
    shutil.copytree(V1_SAMPLES / "runs" / "test-regulation-negotiation-run-halted", run_dir)
    before = read_json(run_dir / "scenario-state.json")
    world_1 = (run_dir / "world-state-001.md").read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path / "output")  # not V1's folder: the path is found from the run directory

    code, out, err = run("--resume", run_dir)
    assert code == 0, out + err
    after = read_json(run_dir / "scenario-state.json")
    assert (after["status"], after["current_turn"], after["completed_turns"]) == ("completed", 3, [1, 2, 3])
    assert after["world_state"]["states"]["1"] == before["world_state"]["states"]["1"]
    assert after["world_state"]["actor_decisions"]["1"]["FrontierAI Technologies"]["action"] == \
        before["world_state"]["actor_decisions"]["1"]["FrontierAI Technologies"]["action"]
    assert (run_dir / "world-state-001.md").read_text(encoding="utf-8") == world_1  # V1's files are kept
    assert {"world-state-003.md", "regulator-003.md", "costs.json", "metrics.json", "validation-summary.md"} <= names_in(run_dir)
    # V1's ledger carries over: its tokens are part of the totals.
    costs = read_json(run_dir / "costs.json")
    assert costs["totals"]["total_tokens"] > before["cost_tracker_state"]["total_tokens"]
    assert costs["costs_by_actor"]["FrontierAI Technologies"]["turns"][:3] == \
        before["cost_tracker_state"]["costs_by_actor"]["FrontierAI Technologies"]["turns"]


@needs_samples
def test_resume_without_the_scenario_folder_says_how_to_pass_it(tmp_path, offline):
    run_dir = tmp_path / "run-001"
    shutil.copytree(V1_SAMPLES / "runs" / "test-regulation-negotiation-run-halted", run_dir)
    code, _, err = run("--resume", run_dir)
    assert code == 2 and "scenarios/test-regulation-negotiation" in err and "SCENARIO_DIR --resume" in err
    scenario = V1_SAMPLES / "scenarios" / "test-regulation-negotiation"
    assert run(scenario, "--resume", run_dir, "--end-turn", "2")[0] == 0
    assert read_json(run_dir / "scenario-state.json")["current_turn"] == 2


def test_the_script_runs_from_the_checkout_with_v1s_options():
    result = subprocess.run([sys.executable, "legacy_v1/run_scenario.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--output", "--resume", "--branch-from", "--branch-at-turn", "--end-turn", "--max-turns", "--credit-limit", "--verbose"):
        assert option in result.stdout


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_halts_as_manual_and_the_run_resumes(tmp_path, offline):
    folder = write_v1_scenario(tmp_path)
    run_dir = tmp_path / "run"
    server = FakeLLMServer(latency=0.4).start_in_thread()
    try:
        env = {**os.environ, "SCENARIOLAB_LLM_BASE_URL": server.base_url}
        with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
            # Started as a shell's background job is (SIGINT ignored): Ctrl-C must halt it all the same.
            process = subprocess.Popen([sys.executable, "legacy_v1/run_scenario.py", str(folder), "-o", str(run_dir)],
                                       cwd=ROOT, env=env, stdout=out, stderr=err, preexec_fn=ignore_sigint)
            deadline = time.monotonic() + 60
            while not (run_dir / "world-state-001.md").exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # wait until turn 1 is saved, so the interrupt lands inside turn 2
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 130
    finally:
        server.stop()
    assert "Resume with: python legacy_v1/run_scenario.py --resume" in (tmp_path / "stdout").read_text()
    assert "Traceback" not in (tmp_path / "stderr").read_text()
    halted = read_json(run_dir / "scenario-state.json")
    assert (halted["status"], halted["halt_reason"]) == ("halted", "manual") and halted["current_turn"] >= 1

    code, out, _ = run("--resume", run_dir)  # offline now: a resume may change provider
    assert code == 0, out
    assert read_json(run_dir / "scenario-state.json")["status"] == "completed"


# ---- damaged or edited run directories ---------------------------------------------------------------------
def test_a_resume_never_writes_outside_the_run_directory(tmp_path, offline):
    folder = write_v1_scenario(tmp_path)
    run_dir = tmp_path / "out" / "run"
    assert run(folder, "-o", run_dir, "--end-turn", "1")[0] == 0
    state = read_json(run_dir / "scenario-state.json")
    next(iter(state["world_state"]["actor_decisions"]["1"].values()))["short_name"] = "../../pwned"
    (run_dir / "scenario-state.json").write_text(json.dumps(state), encoding="utf-8")
    code, _, err = run("--resume", run_dir)
    assert code == 2 and "world_state.actor_decisions.1." in err and "'../../pwned' is not one of the run's actors" in err
    assert not list(tmp_path.rglob("pwned*"))


@pytest.mark.parametrize(("key", "value", "words"), [
    ("credit_limit", "lots", "execution_metadata.engine.credit_limit: expected a number"),
    ("turn_times", {"x": "2025-01-01T00:00:00"}, "execution_metadata.engine.turn_times.x: the key is not a turn number"),
])
def test_a_damaged_state_file_is_bad_input_naming_the_key(tmp_path, offline, key, value, words):
    folder = write_v1_scenario(tmp_path)
    assert run(folder, "-o", tmp_path / "run", "--end-turn", "1")[0] == 0
    state = read_json(tmp_path / "run" / "scenario-state.json")
    state["execution_metadata"]["engine"][key] = value
    (tmp_path / "run" / "scenario-state.json").write_text(json.dumps(state), encoding="utf-8")
    code, _, err = run("--resume", tmp_path / "run")
    assert code == 2 and words in err and "Traceback" not in err


@pytest.mark.parametrize("limit", ["inf", "nan", "-1"])
def test_a_credit_limit_that_is_not_a_positive_number_creates_nothing(tmp_path, offline, monkeypatch, limit):
    folder = write_v1_scenario(tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(folder, "--credit-limit", limit)
    assert code == 2 and "--credit-limit" in err and "positive number of USD" in err
    assert not (tmp_path / "output").exists()


# ---- halts by findings ---------------------------------------------------------------------------------------------
def test_a_halt_by_a_metric_threshold_exits_3(tmp_path, offline):
    folder = write_v1_scenario(tmp_path)
    (folder / "metrics.yaml").write_text(
        "metrics:\n  - name: tension\n    extraction: {type: keyword, keywords: [river], scoring: count}\n"
        "    thresholds: {critical: 0, halt_on_critical: true}\n", encoding="utf-8")
    code, out, _ = run(folder, "-o", tmp_path / "run")
    assert code == 3 and "metric tension reached its critical threshold" in out and "--resume" in out
    halted = read_json(tmp_path / "run" / "scenario-state.json")
    assert (halted["status"], halted["halt_reason"], halted["current_turn"]) == ("halted", "error", 0)  # V1's word


# ---- V1's metrics and public statements -------------------------------------------------------------------------------
def test_a_v1_boolean_metric_is_recorded_only_when_its_pattern_matches(tmp_path, offline):
    folder = write_v1_scenario(tmp_path)
    (folder / "metrics.yaml").write_text(
        "metrics:\n"
        "  seen:\n    extraction_method: regex\n    pattern: '(season)'\n    type: boolean\n"
        "  unseen:\n    extraction_method: regex\n    pattern: '(zeppelin armada)'\n    type: boolean\n", encoding="utf-8")
    assert run(folder, "-o", tmp_path / "run")[0] == 0
    table = read_json(tmp_path / "run" / "metrics.json")["metrics_by_turn"]
    assert table and all(values == {"seen": True} for values in table.values())


def test_a_v1_folder_has_no_public_statements_wherever_it_is_loaded(tmp_path, offline):
    from engine import Scenario

    folder = write_v1_scenario(tmp_path)
    assert Scenario.load(folder).config.features.communications.public is False  # as manage.py run_scenario loads it
    assert run(folder, "-o", tmp_path / "run", "--end-turn", "1")[0] == 0
    channels = read_json(tmp_path / "run" / "scenario-state.json")["communication_manager_state"]["channels"]
    assert channels and all(c["channel_type"] != "public" for c in channels.values())

    text = (folder / "scenario.yaml").read_text(encoding="utf-8")
    (folder / "scenario.yaml").write_text(text + "enable_public_statements: true\n", encoding="utf-8")
    assert Scenario.load(folder).config.features.communications.public is True
    (folder / "scenario.yaml").write_text(text + "features:\n  metrics_extraction: true\n", encoding="utf-8")
    assert Scenario.load(folder).config.features.communications.public is True  # this project's form: its default


def test_branch_at_turn_0_then_resume(tmp_path, offline):
    folder = write_v1_scenario(tmp_path)
    assert run(folder, "-o", tmp_path / "a", "--end-turn", "2")[0] == 0
    code, out, _ = run("--branch-from", tmp_path / "a", "--branch-at-turn", "0", "-o", tmp_path / "b")
    assert code == 0 and f"--resume {tmp_path / 'b'}" in out
    assert names_in(tmp_path / "b") == {"scenario-state.json", "world-state-000.md"}
    assert run("--resume", tmp_path / "b")[0] == 0
    assert read_json(tmp_path / "b" / "scenario-state.json")["status"] == "completed"


@needs_samples
def test_a_resumed_v1_directory_keeps_v1s_answers_and_token_counts(tmp_path, offline):
    scenario = tmp_path / "scenarios" / "test-regulation-negotiation"
    shutil.copytree(V1_SAMPLES / "scenarios" / "test-regulation-negotiation", scenario)
    run_dir = tmp_path / "output" / "run-001"
    shutil.copytree(V1_SAMPLES / "runs" / "test-regulation-negotiation-run-halted", run_dir)
    before = read_json(run_dir / "scenario-state.json")["world_state"]["actor_decisions"]["1"]
    assert run(scenario, "--resume", run_dir)[0] == 0
    after = read_json(run_dir / "scenario-state.json")["world_state"]["actor_decisions"]
    for name, entry in before.items():
        assert (after["1"][name]["raw_response"], after["1"][name]["tokens_used"]) == (entry["raw_response"], entry["tokens_used"])
    assert set(after) == {"1", "2", "3"} and all(e["tokens_used"] > 0 for e in after["2"].values())


def test_a_human_actor_without_a_terminal_halts_for_the_person(tmp_path, offline):
    folder = write_v1_scenario(tmp_path)
    actor = folder / "actors" / "valley.yaml"
    actor.write_text(actor.read_text() + "control: human\n")
    code, out, _ = run(folder, "-o", tmp_path / "run")
    assert code == 5 and "A person plays Valley Federation" in out
    state = read_json(tmp_path / "run" / "scenario-state.json")
    assert (state["status"], state["halt_reason"], state["current_turn"]) == ("halted", "manual", 0)
