"""Reading scenario-state.json: a damaged or edited file is refused with the key that is wrong, never a traceback,
and never a name that would lead a file outside the run directory."""

from __future__ import annotations

import copy
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine import Runner
from engine.scenario import load_scenario_folder
from engine.state import ScenarioStatus
from engine.v1 import RunDirectoryError, V1RunDirectory, V1StateError, read_run, read_run_directory, state_from_v1
from engine.testing.v1_folders import write_v1_scenario

V1_SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "v1-samples"
needs_samples = pytest.mark.skipif(not V1_SAMPLES.is_dir(), reason=f"V1 samples not found at {V1_SAMPLES}")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict:
    """scenario-state.json of a two-turn run written by this project (talks, metrics, QA findings)."""
    root = tmp_path_factory.mktemp("written")
    scenario = load_scenario_folder(write_v1_scenario(root))
    Runner(persistence=V1RunDirectory(root / "run", scenario, scenario_path="river-compact")).run(scenario, max_turns=2)
    return json.loads((root / "run" / "scenario-state.json").read_text(encoding="utf-8"))


def v1_document() -> dict:
    return json.loads((V1_SAMPLES / "runs" / "test-coalition-3actors-run-001" / "scenario-state.json").read_text(encoding="utf-8"))


def refused(document: dict) -> str:
    with pytest.raises(V1StateError) as caught:
        state_from_v1(document)
    message = str(caught.value)
    assert "\n" not in message
    return message


def first_channel(document: dict) -> dict:
    return next(iter(document["communication_manager_state"]["channels"].values()))


# ---- names that would become file names ----------------------------------------------------------------------
def test_a_decision_by_someone_not_among_the_actors_is_refused(written):
    document = copy.deepcopy(written)
    entry = next(iter(document["world_state"]["actor_decisions"]["1"].values()))
    entry["short_name"] = "../../pwned"
    message = refused(document)
    assert "world_state.actor_decisions.1." in message and ".short_name: '../../pwned' is not one of the run's actors" in message

    document = copy.deepcopy(written)
    decisions = document["world_state"]["actor_decisions"]["1"]
    decisions["../../pwned"] = {**decisions.pop(next(iter(decisions))), "short_name": None}
    assert "world_state.actor_decisions.1.../../pwned: '../../pwned' is not one of the run's actors" in refused(document)


@needs_samples
def test_v1_decisions_senders_and_participants_must_be_actors():
    document = v1_document()
    decisions = document["world_state"]["actor_decisions"]["1"]
    decisions["../../pwned"] = decisions.pop("China")
    assert refused(document).startswith("world_state.actor_decisions.1.../../pwned: '../../pwned' is not one of")

    document = v1_document()
    first_channel(document)["messages"][0]["sender"] = "Atlantis"
    assert "messages.0.sender: 'Atlantis' is not one of the run's actors (`actors`: china, eu, us)" in refused(document)

    document = v1_document()
    first_channel(document)["participants"].append("../x")
    assert ".participants: '../x' is not one of" in refused(document)


def test_senders_and_recipients_must_be_actors(written):
    document = copy.deepcopy(written)
    first_channel(document)["messages"][0]["sender_short_name"] = "../evil"
    assert "messages.0.sender_short_name: '../evil' is not one of" in refused(document)

    document = copy.deepcopy(written)
    first_channel(document)["messages"][0]["recipients"] = ["../../etc"]
    assert "messages.0.recipients: '../../etc' is not one of" in refused(document)


def test_an_actor_key_must_be_a_short_name(written):
    document = copy.deepcopy(written)
    document["actors"]["../up"] = {"name": "Up"}
    assert refused(document).startswith("actors.../up: not a short name")


