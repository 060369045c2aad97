"""The loader on V1's forms: one test per form the original program read, and the errors those forms can have."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.phases.metrics import extract_by_pattern
from engine.scenario import Scenario, ScenarioLoadError, load_scenario_folder
from engine.scenario.export import export_scenario_folder, scenario_folder_files
from engine.scenario.tests.folders import (
    EVENTS,
    FISHERS,
    METRICS_DICT,
    PORT,
    SCENARIO,
    V1_EAST,
    V1_EVENTS_LIST,
    V1_METRICS_LIST,
    V1_METRICS_TYPED,
    V1_RULES,
    V1_SCENARIO,
    V1_WEST,
    make_folder,
    only_error,
    valid_files,
)

# The original project's folders sit beside the repository (../shared/v1-samples), in CI as here.
V1_SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "v1-samples" / "scenarios"
COMPARED = {"source", "warnings"}


def v1_files(**overrides: str) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"scenario.yaml": V1_SCENARIO, "actors/east.yaml": V1_EAST,
                                     "actors/west.yaml": V1_WEST}
    files.update(overrides)
    return files


def load_v1(tmp_path: Path, **overrides: str) -> Scenario:
    return load_scenario_folder(make_folder(tmp_path, v1_files(**overrides)))


def round_trip(scenario: Scenario, folder: Path) -> Scenario:
    export_scenario_folder(scenario, folder)
    again = Scenario.load(folder)
    assert again.model_dump(exclude=COMPARED) == scenario.model_dump(exclude=COMPARED)
    assert again.warnings == scenario.warnings
    return again


# ---- scenario.yaml -----------------------------------------------------------------------------------------
def test_v1_scenario_yaml_loads_with_its_names(tmp_path: Path) -> None:
    config = load_v1(tmp_path).config
    assert (config.name, config.turn_duration, config.world_state_model) == (
        "Canal Tolls", "2 weeks", "openai/gpt-4o-mini")
    assert config.system_prompt.startswith("You play one borough")
    assert config.actors == ["east", "west"]


def test_num_turns_is_turns(tmp_path: Path) -> None:
    scenario = load_v1(tmp_path)
    assert scenario.config.turns == 5
    assert "num_turns" not in (scenario.config.model_extra or {})
    assert "turns: 5" in scenario_folder_files(scenario)["scenario.yaml"]  # written back under the engine's name


@pytest.mark.parametrize("length", ["scenario_length: 7", "scenario_length:\n  type: fixed\n  turns: 7"])
def test_scenario_length_is_turns(tmp_path: Path, length: str) -> None:
    text = V1_SCENARIO.replace("num_turns: 5", length)
    assert load_v1(tmp_path, **{"scenario.yaml": text}).config.turns == 7


def test_condition_scenario_length_next_to_turns_is_kept(tmp_path: Path) -> None:
    text = V1_SCENARIO + "scenario_length:\n  type: condition\n  condition: the tolls are settled\n"
    config = load_v1(tmp_path, **{"scenario.yaml": text}).config
    assert config.turns == 5
    assert config.model_extra["scenario_length"] == {"type": "condition", "condition": "the tolls are settled"}


def test_context_window_is_context_window_size(tmp_path: Path) -> None:
    assert load_v1(tmp_path).config.context_window_size == 2


def test_communication_switches_map_onto_features(tmp_path: Path) -> None:
    text = V1_SCENARIO + "enable_public_statements: false\n"
    config = load_v1(tmp_path, **{"scenario.yaml": text}).config
    communications = config.features.communications
    assert (communications.bilateral, communications.coalition, communications.public) == (True, False, False)
    assert communications.max_per_turn == 1 and communications.enabled
    assert not {"enable_bilateral_communication", "enable_coalition_formation", "enable_public_statements",
                "max_communications_per_turn"} & set(config.model_extra or {})


def test_communication_types_list_switches_channels(tmp_path: Path) -> None:
    text = SCENARIO + "communication_types: [public, coalition]\n"
    communications = load_scenario_folder(make_folder(tmp_path / "some", valid_files(**{"scenario.yaml": text}))
                                          ).config.features.communications
    assert (communications.bilateral, communications.coalition, communications.public) == (False, True, True)
    assert communications.max_per_turn == 3  # features.communications in the same file still counts


def test_every_channel_switched_off_turns_communications_off(tmp_path: Path) -> None:
    text = V1_SCENARIO.replace("enable_bilateral_communication: true", "enable_bilateral_communication: false")
    text += "enable_public_statements: false\n"
    assert load_v1(tmp_path, **{"scenario.yaml": text}).config.features.communications.enabled is False


def test_black_swans_and_other_extra_keys_are_kept_and_exported(tmp_path: Path) -> None:
    scenario = load_v1(tmp_path / "in")
    assert scenario.config.model_extra == {
        "black_swans": [{"name": "flood", "description": "The canal bursts its banks.", "probability": 0.1}],
        "author": "Canal Office",
    }
    again = round_trip(scenario, tmp_path / "out")
    assert again.config.model_extra == scenario.config.model_extra
    assert again.config.features.communications == scenario.config.features.communications


# ---- actors/*.yaml -----------------------------------------------------------------------------------------
def test_actor_model_is_llm_model(tmp_path: Path) -> None:
    scenario = load_v1(tmp_path)
    assert scenario.actor("east").llm_model == "openai/gpt-4o"
    assert scenario.actor("west").llm_model == "openai/gpt-4o-mini"


def test_actor_v1_fields_goals_expertise_style_control(tmp_path: Path) -> None:
    east, west = load_v1(tmp_path).actors
    assert east.goals == ["Lower the tolls", "Repair the gates"] and west.goals == ["Keep the tolls"]
    assert east.constraints == ["Cannot raise local taxes"]
    assert east.expertise_text == "engineering: expert"
    assert (east.decision_making_style, west.decision_making_style) == ("Careful and slow", "bold")
    assert (east.control, west.control) == ("human", "ai")


def test_long_term_goals_is_goals(tmp_path: Path) -> None:
    text = V1_WEST.replace("goals: [Keep the tolls]", "long_term_goals: |\n  - Keep the tolls\n  - Win the contract")
    assert load_v1(tmp_path, **{"actors/west.yaml": text}).actor("west").goals == ["Keep the tolls",
                                                                                   "Win the contract"]


def test_top_level_private_information_joins_information_access(tmp_path: Path) -> None:
    scenario = load_v1(tmp_path / "in")
    assert scenario.actor("east").private_information == ["Last year's toll receipts",
                                                           "The east gate will fail within a month."]
    assert scenario.actor("west").private_information == ["Holds the bridge repair contract",
                                                          "Owes the east borough money"]
    again = round_trip(scenario, tmp_path / "out")  # kept as written, so it exports again
    assert again.actor("east").model_extra["private_information"] == "The east gate will fail within a month."


def test_actor_extra_keys_are_kept(tmp_path: Path) -> None:
    scenario = load_v1(tmp_path / "in")
    assert scenario.actor("east").model_extra["favourite_boat"] == "The Heron"
    assert round_trip(scenario, tmp_path / "out").actor("east").model_extra["favourite_boat"] == "The Heron"


# ---- metrics.yaml ------------------------------------------------------------------------------------------
def test_v1_dict_metrics_keep_their_value_types(tmp_path: Path) -> None:
    scenario = load_v1(tmp_path, **{"metrics.yaml": V1_METRICS_TYPED})
    metrics = {metric.name: metric for metric in scenario.metric_definitions}
    assert {name: metric.type for name, metric in metrics.items()} == {
        "toll_pence": "integer", "dredged_volume": "float", "gates_repaired": "boolean", "stance": "string",
        "mood": "string"}
    assert metrics["stance"].extraction.type == "pattern"  # a pattern without extraction_method: regex, as in V1
    assert metrics["mood"].extraction.type == "manual" and metrics["mood"].actor == "East Borough"
    text = "A toll of 12 pence, then a toll of 15 pence. 2.5^3 cubic metres dredged. The gates were repaired."
    assert extract_by_pattern(metrics["toll_pence"], text) == 15
    assert extract_by_pattern(metrics["dredged_volume"], text) == 15.625
    assert extract_by_pattern(metrics["gates_repaired"], text) is True
    assert extract_by_pattern(metrics["stance"], "An open canal, then a closed canal.") == "closed"
    assert scenario.metrics.model_extra == {"scenario_name": "Canal Tolls"}


def test_v1_list_metrics_with_ranges_categories_and_thresholds(tmp_path: Path) -> None:
    scenario = load_v1(tmp_path / "in", **{"metrics.yaml": V1_METRICS_LIST})
    goodwill, talks, barges, ombudsman = scenario.metric_definitions
    assert goodwill.range == (0, 10) and goodwill.extraction.type == "llm"
    assert goodwill.thresholds is not None and goodwill.thresholds.direction == "below"
    assert talks.model_extra == {"categories": ["stalled", "moving", "settled"]}
    assert (barges.extraction.type, ombudsman.extraction.type) == ("pattern", "manual")
    round_trip(scenario, tmp_path / "out")


# ---- validation-rules.yaml ---------------------------------------------------------------------------------
def test_validation_rules_with_prompt_templates_load(tmp_path: Path) -> None:
    rules = load_v1(tmp_path, **{"validation-rules.yaml": V1_RULES}).validation
    assert rules is not None
    assert list(rules.enabled_checks) == ["actor_decision_consistency"]
    template = rules.checks["actor_decision_consistency"].prompt_template or ""
    assert "{actor_profile}" in template and "{actor_action}" in template
    assert rules.checks["world_state_coherence"].prompt_template == (
        "Before: {previous_world_state} After: {new_world_state}")
    assert rules.model_extra == {"generate_turn_reports": True}


# ---- exogenous-events.yaml ---------------------------------------------------------------------------------
def test_exogenous_events_by_kind_load(tmp_path: Path) -> None:
    events = load_v1(tmp_path, **{"exogenous-events.yaml": EVENTS}).exogenous_events
    assert events is not None
    assert [event.name for event in events.random_events + events.scheduled_events] == ["storm", "election"]


def test_v1_flat_exogenous_events_list_becomes_the_engines_lists(tmp_path: Path) -> None:
    scenario = load_v1(tmp_path / "in", **{"exogenous-events.yaml": V1_EVENTS_LIST})
    events = scenario.exogenous_events
    assert events is not None
    (trend,), (scheduled,), (random,), (conditional,) = (
        events.trends, events.scheduled_events, events.random_events, events.conditional_events)
    # every 2 turns from turn 1 to 6: turns 1, 3 and 5, each its own effect
    assert [effect.turn_range for effect in trend.effects] == [(1, 1), (3, 3), (5, 5)]
    assert trend.probability_per_turn == 1.0
    assert (scheduled.schedule.turns, scheduled.effect) == ([3], "Both boroughs elect new councils.")
    assert (random.probability, random.turn_range, random.once) == (0.2, (2, 5), False)
    assert [(c.metric, c.operator, c.value) for c in conditional.conditions] == [
        ("toll_pence", ">=", 40.0), ("goodwill", "<", 2.0)]
    assert conditional.model_extra["turn_range"] == [2, 9]  # kept, and applied by engine.phases.exogenous
    assert scenario.warnings == []
    exported = scenario_folder_files(scenario)["exogenous-events.yaml"]
    assert "exogenous_events" not in exported and "v1_events" not in exported
    round_trip(scenario, tmp_path / "out")


# ---- the definition/ layout --------------------------------------------------------------------------------
def _definition_layout(**outside: str) -> dict[str, str | bytes]:
    files = {f"definition/{name}": text for name, text in v1_files(**{"metrics.yaml": V1_METRICS_TYPED}).items()}
    files.update(outside)
    return files


def test_scenario_folder_with_a_definition_subfolder(tmp_path: Path) -> None:
    scenario = load_scenario_folder(make_folder(tmp_path, _definition_layout()))
    assert scenario.name == "Canal Tolls"
    assert [actor.short_name for actor in scenario.actors] == ["east", "west"]
    assert scenario.metrics is not None
    assert scenario.source == str((tmp_path / "definition").resolve())
    assert scenario.warnings == []


def test_the_definition_folder_itself(tmp_path: Path) -> None:
    make_folder(tmp_path, _definition_layout())
    scenario = load_scenario_folder(tmp_path / "definition")
    assert [actor.short_name for actor in scenario.actors] == ["east", "west"]
    assert scenario.source == str((tmp_path / "definition").resolve())


@pytest.mark.parametrize("where", ["definition/exogenous-events.yaml", "exogenous-events.yaml"])
def test_exogenous_events_inside_or_next_to_definition(tmp_path: Path, where: str) -> None:
    scenario = load_scenario_folder(make_folder(tmp_path, _definition_layout(**{where: EVENTS})))
    assert scenario.exogenous_events is not None and scenario.exogenous_events.random_events[0].name == "storm"
    outside = where == "exogenous-events.yaml"
    assert scenario.warnings == ([
        "exogenous-events.yaml: used from the scenario folder, as definition/ has no exogenous-events.yaml"]
        if outside else [])


def test_own_scenario_yaml_wins_over_definition_with_a_warning(tmp_path: Path) -> None:
    files = valid_files()
    files.update(_definition_layout())
    scenario = load_scenario_folder(make_folder(tmp_path, files))
    assert scenario.name == "Harbour Dispute"
    assert scenario.warnings == [f"definition/: not loaded, as this folder has its own scenario.yaml; pass "
                                 f"{tmp_path.resolve() / 'definition'} to load the one in definition/"]


def test_errors_in_a_definition_layout_name_the_file_inside_it(tmp_path: Path) -> None:
    files = _definition_layout()
    files["definition/actors/west.yaml"] = V1_WEST.replace("short_name: west", "short_name: world")
    error = only_error(make_folder(tmp_path, files))
    assert (error.file, error.key_path, error.line) == ("definition/actors/west.yaml", "short_name", 2)


# ---- the real V1 folders -----------------------------------------------------------------------------------
@pytest.mark.skipif(not V1_SAMPLES.is_dir(), reason=f"V1 sample folders not found at {V1_SAMPLES}")
def test_every_v1_sample_folder_loads_with_its_quirks() -> None:
    loaded = {folder.name: load_scenario_folder(folder) for folder in sorted(V1_SAMPLES.iterdir())
              if folder.is_dir()}
    assert loaded and all(scenario.actors for scenario in loaded.values())
    for scenario in loaded.values():
        assert len(scenario.actors) == len(scenario.config.actors) and scenario.config.turns >= 1
    # quirks seen in them: actors listed by file name but named otherwise, dict-form metrics naming an actor by
    # its full name, expertise as a mapping, private lists under information_access
    dict_metrics = [s for s in loaded.values() if s.metrics is not None and isinstance(s.metrics.metrics, dict)]
    assert all(m.type in {"integer", "float", "boolean", "string"} for s in dict_metrics for m in s.metric_definitions)
    assert any(actor.private_information for s in loaded.values() for actor in s.actors)


# ---- errors of the new forms -------------------------------------------------------------------------------
def test_turns_and_num_turns_disagree(tmp_path: Path) -> None:
    error = only_error(make_folder(tmp_path, v1_files(**{"scenario.yaml": V1_SCENARIO + "turns: 4\n"})))
    assert (error.file, error.key_path, error.line) == ("scenario.yaml", "num_turns", 6)
    assert "'num_turns' (5) and 'turns' (4)" in error.message and "'turns' is at line 21" in error.message
    assert error.suggestion == "keep one of 'turns' and 'num_turns'"


def test_turns_and_num_turns_that_agree_are_fine(tmp_path: Path) -> None:
    scenario = load_v1(tmp_path, **{"scenario.yaml": V1_SCENARIO + "turns: 5\n"})
    assert scenario.config.turns == 5 and "num_turns" not in (scenario.config.model_extra or {})


def test_model_and_llm_model_disagree(tmp_path: Path) -> None:
    text = V1_EAST + "llm_model: openai/gpt-4o-mini\n"
    error = only_error(make_folder(tmp_path, v1_files(**{"actors/east.yaml": text})))
    assert (error.file, error.key_path, error.line) == ("actors/east.yaml", "model", 3)
    assert "'llm_model' is at line 19" in error.message


def test_decision_style_and_decision_making_style_disagree(tmp_path: Path) -> None:
    text = V1_EAST + "decision_style: hasty\n"
    error = only_error(make_folder(tmp_path, v1_files(**{"actors/east.yaml": text})))
    assert (error.key_path, error.line) == ("decision_style", 19)


def test_bad_value_under_a_v1_name_points_at_that_name(tmp_path: Path) -> None:
    error = only_error(make_folder(tmp_path, v1_files(**{"scenario.yaml": V1_SCENARIO.replace(
        "context_window: 2", "context_window: -1")})))
    assert (error.key_path, error.line) == ("context_window", 9)


def test_bad_v1_switch_value_points_at_the_switch(tmp_path: Path) -> None:
    text = V1_SCENARIO.replace("max_communications_per_turn: 1", "max_communications_per_turn: lots")
    error = only_error(make_folder(tmp_path, v1_files(**{"scenario.yaml": text})))
    assert (error.key_path, error.line) == ("max_communications_per_turn", 12)
    assert error.message == "expected a whole number, got text ('lots')"


def test_v1_switch_that_contradicts_features(tmp_path: Path) -> None:
    text = V1_SCENARIO + "features:\n  communications:\n    coalition: true\n"
    error = only_error(make_folder(tmp_path, v1_files(**{"scenario.yaml": text})))
    assert (error.key_path, error.line) == ("enable_coalition_formation", 11)
    assert "'features.communications.coalition' is at line 23" in error.message


def test_unknown_communication_type(tmp_path: Path) -> None:
    text = V1_SCENARIO + "communication_types: [public, private]\n"
    error = only_error(make_folder(tmp_path, v1_files(**{"scenario.yaml": text})))
    assert (error.key_path, error.line) == ("communication_types[1]", 21)


def test_condition_scenario_length_without_turns(tmp_path: Path) -> None:
    """A condition is a comparison of metrics (engine.scenario.conditions); prose with no turns to fall back on
    cannot be played."""
    text = V1_SCENARIO.replace("num_turns: 5", "scenario_length:\n  type: condition\n  condition: peace")
    error = only_error(make_folder(tmp_path, v1_files(**{"scenario.yaml": text})))
    assert (error.key_path, error.line) == ("scenario_length.condition", 8)
    assert "expected a comparison" in error.message
    assert error.suggestion == "compare metrics with numbers, e.g. `cooperation_level >= 8 or turns >= 20`"


def test_private_information_of_the_wrong_shape(tmp_path: Path) -> None:
    text = V1_WEST.split("private_information:")[0] + "private_information: {budget: 3}\n"
    error = only_error(make_folder(tmp_path, v1_files(**{"actors/west.yaml": text})))
    assert (error.file, error.key_path, error.line) == ("actors/west.yaml", "private_information", 6)


def test_v1_event_errors_are_located(tmp_path: Path) -> None:
    text = V1_EVENTS_LIST.replace("    turn: 3\n", "").replace('"< 2"', '"low"')
    folder = make_folder(tmp_path, v1_files(**{"exogenous-events.yaml": text}))
    with pytest.raises(ScenarioLoadError) as caught:
        load_scenario_folder(folder)
    assert [(e.file, e.key_path, e.line) for e in caught.value.errors] == [("exogenous-events.yaml", "exogenous_events[1]", 7),
                      ("exogenous-events.yaml", "exogenous_events[3].conditions", 20)]


def test_dict_metric_without_type_reads_text_as_in_v1(tmp_path: Path) -> None:
    files = valid_files(**{"metrics.yaml": METRICS_DICT, "actors/port-authority.yaml": PORT,
                           "actors/fishers.yaml": FISHERS})
    scenario = load_scenario_folder(make_folder(tmp_path, files))
    assert scenario.config.features.communications.max_per_turn == 3
    assert {m.name: m.type for m in scenario.metric_definitions} == {"boats_at_sea": "string", "mood": "string"}
