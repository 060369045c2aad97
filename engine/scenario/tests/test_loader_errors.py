"""Every way a scenario folder can be wrong gets one error naming the file, key path and line."""

from __future__ import annotations
import pickle
from pathlib import Path
import pytest
from engine.scenario import LocatedError, ScenarioLoadError, load_scenario_folder
from engine.scenario.tests.folders import (
    EVENTS,
    FISHERS,
    METRICS_DICT,
    METRICS_LIST,
    PORT,
    RULES,
    SCENARIO,
    load_errors,
    make_folder,
    only_error,
    valid_files,
)


# ---- errors, one case each ---------------------------------------------------------------------------------
def test_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "harbour").mkdir()
    error = only_error(tmp_path / "harbor")
    assert "does not exist" in error.message
    assert error.suggestion == "did you mean 'harbour'?"


def test_missing_scenario_yaml(tmp_path: Path) -> None:
    files = valid_files(**{"scenarios.yaml": SCENARIO})
    del files["scenario.yaml"]
    error = only_error(make_folder(tmp_path, files))
    assert (error.file, error.line) == ("scenario.yaml", None)
    assert "no scenario.yaml" in error.message
    assert "scenarios.yaml" in (error.suggestion or "")


def test_missing_required_key_suggests_renaming_a_typo(tmp_path: Path) -> None:
    scenario_text = SCENARIO.replace("turns: 4", "trun: 4")
    error = only_error(make_folder(tmp_path, valid_files(**{"scenario.yaml": scenario_text})))
    assert (error.file, error.key_path, error.line) == ("scenario.yaml", "turns", 1)
    assert error.message == "this key is required"
    assert error.suggestion == "did you mean 'turns'? rename 'trun' to 'turns'"


def test_wrong_type_is_located_and_explained(tmp_path: Path) -> None:
    actor = PORT.replace("goals:\n  - Reopen the harbour\n", "goals: 3\n")
    error = only_error(make_folder(tmp_path, valid_files(**{"actors/port-authority.yaml": actor})))
    assert (error.file, error.key_path, error.line) == ("actors/port-authority.yaml", "goals", 3)
    assert error.message == "expected a list of text, got a number (3)"
    assert str(error) == "actors/port-authority.yaml:3: goals: expected a list of text, got a number (3)"


def test_nested_value_out_of_range(tmp_path: Path) -> None:
    scenario_text = SCENARIO.replace("max_per_turn: 3", "max_per_turn: 50")
    error = only_error(make_folder(tmp_path, valid_files(**{"scenario.yaml": scenario_text})))
    assert (error.key_path, error.line) == ("features.communications.max_per_turn", 12)
    assert error.message == "expected a number at most 20, got a number (50)"


def test_whole_number_expected(tmp_path: Path) -> None:
    scenario_text = SCENARIO.replace("turns: 4", "turns: four")
    error = only_error(make_folder(tmp_path, valid_files(**{"scenario.yaml": scenario_text})))
    assert (error.key_path, error.line) == ("turns", 5)
    assert error.message.startswith("expected a whole number, got text ('four')")


def test_union_alternatives_become_one_message(tmp_path: Path) -> None:
    error = only_error(make_folder(tmp_path, valid_files(**{"actors/fishers.yaml": FISHERS + "expertise: 7\n"})))
    assert (error.key_path, error.line) == ("expertise", 5)
    assert error.message == "expected text, a mapping of keys (key: value lines) or a list, got a number (7)"


def test_choice_with_a_typo_gets_a_suggestion(tmp_path: Path) -> None:
    error = only_error(make_folder(tmp_path, valid_files(**{"actors/fishers.yaml": FISHERS + "control: humna\n"})))
    assert (error.key_path, error.line) == ("control", 5)
    assert error.message == "expected one of 'ai' or 'human', got text ('humna')"
    assert error.suggestion == "did you mean 'human'?"


def test_metric_errors_skip_union_tags_and_keep_schema_messages(tmp_path: Path) -> None:
    third = "  - name: third\n    extraction:\n      type: pattern\n      pattern: [not, text]\n"
    metrics = METRICS_LIST.replace("'(\\d+) dredges'", "'(unclosed'") + third
    errors = load_errors(make_folder(tmp_path, valid_files(**{"metrics.yaml": metrics})))
    assert [(e.file, e.key_path, e.line) for e in errors] == [
        ("metrics.yaml", "metrics[0].extraction.pattern", 5),
        ("metrics.yaml", "metrics[2].extraction.pattern", 13),
    ]
    assert errors[0].message.startswith("not a valid regular expression")  # no "Value error, "
    assert errors[1].message == "expected text, got a list of 2 items"


