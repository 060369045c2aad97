"""The loader on valid folders: every file read, V1 shapes accepted, unknown keys kept, no traceback ever."""

from __future__ import annotations
from pathlib import Path
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from engine.scenario import LocatedError, Scenario, ScenarioLoadError, load_scenario_folder
from engine.scenario.tests.folders import (
    EVENTS,
    FISHERS,
    METRICS_DICT,
    METRICS_LIST,
    PORT,
    RULES,
    SCENARIO,
    make_folder,
    valid_files,
)

# The original project's folders sit beside the repository (../shared/v1-samples), in CI as here.
V1_SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "v1-samples" / "scenarios"


# ---- valid folders -----------------------------------------------------------------------------------------
def test_valid_folder_loads_every_file(tmp_path: Path) -> None:
    files = valid_files()
    files.update(
        {
            "metrics.yaml": METRICS_LIST,
            "validation-rules.yaml": RULES,
            "exogenous-events.yaml": EVENTS,
            "background/b-history.md": "# History\nOld harbour.\n",
            "background/a-geography.md": "Two towns, one bay.\n",
        }
    )
    scenario = Scenario.load(make_folder(tmp_path, files))

    assert scenario.name == "Harbour Dispute"
    assert scenario.config.turns == 4
    assert scenario.config.features.communications.max_per_turn == 3
    assert [actor.short_name for actor in scenario.actors] == ["port", "fishers"]  # the listed order, not a-z
    assert scenario.actor("port").constraints == ["Small budget", "Must consult the towns"]
    assert scenario.actor("fishers").goals == ["Keep fishing rights"]
    assert scenario.actor("fishers").decision_making_style == "cautious"
    assert [metric.name for metric in scenario.metric_definitions] == ["dredging_budget", "tension"]
    assert scenario.validation is not None and scenario.validation.action_for("high") == "halt"
    assert scenario.validation.checks["goal_consistency"].severity == "high"
    assert scenario.exogenous_events is not None
    assert scenario.exogenous_events.random_events[0].turn_range == (1, 3)
    assert [doc.name for doc in scenario.background] == ["a-geography", "b-history"]
    assert scenario.background[1].text == "# History\nOld harbour.\n"
    assert scenario.source == str(tmp_path.resolve())
    assert scenario.warnings == []


def test_metrics_in_v1_dict_form(tmp_path: Path) -> None:
    scenario = load_scenario_folder(make_folder(tmp_path, valid_files(**{"metrics.yaml": METRICS_DICT})))
    definitions = {metric.name: metric for metric in scenario.metric_definitions}
    assert definitions["boats_at_sea"].extraction.type == "pattern"
    assert definitions["boats_at_sea"].extraction.pattern == "(\\d+) boats"
    assert definitions["mood"].extraction.type == "manual"


def test_optional_files_absent_and_yml_accepted(tmp_path: Path) -> None:
    files = {"scenario.yml": SCENARIO, "actors/port-authority.yml": PORT, "actors/fishers.yaml": FISHERS}
    scenario = load_scenario_folder(make_folder(tmp_path, files))
    assert [actor.short_name for actor in scenario.actors] == ["port", "fishers"]
    assert scenario.metrics is None and scenario.validation is None and scenario.exogenous_events is None


def test_without_actors_list_all_actor_files_load_sorted(tmp_path: Path) -> None:
    scenario_text = SCENARIO.split("actors:")[0]
    folder = make_folder(tmp_path, valid_files(**{"scenario.yaml": scenario_text}))
    assert [actor.short_name for actor in load_scenario_folder(folder).actors] == ["fishers", "port"]


def test_actor_listed_by_short_name_falls_back_to_matching_file(tmp_path: Path) -> None:
    scenario_text = SCENARIO.replace("- port-authority", "- port")
    folder = make_folder(tmp_path, valid_files(**{"scenario.yaml": scenario_text}))
    assert [actor.short_name for actor in load_scenario_folder(folder).actors] == ["port", "fishers"]