# ---- damaged JSON: the key path, never a traceback -----------------------------------------------------------------
@needs_samples
@pytest.mark.parametrize(("damage", "words"), [
    (lambda d: d["world_state"]["actor_decisions"]["1"].update({"United States": "text"}),
     "world_state.actor_decisions.1.United States: expected an object, got text"),
    (lambda d: d["world_state"]["actor_decisions"].update({"1": []}), "world_state.actor_decisions.1: expected an object, got a list"),
    (lambda d: d["metrics_tracker_state"].update({"metrics_by_turn": {"1": [3]}}), "metrics_tracker_state.metrics_by_turn.1: expected an object"),
    (lambda d: d["world_state"].update({"exogenous_events": []}), "world_state.exogenous_events: expected an object, got a list"),
    (lambda d: d["world_state"]["states"].update({"x": "text"}), "world_state.states.x: the key is not a turn number"),
    (lambda d: first_channel(d)["messages"][0].update({"content": None}), "messages.0.content: expected text, got null"),
    (lambda d: d.update({"current_turn": -3}), "current_turn: expected 0 or more, got -3"),
    (lambda d: d["cost_tracker_state"]["costs_by_actor"]["China"]["turns"][0].update({"tokens": "many"}),
     "cost_tracker_state.costs_by_actor.China.turns.0.tokens: expected a whole number"),
    (lambda d: d.update({"actors": {"us": {"name": ""}}}), "actors.us.name: expected some text"),
    (lambda d: d.update({"execution_metadata": {"started_at": "yesterday"}}), "execution_metadata.started_at: expected a date and time"),
])
def test_a_damaged_v1_file_names_the_key(tmp_path, damage, words):
    document = v1_document()
    damage(document)
    assert words in refused(document)
    shutil.copytree(V1_SAMPLES / "runs" / "test-coalition-3actors-run-001", tmp_path / "run")
    (tmp_path / "run" / "scenario-state.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(RunDirectoryError, match="scenario-state.json: "):
        read_run_directory(tmp_path / "run")


@pytest.mark.parametrize(("damage", "words"), [
    (lambda e: e.update({"turn_times": {"x": "2025-01-01T00:00:00"}}), "execution_metadata.engine.turn_times.x: the key is not a turn number"),
    (lambda e: e.update({"credit_limit": "lots"}), "execution_metadata.engine.credit_limit: expected a number"),
    (lambda e: e.update({"credit_limit": -1}), "execution_metadata.engine.credit_limit: expected more than 0"),
    (lambda e: e.update({"status": "sleeping"}), "execution_metadata.engine.status: expected "),
    (lambda e: e.update({"completed_phases": ["lunch"]}), "execution_metadata.engine.completed_phases.0: expected "),
    (lambda e: e["validation_results"][0].update({"turn": -1}), "execution_metadata.engine.validation_results.0: turn: expected 0 or more"),
])
def test_a_damaged_engine_section_names_the_key(written, damage, words):
    document = copy.deepcopy(written)
    damage(document["execution_metadata"]["engine"])
    assert words in refused(document)


def test_a_second_message_with_the_same_id_is_refused(written):
    document = copy.deepcopy(written)
    messages = first_channel(document)["messages"]
    messages.append(dict(messages[0]))
    assert "is the id of another message too" in refused(document)


def value_paths(value, path=()):
    """Every place in a JSON document: (path, value)."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from value_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from value_paths(item, (*path, index))


@contextmanager
def replaced(document, path, new):
    """The document with one value replaced, in place (a copy per replacement would be slow), then restored."""
    place = document
    for part in path[:-1]:
        place = place[part]
    old, place[path[-1]] = place[path[-1]], new
    try:
        yield document
    finally:
        place[path[-1]] = old


@needs_samples
@pytest.mark.parametrize("source", ["written", "v1"])
def test_any_value_of_the_wrong_kind_is_refused_by_key_or_read(written, source):
    """Every place of a real file, given each wrong kind of value: read, or refused with a located message."""
    document = copy.deepcopy(written) if source == "written" else v1_document()
    for path, _ in list(value_paths(document))[1:]:
        for wrong in (None, "x", -3, 2.5, True, [], {}, [{}], {"1": {}}):
            try:
                with replaced(document, path, wrong) as damaged:
                    state_from_v1(damaged)
            except V1StateError as exc:
                assert ": " in str(exc) and "\n" not in str(exc), (path, wrong, exc)
            except Exception as exc:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{'.'.join(map(str, path))} = {wrong!r}: {type(exc).__name__}: {exc}")


# ---- where a run stands ----------------------------------------------------------------------------------------
@needs_samples
def test_a_missing_current_turn_is_read_from_completed_turns_not_replayed():
    document = v1_document()
    document["current_turn"] = None
    assert state_from_v1(document).state.turn == 3
    del document["completed_turns"]
    document["world_state"]["current_turn"] = None
    assert "current_turn: missing" in refused(document)


# ---- what V1 wrote about its decisions is kept -----------------------------------------------------------------------
@needs_samples
def test_a_v1_directory_reopened_keeps_v1s_answers_and_files(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(V1_SAMPLES / "runs" / "test-regulation-negotiation-run-halted", run_dir)
    before = json.loads((run_dir / "scenario-state.json").read_text(encoding="utf-8"))
    files = {p.name: p.read_bytes() for p in run_dir.glob("*.md")}
    scenario = load_scenario_folder(V1_SAMPLES / "scenarios" / "test-regulation-negotiation")
    reading = read_run(run_dir, scenario=scenario)

    # A save at the turn V1 stopped after (a halt, a pause before the next turn completes) changes none of V1's files.
    V1RunDirectory.reopen(run_dir, scenario, reading, scenario_path="x").write(reading.state.with_status(ScenarioStatus.PAUSED, reason="paused on request"))
    assert {p.name: p.read_bytes() for p in run_dir.glob("*.md")} == files
    after = json.loads((run_dir / "scenario-state.json").read_text(encoding="utf-8"))
    for name, entry in before["world_state"]["actor_decisions"]["1"].items():
        kept = after["world_state"]["actor_decisions"]["1"][name]
        assert (kept["raw_response"], kept["tokens_used"]) == (entry["raw_response"], entry["tokens_used"])
    # ...and so does reading it back and writing it again.
    again = read_run(run_dir, scenario=scenario)
    V1RunDirectory.reopen(run_dir, scenario, again, scenario_path="x").write(again.state)
    last = json.loads((run_dir / "scenario-state.json").read_text(encoding="utf-8"))
    assert last["world_state"]["actor_decisions"]["1"] == after["world_state"]["actor_decisions"]["1"]
