"""engine/v1: a run written as a V1 directory reads back as the same state; V1's own directories read too."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from engine import Runner
from engine.scenario import load_scenario_folder
from engine.state import CommunicationKind, PhaseType, ScenarioStatus
from engine.v1 import (
    RunDirectoryError,
    RunFilesNotWritten,
    V1RunDirectory,
    branch_run_directory,
    conversation_file_name,
    next_run_folder,
    read_run_directory,
)
from engine.v1.files import validation_report_markdown
from engine.v1.state_file import v1_status
from engine.testing.v1_folders import write_v1_scenario

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
    assert paused.status is ScenarioStatus.PAUSED and paused.turn == 1 and PhaseType.DECISION in paused.completed_phases
    read, document = read_run_directory(tmp_path / "run", scenario=scenario)
    assert read == paused and document["halt_reason"] == "manual"


def test_v1_statuses():
    scenario_turns = 3
    base = dict(run_id="r", scenario_name="s", actors=(), world_states=())
    from engine.state import ScenarioState

    def status(**changes):
        return tuple(v1_status(ScenarioState(**{**base, **changes}), scenario_turns))

    assert status(status=ScenarioStatus.COMPLETED, turn=3) == ("completed", None)
    assert status(status=ScenarioStatus.COMPLETED, turn=2) == ("halted", "end_turn")
    assert status(status=ScenarioStatus.HALTED, halt_reason="credit limit $1.0000 reached: …") == ("halted", "credit_limit")
    assert status(status=ScenarioStatus.PAUSED, halt_reason="interrupted (CancelledError)") == ("halted", "manual")
    assert status(status=ScenarioStatus.PAUSED, halt_reason="turn 2, phase decision: HTTP 429 Too Many Requests") == ("halted", "rate_limit")
    assert status(status=ScenarioStatus.PAUSED, halt_reason="turn 2, phase decision: HTTP 503") == ("halted", "api_error")
    assert status(status=ScenarioStatus.FAILED, error="boom") == ("halted", "error")
    assert status(status=ScenarioStatus.HALTED, halt_reason="branched") == ("halted", "branched")
    assert status(status=ScenarioStatus.RUNNING) == ("running", None)


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
    assert state.status is ScenarioStatus.COMPLETED and state.turn == 3
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
    assert (state.status, state.turn, state.halt_reason) == (ScenarioStatus.HALTED, 1, "end_turn")
    assert state.total_tokens == json.loads((V1_SAMPLES / "runs" / "test-regulation-negotiation-run-halted" / "scenario-state.json").read_text())["cost_tracker_state"]["total_tokens"]
    assert document["execution_metadata"]["output_path"]
    assert isinstance(datetime.fromisoformat(document["execution_metadata"]["started_at"]), datetime)


# ---- writing: names, long names, files that cannot be written ----------------------------------------------------
def test_a_name_leading_outside_the_run_directory_is_never_written(tmp_path):
    scenario = load_scenario_folder(write_v1_scenario(tmp_path))
    state = Runner().run(scenario, max_turns=1)
    decision = state.decisions[0]
    strange = replace(state, decisions=(replace(decision, actor="../../pwned"), *state.decisions[1:]))
    directory = V1RunDirectory(tmp_path / "out" / "run", scenario, scenario_path="x")
    with pytest.raises(RunFilesNotWritten, match=r"\.\./\.\./pwned-001\.md \(the name leads outside"):
        directory.write(strange)
    assert not list(tmp_path.glob("pwned*")) and not list((tmp_path / "out").glob("pwned*"))
    assert (tmp_path / "out" / "run" / "scenario-state.json").is_file()


def test_long_conversation_names_are_shortened_the_same_way_every_time():
    names = ["The Very Long Official Name of a Delegation Number %d to the Conference on the Future of Rivers" % i for i in range(4)]
    name = conversation_file_name("coalition", names, 2)
    assert len(name.encode()) <= 200 and name.startswith("coalition-The Very Long") and name.endswith("-002.md")
    assert name == conversation_file_name("coalition", reversed(names), 2)
    assert name != conversation_file_name("coalition", names[:3] + ["Another"], 2)
    short = conversation_file_name("bilateral", ["Delta Cities/Ports", "Valley Federation"], 1)
    assert short == "bilateral-Delta Cities-Ports-Valley Federation-001.md"  # as V1 named it
    accents = conversation_file_name("bilateral", ["Ö" * 120, "É" * 120], 3)
    assert len(accents.encode()) <= 200 and accents.encode().decode() == accents


def test_actors_with_long_names_play_a_whole_run(tmp_path):
    folder = write_v1_scenario(tmp_path)
    for short in ("highland", "valley", "delta"):
        path = folder / "actors" / f"{short}.yaml"
        text = path.read_text(encoding="utf-8")
        name = text.splitlines()[0].removeprefix("name: ")
        path.write_text(text.replace(f"name: {name}", f"name: {name} " + "of the Upper and Lower River Basins " * 3, 1), encoding="utf-8")
    scenario = load_scenario_folder(folder)
    state = Runner(persistence=V1RunDirectory(tmp_path / "run", scenario, scenario_path="x")).run(scenario)
    assert state.status is ScenarioStatus.COMPLETED and state.turn == 3
    talks = [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(("bilateral-", "coalition-"))]
    assert talks and all(len(name.encode()) <= 200 for name in talks)


def test_a_file_that_cannot_be_written_still_leaves_the_state_saved(tmp_path):
    scenario = load_scenario_folder(write_v1_scenario(tmp_path))
    (tmp_path / "run" / "world-state-001.md").mkdir(parents=True)  # in the way of turn 1's world file
    state = Runner(persistence=V1RunDirectory(tmp_path / "run", scenario, scenario_path="x")).run(scenario)
    assert state.status is ScenarioStatus.FAILED and state.turn == 1 and "world-state-001.md" in state.error
    read, document = read_run_directory(tmp_path / "run", scenario=scenario)
    assert read.turn == 1 and read.status is ScenarioStatus.FAILED, "turn 1 is not played (and paid) again on resume"
    assert (document["status"], document["halt_reason"]) == ("halted", "error")
    assert "world-state-001.md" in document["execution_metadata"]["engine"]["error"]
    assert (tmp_path / "run" / "highland-001.md").is_file(), "the other files of the turn are written"


# ---- QA reports ------------------------------------------------------------------------------------------------------
def qa_state(results, lines):
    from engine.state import ActorState, CostRecord, ScenarioState, ValidationResult, WorldState

    return ScenarioState(
        run_id="r", scenario_name="s", turn=1,
        actors=(ActorState("a", "Alpha", "m"), ActorState("b", "Beta", "m")),
        world_states=(WorldState(0, "w"), WorldState(1, "w")),
        validations=tuple(ValidationResult(1, check, True, "low", actor) for check, actor in results),
        costs=tuple(CostRecord(1, PhaseType.VALIDATION, actor, "m", "p", tokens, 0, 0.0) for actor, tokens in lines),
    )


def test_qa_tokens_go_to_the_actor_checked_whatever_order_the_calls_ended_in():
    # Results are sorted by check and actor; the calls ended in another order.
    state = qa_state([("consistency", "a"), ("consistency", "b"), ("coherence", None)], [(None, 5), ("b", 200), ("a", 10)])
    report = validation_report_markdown(state, 1, generated_at=datetime(2025, 1, 1))
    assert re.search(r"\(Alpha\)\n\n\*Tokens used: 10\*", report)
    assert re.search(r"\(Beta\)\n\n\*Tokens used: 200\*", report)
    assert re.search(r"## Coherence\n\n✅ \*\*PASSED\*\*\n\n\*Tokens used: 5\*", report)


def test_qa_tokens_of_several_checks_of_one_actor_are_given_once():
    state = qa_state([("consistency", "a"), ("access", "a"), ("consistency", "b")], [("a", 7), ("b", 20), ("a", 9)])
    report = validation_report_markdown(state, 1, generated_at=datetime(2025, 1, 1))
    assert "*Tokens used: 16 (the 2 checks of Alpha together)*" in report
    assert "*Tokens used: counted with Consistency of Alpha*" in report
    assert "*Tokens used: 20*" in report
    assert report.count("*Tokens used: ") == 3


# ---- branches --------------------------------------------------------------------------------------------------------
def test_a_branch_at_turn_0_starts_from_the_initial_world(tmp_path):
    scenario = load_scenario_folder(write_v1_scenario(tmp_path))
    Runner(persistence=V1RunDirectory(tmp_path / "run-001", scenario, scenario_path="x")).run(scenario, max_turns=2)
    child = branch_run_directory(tmp_path / "run-001", 0, scenario)
    assert child == tmp_path / "run-002"
    state, document = read_run_directory(child, scenario=scenario)
    assert (state.turn, state.costs, state.decisions, state.communications) == (0, (), (), ())
    assert sorted(p.name for p in child.iterdir()) == ["scenario-state.json", "world-state-000.md"]
    assert (document["halt_reason"], document["execution_metadata"]["branch_point"]) == ("branched", 0)
