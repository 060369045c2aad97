"""V1's dict-form metrics read values as V1 did: the last match, its first non-empty group, the metric's type."""

from __future__ import annotations

import re

import pytest

from engine.phases.metrics import MetricsPhase, convert_v1_value, extract_by_pattern, v1_pattern_value
from engine.phases.tests.conftest import RUN_ID, SEED, build_scenario, make_context
from engine.scenario.metrics import LegacyMetricDefinition, MetricDefinition
from engine.sdk import initial_state
from engine.state import WorldState


def v1_metric(pattern: str, value_type: str | None = None) -> MetricDefinition:
    settings = {"extraction_method": "regex", "pattern": pattern}
    if value_type is not None:
        settings["type"] = value_type
    return LegacyMetricDefinition(**settings).to_definition("m")


# ---- conversion ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value_type", "expected"),
    [
        ("24", "integer", 24),
        (" 7", "integer", 7),
        ("1,250", "integer", "1,250"),  # does not convert: kept as text
        ("12.5", "integer", "12.5"),
        ("2.5", "float", 2.5),
        ("10^25", "float", 1e25),
        ("1.5^2", "float", 2.25),
        ("ten", "float", "ten"),
        ("10^25^2", "float", "10^25^2"),
        ("10^999", "float", "10^999"),  # too large for a float
        ("-8^0.5", "float", "-8^0.5"),  # not a real number
        ("inf", "float", "inf"),
        ("public", "string", "public"),
        ("42", "string", "42"),
        ("42", "unheard-of", "42"),
    ],
)
def test_values_convert_as_in_v1(text: str, value_type: str, expected: object) -> None:
    value = convert_v1_value(text, value_type)
    assert value == expected and type(value) is type(expected)


# ---- extraction ------------------------------------------------------------------------------------------
def test_the_last_match_counts() -> None:
    text = "A deadline of 72 hours was floated; later 24 hours was agreed."
    assert extract_by_pattern(v1_metric(r"(\d+)\s*hours", "integer"), text) == 24


def test_the_first_non_empty_group_counts() -> None:
    pattern = r"(?:(\d+) hours|(\d+) days)"
    assert v1_pattern_value(re.compile(pattern), "within 3 days", "integer") == 3
    assert v1_pattern_value(re.compile(pattern), "within 5 hours", "integer") == 5


def test_a_float_with_a_power_of_ten() -> None:
    metric = v1_metric(r"(\d+\^\d+)\s*FLOP", "float")
    assert extract_by_pattern(metric, "Runs above 10^26 FLOP, then above 10^25 flop.") == 1e25


def test_a_pattern_without_groups_gives_the_matched_text() -> None:
    metric = v1_metric(r"public|confidential", "string")
    assert extract_by_pattern(metric, "Results stay confidential, then become PUBLIC.") == "PUBLIC"
    assert extract_by_pattern(v1_metric(r"working\s+group", "integer"), "a working group") == "working group"


def test_boolean_is_true_when_matched() -> None:
    metric = v1_metric(r"ISO\s*42001", "boolean")
    assert extract_by_pattern(metric, "They cite iso 42001.") is True
    assert extract_by_pattern(metric, "No standard named.") is False


def test_no_match_gives_no_value() -> None:
    assert extract_by_pattern(v1_metric(r"(\d+) hours", "integer"), "No deadline yet.") is None


def test_without_a_type_the_value_is_text_as_in_v1() -> None:
    metric = v1_metric(r"(\d+) hours")
    assert metric.type == "string"
    assert extract_by_pattern(metric, "Within 48 hours.") == "48"


def test_the_engines_own_types_read_as_before() -> None:
    metric = MetricDefinition(name="m", extraction={"type": "pattern", "pattern": r"(\d+) hours"})
    assert extract_by_pattern(metric, "Within 48 hours, then 24 hours.") == 48.0  # first match, a number


# ---- the phase -------------------------------------------------------------------------------------------
async def test_the_phase_records_v1_typed_values() -> None:
    scenario = build_scenario(metrics={  # type: ignore[arg-type] - V1's dict form
        "reporting_hours": {"type": "integer", "extraction_method": "regex", "pattern": r"(\d+)-hour"},
        "threshold_flops": {"type": "float", "extraction_method": "regex", "pattern": r"(\d+\^\d+) FLOP"},
        "disclosure": {"type": "string", "extraction_method": "regex", "pattern": r"(public|confidential) audits"},
        "working_group": {"type": "boolean", "extraction_method": "regex", "pattern": r"working\s+group"},
    })
    state = initial_state(scenario, run_id=RUN_ID, seed=SEED).with_world_state(WorldState(
        1, "A 48-hour rule, then a 24-hour rule. Above 10^25 FLOP. Confidential audits. A working group forms."))
    state = await MetricsPhase().run(state, make_context(scenario))
    assert {m.name: m.value for m in state.metrics_in(1)} == {
        "reporting_hours": 24, "threshold_flops": 1e25, "disclosure": "Confidential", "working_group": True}