def test_legacy_metric_errors_are_located_inside_the_mapping(tmp_path: Path) -> None:
    metrics = METRICS_DICT.replace("extraction_method: manual", "extraction_method: guess")
    error = only_error(make_folder(tmp_path, valid_files(**{"metrics.yaml": metrics})))
    assert (error.key_path, error.line) == ("metrics.mood.extraction_method", 7)
    assert "'regex'" in error.message and "'manual'" in error.message


def test_legacy_metric_missing_its_pattern_fails_at_load(tmp_path: Path) -> None:
    metrics = METRICS_DICT.replace("    pattern: '(\\d+) boats'\n", "")
    error = only_error(make_folder(tmp_path, valid_files(**{"metrics.yaml": metrics})))
    assert (error.key_path, error.line) == ("metrics.boats_at_sea", 2)
    assert error.message == "a pattern extraction needs `pattern:` (a regular expression) or `patterns:` (a list)"


def test_metrics_that_are_neither_list_nor_mapping(tmp_path: Path) -> None:
    error = only_error(make_folder(tmp_path, valid_files(**{"metrics.yaml": "metrics: 5\n"})))
    assert (error.key_path, error.line) == ("metrics", 1)
    assert "a list of metric definitions" in error.message


def test_missing_key_inside_a_list_item(tmp_path: Path) -> None:
    events = EVENTS.replace("    effect: A storm closes the harbour for a week.\n", "")
    error = only_error(make_folder(tmp_path, valid_files(**{"exogenous-events.yaml": events})))
    assert (error.file, error.key_path, error.line) == ("exogenous-events.yaml", "random_events[0].effect", 2)
    assert error.message == "this key is required"


def test_keys_that_yaml_reads_as_booleans(tmp_path: Path) -> None:
    error = only_error(make_folder(tmp_path, valid_files(**{"actors/fishers.yaml": FISHERS + "yes: 1\n"})))
    assert (error.key_path, error.line) == ("yes", 5)
    assert "keys must be text" in error.message and "quotes" in (error.suggestion or "")


def test_actor_without_a_file_suggests_the_closest_one(tmp_path: Path) -> None:
    scenario_text = SCENARIO.replace("- fishers", "- fisher")
    error = only_error(make_folder(tmp_path, valid_files(**{"scenario.yaml": scenario_text})))
    assert (error.file, error.key_path, error.line) == ("scenario.yaml", "actors[1]", 9)
    assert "actors/fisher.yaml" in error.message
    assert error.suggestion == "did you mean 'fishers'?"


def test_actor_names_with_path_tricks_are_rejected_unread(tmp_path: Path) -> None:
    # Broken on purpose: had the loader read it, it would report a YAML error for it as well.
    (tmp_path / "secret.yaml").write_text("name: [\n")
    folder = make_folder(
        tmp_path / "scenario",
        valid_files(
            **{
                "scenario.yaml": SCENARIO.replace("- fishers", "- ../../secret\n  - /etc/passwd"),
            }
        ),
    )
    errors = load_errors(folder)
    assert [(e.key_path, e.line) for e in errors] == [("actors[1]", 9), ("actors[2]", 10)]
    assert all("not an actor file name" in e.message for e in errors)


def test_actor_file_linking_outside_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(FISHERS)
    folder = make_folder(tmp_path / "scenario", valid_files())
    (folder / "actors/fishers.yaml").unlink()
    (folder / "actors/fishers.yaml").symlink_to(outside)
    error = only_error(folder)
    assert error.file == "actors/fishers.yaml"
    assert "outside the scenario folder" in error.message


def test_duplicate_short_names_name_both_files(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, valid_files(**{"actors/fishers.yaml": FISHERS.replace("fishers", "port", 1)}))
    error = only_error(folder)
    assert (error.file, error.key_path, error.line) == ("actors/fishers.yaml", "short_name", 2)
    assert "actors/port-authority.yaml" in error.message


def test_yaml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    broken = "name: Port\nshort_name: port\ngoals: [one, two\nconstraints: []\n"
    error = only_error(make_folder(tmp_path, valid_files(**{"actors/port-authority.yaml": broken})))
    assert (error.file, error.line) == ("actors/port-authority.yaml", 4)
    assert error.message.startswith("YAML syntax error")


def test_tab_indentation_gets_a_hint(tmp_path: Path) -> None:
    error = only_error(make_folder(tmp_path, valid_files(**{"actors/fishers.yaml": FISHERS + "\tmood: x\n"})))
    assert error.line == 5 and error.suggestion == "indent with spaces, not tabs"


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    latin1 = "name: Caf\u00e9\nshort_name: cafe\n".encode("latin-1")
    error = only_error(make_folder(tmp_path, valid_files(**{"actors/fishers.yaml": latin1})))
    assert (error.file, error.line) == ("actors/fishers.yaml", 1)
    assert "not valid UTF-8" in error.message
    assert "UTF-8" in (error.suggestion or "")


