"""Metrics: extraction by pattern, keyword and model answer; thresholds; the phase that records them."""

from __future__ import annotations

import pytest

from engine.events import EventType
from engine.phases.base import HaltRequested
from engine.phases.metrics import (
    MetricsPhase,
    extract_by_keywords,
    extract_by_pattern,
    number_from_answer,
    threshold_level,
)
from engine.phases.tests.conftest import RUN_ID, SEED, ScriptedProvider, build_scenario, make_context
from engine.scenario.schema import MetricDefinition
from engine.sdk import initial_state
from engine.state import Decision, PhaseName, WorldState


def pattern_metric(pattern: str, *, kind: str = "continuous") -> MetricDefinition:
    return MetricDefinition(name="m", type=kind, extraction={"type": "pattern", "pattern": pattern})


def keyword_metric(*keywords: str, scoring: str = "count") -> MetricDefinition:
    return MetricDefinition(name="k", extraction={"type": "keyword", "keywords": list(keywords), "scoring": scoring})


def limits(**thresholds) -> MetricDefinition:
    return MetricDefinition(name="t", extraction={"type": "manual"}, thresholds=thresholds)


# ---- extract_by_pattern ----------------------------------------------------------------------------------
def test_pattern_with_a_group_gives_the_number():
    assert extract_by_pattern(pattern_metric(r"(\d[\d,]*) cubic metres"), "The city may draw 1,250 cubic metres.") == 1250.0
    assert extract_by_pattern(pattern_metric(r"level (-?\d+\.\d+)"), "LEVEL -2.5 m") == -2.5  # case-insensitive


def test_pattern_without_a_group_counts_the_matches():
    assert extract_by_pattern(pattern_metric(r"\bstrike\b"), "Strike! A strike. No strikes.") == 2.0
    assert extract_by_pattern(pattern_metric("walkout"), "Calm talks.") == 0.0


def test_boolean_pattern_tells_presence():
    walkout = pattern_metric(r"walk(ed)? out", kind="boolean")
    assert extract_by_pattern(walkout, "The growers walked out.") is True
    assert extract_by_pattern(walkout, "Everyone stayed.") is False


def test_pattern_that_does_not_match_or_is_not_a_number_gives_none():
    assert extract_by_pattern(pattern_metric(r"(\d+) parties have signed"), "Nobody signed.") is None
    assert extract_by_pattern(pattern_metric(r"signed by (\w+)"), "signed by nobody") is None


# ---- extract_by_keywords ---------------------------------------------------------------------------------
TEXT = "Agreement on gauges; disagreement on quotas. A second agreement, then a water deal. Agreements follow."


def test_keywords_count_whole_words_only():
    assert extract_by_keywords(keyword_metric("agreement"), TEXT) == 2.0  # not "disagreement", not "Agreements"
    assert extract_by_keywords(keyword_metric("agreement", "water deal"), TEXT) == 3.0
    assert extract_by_keywords(keyword_metric("disagreement"), TEXT) == 1.0


def test_keyword_presence():
    assert extract_by_keywords(keyword_metric("water deal", scoring="presence"), TEXT) is True
    assert extract_by_keywords(keyword_metric("greement", scoring="presence"), TEXT) is False


def test_keyword_density_is_per_thousand_words():
    text = "deal " + "word " * 9  # 1 hit in 10 words
    assert extract_by_keywords(keyword_metric("deal", scoring="density"), text) == 100.0
    assert extract_by_keywords(keyword_metric("deal", scoring="density"), "") == 0.0


# ---- number_from_answer ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "value_range", "expected"),
    [
        ("7", None, 7.0),
        ("About 4.5 out of 10.", (0, 10), 4.5),
        ("Score: 12", (0, 10), 10.0),
        ("-3", (0, 10), 0.0),
        ("-3", None, -3.0),
        ("I cannot tell.", (0, 10), None),
    ],
)
def test_number_from_answer(answer, value_range, expected):
    assert number_from_answer(answer, value_range) == expected


# ---- threshold_level -------------------------------------------------------------------------------------
def test_thresholds_above():
    metric = limits(warning=5, critical=8)
    assert threshold_level(metric, 9.0) == "critical"
    assert threshold_level(metric, 8.0) == "critical"
    assert threshold_level(metric, 6.0) == "warning"
    assert threshold_level(metric, 2.0) is None


def test_thresholds_below():
    metric = limits(warning=30, critical=10, direction="below")
    assert threshold_level(metric, 5.0) == "critical"
    assert threshold_level(metric, 25.0) == "warning"
    assert threshold_level(metric, 50.0) is None


def test_no_threshold_level_for_missing_values_or_booleans():
    assert threshold_level(limits(critical=0.5), None) is None
    assert threshold_level(limits(critical=0.5), True) is None
    assert threshold_level(MetricDefinition(name="x", extraction={"type": "manual"}), 100.0) is None