def test_unknown_keys_are_kept_and_round_trip(tmp_path: Path) -> None:
    files = valid_files(
        **{
            "scenario.yaml": SCENARIO + "author: Sam\nfeatures_extra: {a: 1}\n",
            "actors/fishers.yaml": FISHERS + "mood: grumpy\n",
            "metrics.yaml": METRICS_LIST + "scenario_name: Harbour Dispute\n",
        }
    )
    scenario = load_scenario_folder(make_folder(tmp_path, files))
    assert scenario.config.model_extra == {"author": "Sam", "features_extra": {"a": 1}}
    assert scenario.actor("fishers").model_extra == {"mood": "grumpy"}
    dumped = scenario.model_dump()
    assert dumped["config"]["author"] == "Sam"
    assert dumped["actors"][1]["mood"] == "grumpy"
    assert dumped["metrics"]["scenario_name"] == "Harbour Dispute"
    assert Scenario.model_validate(dumped).config.model_extra == scenario.config.model_extra


def test_near_miss_keys_are_kept_with_a_warning(tmp_path: Path) -> None:
    scenario_text = SCENARIO.replace("turn_duration: 1 week", "turn: 3") + "featurs: {}\n"
    files = valid_files(**{"scenario.yaml": scenario_text, "actors/fishers.yaml": FISHERS + "goal: x\n"})
    scenario = load_scenario_folder(make_folder(tmp_path, files))
    assert scenario.config.model_extra == {"turn": 3, "featurs": {}}
    assert "scenario.yaml:6: unknown key 'turn' kept; did you mean 'turns'?" in scenario.warnings
    assert "scenario.yaml:13: unknown key 'featurs' kept; did you mean 'features'?" in scenario.warnings
    assert "actors/fishers.yaml:5: unknown key 'goal' kept; did you mean 'goals'?" in scenario.warnings


def test_nested_near_miss_and_duplicate_key_warnings(tmp_path: Path) -> None:
    scenario_text = SCENARIO.replace("max_per_turn: 3", "max_per_trun: 3") + "turns: 5\n"
    scenario = load_scenario_folder(make_folder(tmp_path, valid_files(**{"scenario.yaml": scenario_text})))
    assert scenario.config.turns == 5  # the last one wins, as with yaml.safe_load
    assert any("features.communications.max_per_trun" in w and "'max_per_turn'" in w for w in scenario.warnings)
    assert any(w.startswith("scenario.yaml:13: key 'turns' appears more than once") for w in scenario.warnings)


# ---- the real V1 folders must load unchanged ---------------------------------------------------------------
def test_v1_sample_folders_load() -> None:
    if not V1_SAMPLES.is_dir():
        pytest.skip(f"{V1_SAMPLES} is not present")
    folders = sorted(path for path in V1_SAMPLES.iterdir() if (path / "scenario.yaml").is_file())
    assert folders
    for folder in folders:
        scenario = load_scenario_folder(folder)
        assert scenario.actors, folder
        assert scenario.source == str(folder.resolve())


# ---- no traceback escapes, whatever the files hold ---------------------------------------------------------
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2000), st.floats(allow_nan=False), st.text(max_size=8))
_keys = st.sampled_from(
    [
        "name",
        "short_name",
        "turns",
        "goals",
        "metrics",
        "extraction",
        "type",
        "pattern",
        "checks",
        "severity",
        "features",
        "communications",
        "random_events",
        "effect",
        "actors",
        "x",
    ]
)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4), max_leaves=12
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(
            ["scenario.yaml", "actors/a.yaml", "metrics.yaml", "validation-rules.yaml", "exogenous-events.yaml"]
        ),
        _values,
        min_size=1,
    )
)
def test_arbitrary_content_loads_or_raises_a_load_error(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, object]
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    make_folder(folder, {name: yaml.safe_dump(value) for name, value in files.items()})
    try:
        load_scenario_folder(folder)
    except ScenarioLoadError as error:
        assert error.errors and all(isinstance(item, LocatedError) for item in error.errors)