def test_empty_file_and_top_level_list(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, valid_files(**{"metrics.yaml": "# nothing yet\n", "exogenous-events.yaml": "- a\n"}))
    empty, listed = load_errors(folder)
    assert empty.file == "metrics.yaml" and "empty" in empty.message
    assert (listed.file, listed.line) == ("exogenous-events.yaml", 1)
    assert "expected key: value lines at the top level, got a list" in listed.message


def test_file_larger_than_one_mebibyte_is_refused(tmp_path: Path) -> None:
    huge = "background/huge.md"
    error = only_error(make_folder(tmp_path, valid_files(**{huge: "x" * (1024 * 1024 + 1)})))
    assert error.file == huge and "larger than 1 MiB" in error.message


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = SCENARIO + "\n".join(lines) + "\n"
    error = only_error(make_folder(tmp_path, valid_files(**{"scenario.yaml": bomb})))
    assert error.file == "scenario.yaml" and "refusing to load" in error.message


def test_self_referencing_alias_and_deep_nesting_are_refused(tmp_path: Path) -> None:
    deep = "a: " + "[" * 500 + "]" * 500 + "\n"
    folder = make_folder(tmp_path, valid_files(**{"metrics.yaml": "a: &r [*r]\n", "exogenous-events.yaml": deep}))
    errors = load_errors(folder)
    assert [error.file for error in errors] == ["metrics.yaml", "exogenous-events.yaml"]
    assert all("refusing to load" in error.message or "too deeply" in error.message for error in errors)


def test_unsafe_yaml_tags_are_errors(tmp_path: Path) -> None:
    hostile = SCENARIO + "payload: !!python/object/apply:os.system ['true']\n"
    error = only_error(make_folder(tmp_path, valid_files(**{"scenario.yaml": hostile})))
    assert (error.file, error.line) == ("scenario.yaml", 13)


def test_errors_in_several_files_are_reported_together(tmp_path: Path) -> None:
    files = valid_files(
        **{
            "scenario.yaml": SCENARIO.replace("turns: 4", "turns: 0").replace("- fishers", "- fishers\n  - nobody"),
            "actors/port-authority.yaml": PORT.replace("short_name: port", "short_name: ''"),
            "actors/fishers.yaml": "name: [\n",
            "validation-rules.yaml": RULES.replace("halt", "explode"),
        }
    )
    with pytest.raises(ScenarioLoadError) as caught:
        load_scenario_folder(make_folder(tmp_path, files))
    errors = caught.value.errors
    assert [(e.file, e.key_path, e.line) for e in errors] == [
        ("scenario.yaml", "turns", 5),
        ("scenario.yaml", "actors[2]", 10),
        ("actors/port-authority.yaml", "short_name", 2),
        ("actors/fishers.yaml", "", 2),
        ("validation-rules.yaml", "severity_thresholds.high", 7),
    ]
    report = str(caught.value)
    assert report.splitlines()[0] == f"Scenario folder {tmp_path.resolve()} has 5 problems:"
    assert len(report.splitlines()) == 6
    assert "scenario.yaml:5: turns: expected a number at least 1, got a number (0)" in report


def test_errors_format_and_pickle() -> None:
    error = LocatedError(
        "actors/mayor.yaml", "goals", 12, "expected a list of text, got a number (3)", "did you mean 'goal'?"
    )
    assert str(error) == (
        "actors/mayor.yaml:12: goals: expected a list of text, got a number (3). Did you mean 'goal'?"
    )
    assert str(LocatedError("scenario.yaml", "", None, "the file is empty")) == "scenario.yaml: the file is empty"
    raised = ScenarioLoadError("/tmp/x", [error])
    copy = pickle.loads(pickle.dumps(raised))
    assert copy.errors == (error,) and str(copy) == str(raised)


@pytest.mark.parametrize("value", ["2025-13-45", "!!int abc", "!!float abc", "!!timestamp foo"])
def test_values_yaml_cannot_build_are_located_errors(tmp_path: Path, value: str) -> None:
    scenario_text = SCENARIO + f"notes: {value}\n"
    error = only_error(make_folder(tmp_path, valid_files(**{"scenario.yaml": scenario_text})))
    assert error.file == "scenario.yaml"
    assert error.line == scenario_text.count("\n")
    assert "not a valid" in error.message and error.suggestion == "quote it to keep it as text"
