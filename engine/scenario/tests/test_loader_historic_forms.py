"""Folder forms the original program accepted at one time or another, each loading as what it meant: flat
metrics (`extraction_type`, `extraction_prompt`), nested extractions with `regex` and `patterns` lists,
`parameters: {max_turns, turn_duration}`, `max_turns`, actors named only by their file, and human seats.
Every one also survives an export and a reload unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.phases.metrics import extract_by_pattern
from engine.scenario import load_scenario_folder
from engine.scenario.export import export_scenario_folder
from engine.scenario.tests.folders import load_errors, make_folder, only_error, valid_files

FLAT_METRICS = """\
metrics:
  - name: tension
    description: How tense the towns are
    extraction_type: llm
    extraction_prompt: Rate the tension between the towns from 0 to 10
  - name: dredges
    extraction_type: pattern
    pattern: '(\\d+) dredges'
  - name: boats
    extraction_type: regex
    pattern: '(\\d+) boats'
  - name: strikes
    extraction_type: keyword
    keywords: [strike, walkout]
"""
NESTED_METRICS = """\
metrics:
  - name: dredges
    extraction:
      type: regex
      patterns: ['(\\d+) dredges', 'dredges: (\\d+)']
  - name: walkouts
    extraction:
      type: pattern
      patterns: ['(\\d+) walkouts']
  - name: mood
    extraction:
      type: manual
  - name: tension
    extraction:
      type: llm
      prompt: Rate the tension from 0 to 10
  - name: strikes
    extraction:
      type: keyword
      keywords: [strike]
"""


def load(tmp_path: Path, **files: str):
    return load_scenario_folder(make_folder(tmp_path / "harbour", valid_files(**files)))


def reloaded(scenario, tmp_path: Path):
    folder = tmp_path / "exported"
    export_scenario_folder(scenario, folder)
    return load_scenario_folder(folder)


def test_flat_metrics_with_extraction_type_and_prompt(tmp_path):
    scenario = load(tmp_path, **{"metrics.yaml": FLAT_METRICS})
    got = {m.name: (m.extraction.type, m.extraction.prompt, m.extraction.all_patterns, m.extraction.keywords)
           for m in scenario.metric_definitions}
    assert got == {
        "tension": ("llm", "Rate the tension between the towns from 0 to 10", [], []),
        "dredges": ("pattern", None, ["(\\d+) dredges"], []),
        "boats": ("pattern", None, ["(\\d+) boats"], []),
        "strikes": ("keyword", None, [], ["strike", "walkout"]),
    }
    assert scenario.metric_definitions[0].description == "How tense the towns are"
    assert not scenario.warnings, "the flat keys are understood, not unknown keys"
    assert reloaded(scenario, tmp_path).metric_definitions == scenario.metric_definitions


def test_nested_extractions_with_regex_and_lists_of_patterns(tmp_path):
    scenario = load(tmp_path, **{"metrics.yaml": NESTED_METRICS})
    by_name = {m.name: m for m in scenario.metric_definitions}
    assert by_name["dredges"].extraction.type == "pattern"
    assert by_name["dredges"].extraction.all_patterns == ["(\\d+) dredges", "dredges: (\\d+)"]
    assert [by_name[name].extraction.type for name in ("mood", "tension", "strikes")] == ["manual", "llm", "keyword"]
    assert reloaded(scenario, tmp_path).metric_definitions == scenario.metric_definitions


def test_of_several_patterns_the_first_that_matches_is_read(tmp_path):
    dredges = {m.name: m for m in load(tmp_path, **{"metrics.yaml": NESTED_METRICS}).metric_definitions}["dredges"]
    assert extract_by_pattern(dredges, "The port ordered 4 dredges.") == 4.0
    assert extract_by_pattern(dredges, "Status report, dredges: 7 at sea") == 7.0
    assert extract_by_pattern(dredges, "No dredging this week.") is None


def test_a_pattern_extraction_needs_a_pattern_or_patterns(tmp_path):
    error = only_error(make_folder(tmp_path / "harbour", valid_files(**{
        "metrics.yaml": "metrics:\n  - name: dredges\n    extraction:\n      type: regex\n"})))
    assert error.file == "metrics.yaml" and "patterns" in error.message


def test_a_bad_regular_expression_in_a_list_is_located(tmp_path):
    errors = load_errors(make_folder(tmp_path / "harbour", valid_files(**{
        "metrics.yaml": "metrics:\n  - name: dredges\n    extraction:\n      type: pattern\n      patterns: ['(ok)', '(broken']\n"})))
    assert any("not a valid regular expression" in e.message and e.file == "metrics.yaml" for e in errors), errors


PARAMETERS = """\
name: Harbour Dispute
description: Two towns argue over a harbour.
initial_world_state: The harbour is silted up.
parameters:
  max_turns: 6
  turn_duration: 2 weeks
actors: [port-authority, fishers]
"""


def test_parameters_give_turns_and_turn_duration(tmp_path):
    scenario = load(tmp_path, **{"scenario.yaml": PARAMETERS})
    assert (scenario.config.turns, scenario.config.turn_duration) == (6, "2 weeks")
    assert not scenario.warnings
    again = reloaded(scenario, tmp_path)
    assert (again.config.turns, again.config.turn_duration) == (6, "2 weeks")


def test_parameters_that_disagree_with_turns_are_located(tmp_path):
    error = only_error(make_folder(tmp_path / "harbour", valid_files(**{"scenario.yaml": PARAMETERS + "turns: 3\n"})))
    assert error.file == "scenario.yaml" and "parameters.max_turns" in error.message and error.line == 5


@pytest.mark.parametrize("length", ["max_turns: 5", "scenario_length:\n  type: fixed\n  turns: 5"])
def test_max_turns_and_a_fixed_length_are_turns(tmp_path, length):
    text = PARAMETERS.replace("parameters:\n  max_turns: 6\n  turn_duration: 2 weeks\n", length + "\n")
    assert load(tmp_path, **{"scenario.yaml": text}).config.turns == 5


def test_an_actor_without_a_short_name_is_named_by_its_file(tmp_path):
    scenario = load(tmp_path, **{"actors/fishers.yaml": "name: Fishers' Union\ngoals: [Keep fishing rights]\n"})
    assert [actor.short_name for actor in scenario.actors] == ["port", "fishers"]
    assert reloaded(scenario, tmp_path).actors == scenario.actors


def test_an_actor_file_whose_name_cannot_be_a_short_name_says_so(tmp_path):
    files = valid_files(**{"actors/world.yaml": "name: The World\n"})
    files["scenario.yaml"] = files["scenario.yaml"].replace("  - fishers\n", "  - fishers\n  - world\n")
    error = only_error(make_folder(tmp_path / "harbour", files))
    assert error.file == "actors/world.yaml" and "reserved" in error.message


def test_an_actor_with_control_human_is_a_human_seat(tmp_path):
    scenario = load(tmp_path, **{"actors/fishers.yaml": "name: Fishers' Union\nshort_name: fishers\ncontrol: human\n"})
    assert {actor.short_name: actor.control for actor in scenario.actors} == {"port": "ai", "fishers": "human"}
