"""engine/v1: a run written as a V1 directory reads back as the same state; V1's own directories read too."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from engine import Runner
from engine.scenario import load_scenario_folder
from engine.state import CommunicationKind, PhaseName, RunStatus
from engine.v1 import RunDirectoryError, V1RunDirectory, next_run_folder, read_run_directory
from engine.v1.state_file import v1_status
from legacy_v1.tests.folders import write_v1_scenario

V1_SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "v1-samples"
needs_samples = pytest.mark.skipif(not V1_SAMPLES.is_dir(), reason=f"V1 samples not found at {V1_SAMPLES}")


def test_a_state_written_as_v1_files_reads_back_unchanged(tmp_path):
    scenario = load_scenario_folder(write_v1_scenario(tmp_path))
    directory = V1RunDirectory(tmp_path / "run", scenario, scenario_path="river-compact")
    state = Runner(persistence=directory).run(scenario, max_turns=2)
    read, document = read_run_directory(tmp_path / "run", scenario=scenario)
    assert read == state
    assert document["status"] == "halted" and document["halt_reason"] == "end_turn"


def test_a_run_stopped_inside_a_turn_resumes_from_its_phase(tmp_path):
    scenario = load_scenario_folder(write_v1_scenario(tmp_path))
    runner = Runner(persistence=V1RunDirectory(tmp_path / "run", scenario, scenario_path="x"))

    @runner.on("phase_started")
    def pause_at_world_update(event):
        if event.data["turn"] == 2 and event.data["phase"] == "world_update":
            runner.pause()

    paused = runner.run(scenario)
    assert paused.status is RunStatus.PAUSED and paused.turn == 1 and PhaseName.DECISION in paused.completed_phases
    read, document = read_run_directory(tmp_path / "run", scenario=scenario)
    assert read == paused and document["halt_reason"] == "manual"


def test_v1_statuses():
    scenario_turns = 3
    base = dict(run_id="r", scenario_name="s", actors=(), world_states=())
    from engine.state import ScenarioState

    def status(**changes):
        return tuple(v1_status(ScenarioState(**{**base, **changes}), scenario_turns))

    assert status(status=RunStatus.COMPLETED, turn=3) == ("completed", None)
    assert status(status=RunStatus.COMPLETED, turn=2) == ("halted", "end_turn")
    assert status(status=RunStatus.HALTED, halt_reason="credit limit $1.0000 reached: …") == ("halted", "credit_limit")
    assert status(status=RunStatus.PAUSED, halt_reason="interrupted (CancelledError)") == ("halted", "manual")
    assert status(status=RunStatus.PAUSED, halt_reason="turn 2, phase decision: HTTP 429 Too Many Requests") == ("halted", "rate_limit")
    assert status(status=RunStatus.PAUSED, halt_reason="turn 2, phase decision: HTTP 503") == ("halted", "api_error")
    assert status(status=RunStatus.FAILED, error="boom") == ("halted", "error")
    assert status(status=RunStatus.HALTED, halt_reason="branched") == ("halted", "branched")
    assert status(status=RunStatus.RUNNING) == ("running", None)


def test_next_run_folder_counts_from_the_highest(tmp_path):
    assert next_run_folder(tmp_path / "none") == tmp_path / "none" / "run-001"
    for name in ("run-001", "run-004", "run-x", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "run-009").write_text("a file, not a run")
    assert next_run_folder(tmp_path) == tmp_path / "run-005"


@pytest.mark.parametrize("content", ["", "{", "[]", '{"world_state": 3}', '{"world_state": {"states": {}}, "actors": {"a": {}}}'])
def test_a_broken_state_file_names_the_file(tmp_path, content):
    (tmp_path / "scenario-state.json").write_text(content)
    with pytest.raises(RunDirectoryError, match="scenario-state.json"):
        read_run_directory(tmp_path)


@needs_samples
def test_reads_a_completed_run_written_by_v1():
    state, document = read_run_directory(V1_SAMPLES / "runs" / "test-coalition-3actors-run-001")
    assert state.status is RunStatus.COMPLETED and state.turn == 3
    assert [w.turn for w in state.world_states] == [0, 1, 2, 3]
    assert {a.short_name for a in state.actors} == {"us", "eu", "china"}
    assert len(state.decisions) == 9 and {d.actor for d in state.decisions} == {"us", "eu", "china"}
    decision = state.decisions_in(1)["us"]
    assert decision.long_term_goals and decision.short_term_priorities and decision.action
    kinds = {m.kind for m in state.communications}
    assert kinds == {CommunicationKind.BILATERAL, CommunicationKind.COALITION}
    replies = [m for m in state.communications if m.in_reply_to]
    assert replies and all(m.recipients for m in state.communications)
    assert max(len(m.id) for m in state.communications) <= 32  # ids fit a database column, whatever the names
    assert state.total_tokens == document["cost_tracker_state"]["total_tokens"]


@needs_samples
def test_reads_a_halted_run_written_by_v1():
    state, document = read_run_directory(V1_SAMPLES / "runs" / "test-regulation-negotiation-run-halted")
    assert (state.status, state.turn, state.halt_reason) == (RunStatus.HALTED, 1, "end_turn")
    assert state.total_tokens == json.loads((V1_SAMPLES / "runs" / "test-regulation-negotiation-run-halted" / "scenario-state.json").read_text())["cost_tracker_state"]["total_tokens"]
    assert document["execution_metadata"]["output_path"]
    assert isinstance(datetime.fromisoformat(document["execution_metadata"]["started_at"]), datetime)