# ---- the phase -------------------------------------------------------------------------------------------
METRICS = [
    {"name": "clauses_open", "extraction": {"type": "pattern", "pattern": r"(\d+) clauses remain"}},
    {"name": "compromise_talk", "actor_specific": True, "extraction": {"type": "keyword", "keywords": ["compromise"]}},
    {
        "name": "city_concessions",
        "actor_specific": True,
        "actor": "Varn City",
        "extraction": {"type": "keyword", "keywords": ["concede"]},
    },
    {
        "name": "trust",
        "range": [0, 10],
        "extraction": {"type": "llm", "prompt": "How much do the parties trust each other, 0 to 10?"},
    },
    {"name": "mood", "extraction": {"type": "manual"}},
]
ACTIONS = {
    "upland": "We offer a compromise on the trigger, a real compromise.",
    "city": "We concede the gauge question.",
    "growers": "We hold firm.",
}


def played(scenario):
    """Turn 1 after the world update: decisions and a new world that says 4 clauses remain."""
    state = initial_state(scenario, run_id=RUN_ID, seed=SEED)
    for actor, action in ACTIONS.items():
        state = state.with_decision(Decision(1, actor, ("g",), ("p",), "Because.", action))
    return state.with_world_state(WorldState(1, "Talks go on; 4 clauses remain unresolved."))


async def test_the_phase_records_world_actor_and_llm_metrics():
    scenario = build_scenario(metrics=METRICS)
    ctx = make_context(scenario)
    state = await MetricsPhase().run(played(scenario), ctx)
    values = {(m.name, m.actor): m for m in state.metrics_in(1)}

    assert values[("clauses_open", None)].value == 4.0
    assert values[("clauses_open", None)].source == "pattern"
    assert {a: values[("compromise_talk", a)].value for a in ACTIONS} == {"upland": 2.0, "city": 0.0, "growers": 0.0}
    assert values[("city_concessions", "city")].value == 1.0
    assert ("city_concessions", "upland") not in values
    trust = values[("trust", None)]
    assert trust.source == "llm" and isinstance(trust.value, float) and 0 <= trust.value <= 10
    assert not any(name == "mood" for name, _ in values)  # manual metrics are entered by people
    assert len(values) == 6


async def test_only_llm_metrics_cost_a_call_booked_under_metrics():
    scenario = build_scenario(metrics=METRICS)
    ctx = make_context(scenario)
    await MetricsPhase().run(played(scenario), ctx)
    [record] = ctx.llm.take_records()
    assert (record.phase, record.actor, record.provider, record.cost) == (PhaseName.METRICS, None, "offline", 0.0)
    assert record.model == "test/world-model"  # no validation model in this scenario


async def test_an_llm_metric_reads_the_number_from_the_answer_and_clamps_it():
    scenario = build_scenario(metrics=[METRICS[3]])
    provider = ScriptedProvider({"metric": "I would say 14, honestly."})
    state = await MetricsPhase().run(played(scenario), make_context(scenario, provider))
    [trust] = state.metrics_in(1)
    assert trust.value == 10.0
    [request] = provider.requests
    assert "How much do the parties trust each other" in request.prompt_text
    assert "4 clauses remain unresolved" in request.prompt_text


async def test_a_metric_recorded_event_per_value():
    scenario = build_scenario(metrics=METRICS)
    ctx = make_context(scenario)
    state = await MetricsPhase().run(played(scenario), ctx)
    events = ctx.bus.get_history(EventType.METRIC_RECORDED)
    assert sorted((e.data["name"], e.data["actor"] or "") for e in events) == sorted(
        (m.name, m.actor or "") for m in state.metrics_in(1)
    )


async def test_a_rerun_measures_only_what_is_missing():
    scenario = build_scenario(metrics=METRICS)
    once = await MetricsPhase().run(played(scenario), make_context(scenario))
    provider = ScriptedProvider({})
    twice = await MetricsPhase().run(once, make_context(scenario, provider))
    assert twice.metrics == once.metrics
    assert provider.requests == []


async def test_metrics_extraction_off_records_nothing():
    scenario = build_scenario(metrics=METRICS, features={"metrics_extraction": False})
    state = played(scenario)
    assert await MetricsPhase().run(state, make_context(scenario, ScriptedProvider({}))) is state


async def test_a_critical_threshold_with_halt_on_critical_stops_after_recording():
    halting = {
        "name": "clauses_open",
        "extraction": {"type": "pattern", "pattern": r"(\d+) clauses remain"},
        "thresholds": {"warning": 2, "critical": 3, "halt_on_critical": True},
    }
    scenario = build_scenario(metrics=[halting, METRICS[1]])
    ctx = make_context(scenario)
    with pytest.raises(HaltRequested, match="clauses_open"):
        await MetricsPhase().run(played(scenario), ctx)
    recorded = {(m.name, m.actor): m.value for m in ctx.progress.metrics_in(1)}
    assert recorded[("clauses_open", None)] == 4.0
    assert len(recorded) == 4  # the other metrics are kept too
    [event] = [e for e in ctx.bus.get_history(EventType.METRIC_RECORDED) if e.data["name"] == "clauses_open"]
    assert event.data["threshold"] == "critical"


async def test_a_critical_threshold_without_halt_on_critical_does_not_stop():
    warning_only = {
        "name": "clauses_open",
        "extraction": {"type": "pattern", "pattern": r"(\d+) clauses remain"},
        "thresholds": {"critical": 3},
    }
    scenario = build_scenario(metrics=[warning_only])
    state = await MetricsPhase().run(played(scenario), make_context(scenario))
    assert [m.value for m in state.metrics_in(1)] == [4.0]
