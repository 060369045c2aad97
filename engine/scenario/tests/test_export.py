"""Exported scenario folders load back to an equal Scenario: bundled, V1 samples, unknown keys, odd text."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.scenario import Scenario
from engine.scenario.export import actor_file_stems, export_scenario_folder, scenario_folder_files
from engine.scenario.tests.folders import EVENTS, METRICS_DICT, METRICS_LIST, RULES, make_folder, valid_files

LIBRARY = Path(__file__).resolve().parents[3] / "scenarios" / "library"
# The original project's folders sit beside the repository (../shared/v1-samples), in CI as here.
V1_SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "v1-samples" / "scenarios"
COMPARED = {"source", "warnings"}


def assert_round_trip(scenario: Scenario, folder: Path) -> Scenario:
    export_scenario_folder(scenario, folder)
    again = Scenario.load(folder)
    assert again.model_dump(exclude=COMPARED) == scenario.model_dump(exclude=COMPARED)
    assert again.warnings == []
    return again


@pytest.mark.parametrize("name", sorted(p.name for p in LIBRARY.iterdir() if p.is_dir()))
def test_bundled_scenarios_round_trip(name: str, tmp_path: Path) -> None:
    assert_round_trip(Scenario.load(LIBRARY / name), tmp_path / name)


def _v1_folders() -> list[Path]:
    return sorted(p for p in V1_SAMPLES.iterdir() if p.is_dir()) if V1_SAMPLES.is_dir() else []


@pytest.mark.skipif(not V1_SAMPLES.is_dir(),
                    reason=f"V1 sample folders not found at {V1_SAMPLES} (../shared beside the clone)")
@pytest.mark.parametrize("folder", _v1_folders(), ids=lambda p: p.name)
def test_v1_samples_round_trip(folder: Path, tmp_path: Path) -> None:
    original = Scenario.load(folder)
    assert_round_trip(original, tmp_path / folder.name)
    # The files named are the ones scenario.yaml lists, so a person finds each actor where they left it.
    assert sorted(p.stem for p in (tmp_path / folder.name / "actors").iterdir()) == sorted(original.config.actors)


def test_unknown_keys_dict_metrics_and_every_optional_file_survive(tmp_path: Path) -> None:
    files = valid_files(**{
        "metrics.yaml": METRICS_DICT + "owner: research team\n",
        "validation-rules.yaml": RULES + "generate_turn_reports: true\n",
        "exogenous-events.yaml": EVENTS,
        "background/notes.md": "Line one\r\nLine two with trailing spaces   \r\n",
    })
    files["scenario.yaml"] += "review_date: 2025-03-01\norganiser:\n  nested: [1, two, {three: 3}]\n"
    files["actors/fishers.yaml"] += "home_port: North Quay\n"
    original = Scenario.load(make_folder(tmp_path / "in", files))
    assert isinstance(original.metrics.metrics, dict)

    again = assert_round_trip(original, tmp_path / "out")

    assert again.config.model_extra["review_date"] == datetime.date(2025, 3, 1)  # a date stays a date
    assert again.actor("fishers").model_extra == {"home_port": "North Quay"}
    assert again.metrics.model_extra == {"owner": "research team"}
    written = (tmp_path / "out" / "background" / "notes.md").read_bytes()
    assert written == b"Line one\r\nLine two with trailing spaces   \r\n"


def test_list_metrics_are_written_as_a_list(tmp_path: Path) -> None:
    original = Scenario.load(make_folder(tmp_path / "in", valid_files(**{"metrics.yaml": METRICS_LIST})))
    again = assert_round_trip(original, tmp_path / "out")
    assert isinstance(again.metrics.metrics, list)


def test_only_present_files_are_written_and_defaults_are_left_out(tmp_path: Path) -> None:
    original = Scenario.load(make_folder(tmp_path / "in", valid_files()))
    files = scenario_folder_files(original)
    assert sorted(files) == ["actors/fishers.yaml", "actors/port-authority.yaml", "scenario.yaml"]
    assert "llm_model" not in yaml.safe_load(files["actors/fishers.yaml"])  # not set in the file, not written
    assert "initial_world_state: |\n  The harbour is silted up.\n" in files["scenario.yaml"]  # block text


def test_unlisted_actors_keep_their_order(tmp_path: Path) -> None:
    files = valid_files()
    files["scenario.yaml"] = files["scenario.yaml"].replace("actors:\n  - port-authority\n  - fishers\n", "")
    loaded = Scenario.load(make_folder(tmp_path / "in", files))
    # Built in code, the order is port then fishers: file names must keep that order when loaded again.
    built = loaded.model_copy(update={"actors": list(reversed(loaded.actors))})
    assert [a.short_name for a in built.actors] == ["port", "fishers"]
    assert actor_file_stems(built) == ["1-port", "2-fishers"]
    assert_round_trip(built, tmp_path / "out")


def test_listed_count_must_match_the_actors(tmp_path: Path) -> None:
    loaded = Scenario.load(make_folder(tmp_path, valid_files()))
    broken = loaded.model_copy(update={"actors": loaded.actors[:1]})
    with pytest.raises(ValueError, match="lists 2 actors but the scenario has 1"):
        scenario_folder_files(broken)


@pytest.mark.parametrize("text", ["\x85", "a\u2028b\u2029", "x\n\x85y\n", "\ufeffz", "\r", "  lead\ntrail  \n\n"])
def test_unicode_line_breaks_survive(text: str, tmp_path: Path) -> None:
    original = Scenario.load(make_folder(tmp_path / "in", valid_files()))
    changed = original.model_copy(update={"config": original.config.model_copy(update={"system_prompt": text})})
    changed.config.model_fields_set.add("system_prompt")
    assert_round_trip(changed, tmp_path / "out")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.text(), description=st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_any_text_survives(prompt: str, description: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("scenario")
    original = Scenario.load(make_folder(folder / "in", valid_files()))
    changed = original.model_copy(update={
        "config": original.config.model_copy(update={"system_prompt": prompt, "description": description}),
    })
    # model_copy leaves fields_set alone; what was changed must be written, so mark it set.
    changed.config.model_fields_set.update({"system_prompt", "description"})
    assert_round_trip(changed, folder / "out")
