"""End conditions: the small language, evaluated by walking the tree (never as Python), and in scenario folders
(runs that end by them: engine/tests/test_end_conditions.py)."""

from __future__ import annotations

import pytest

from engine.scenario.conditions import ConditionError, parse_condition
from engine.scenario.tests.folders import make_folder, only_error, valid_files
from engine.scenario import load_scenario_folder


@pytest.mark.parametrize("text, turns, metrics, holds", [
    ("cooperation_level >= 8 or turns >= 20", 3, {"cooperation_level": 8.5}, True),
    ("cooperation_level >= 8 or turns >= 20", 3, {"cooperation_level": 7}, False),
    ("cooperation_level >= 8 or turns >= 20", 20, {}, True),
    ("not (tension > 5) and turn >= 2", 2, {"tension": 3}, True),
    ("0 < tension <= 5", 1, {"tension": 5}, True),
    ("0 < tension <= 5", 1, {"tension": 0}, False),
    ("tension == -1", 1, {"tension": -1.0}, True),
    ("tension != 2", 1, {}, False),  # a metric without a value this turn: its comparisons are false
])
def test_conditions_hold_as_written(text, turns, metrics, holds):
    assert parse_condition(text).holds(turns=turns, metrics=metrics) is holds


@pytest.mark.parametrize("text, words", [
    ("__import__('os').system('true')", "expected a comparison"),
    ("tension >= len('x')", "compare metric names, `turns` and numbers only"),
    ("tension.real >= 1", "compare metric names, `turns` and numbers only"),
    ("tension >= 'high'", "compare metric names, `turns` and numbers only"),
    ("tension in (1, 2)", "compare with <, <=, >, >=, == or != only"),
    ("tension >= 1 +", "not a condition at column"),
    ("(lambda: 1)() > 0", "compare metric names"),
    ("", "empty"),
])
def test_anything_else_is_refused_saying_what_is_allowed(text, words):
    with pytest.raises(ConditionError, match=words.replace("(", r"\(").replace(")", r"\)").replace("`", "`")):
        parse_condition(text)


@pytest.mark.parametrize("text, cap", [
    ("cooperation_level >= 8 or turns >= 20", 20), ("turns > 9 or tension < 1", 10), ("tension < 1", None),
    ("tension < 1 and turns >= 4", None), ("turns == 6 or turns >= 9", 6),
])
def test_a_top_level_or_turns_is_the_cap(text, cap):
    assert parse_condition(text).turn_cap == cap


# ---- in scenario folders ---------------------------------------------------------------------------------------
METRICS = "metrics:\n  - name: tension\n    extraction:\n      type: keyword\n      keywords: [strike]\n"
BASE = "name: Harbour\ndescription: d\ninitial_world_state: The harbour.\nactors: [port-authority, fishers]\n"


def folder(tmp_path, length: str, metrics: str = METRICS):
    return make_folder(tmp_path / "harbour", valid_files(**{"scenario.yaml": BASE + length, "metrics.yaml": metrics}))


def test_a_condition_length_with_its_cap(tmp_path):
    config = load_scenario_folder(folder(tmp_path, "scenario_length:\n  type: condition\n  condition: tension >= 3\n"
                                                   "  max_turns: 12\n")).config
    assert (config.end_condition, config.turns) == ("tension >= 3", 12)


def test_the_cap_may_come_from_the_condition_itself(tmp_path):
    config = load_scenario_folder(folder(tmp_path, "scenario_length:\n  type: condition\n"
                                                   "  condition: tension >= 3 or turns >= 20\n")).config
    assert (config.end_condition, config.turns) == ("tension >= 3 or turns >= 20", 20)


def test_a_condition_without_a_cap_is_located(tmp_path):
    error = only_error(folder(tmp_path, "scenario_length:\n  type: condition\n  condition: tension >= 3\n"))
    assert (error.file, error.line) == ("scenario.yaml", 5) and "cap on the turns" in error.message
    assert "max_turns" in (error.suggestion or "")


def test_a_bad_condition_is_located_at_its_line(tmp_path):
    error = only_error(folder(tmp_path, "scenario_length:\n  type: condition\n  max_turns: 5\n  condition: tension >=\n"))
    assert (error.file, error.line) == ("scenario.yaml", 8) and "not a condition" in error.message


def test_a_condition_on_an_unknown_metric_is_located_with_the_closest_name(tmp_path):
    error = only_error(folder(tmp_path, "turns: 5\nend_condition: tensions >= 3\n"))
    assert (error.file, error.line) == ("scenario.yaml", 6) and "'tensions'" in error.message
    assert error.suggestion == "did you mean 'tension'?"
