"""Metrics: extraction by pattern, keyword and model answer; thresholds; the phase that records them."""

from __future__ import annotations

import pytest

from engine.events import EventType
from engine.phases.base import HaltRequested
from engine.llm.cache import CachingProvider, MemoryResponseCache
from engine.phases.metrics import (
    MetricsPhase,
    extract_by_keywords,
    extract_by_pattern,
    metric_answer,
    number_from_answer,
    threshold_level,
)
from engine.phases.tests.conftest import RUN_ID, SEED, ScriptedProvider, build_scenario, make_context
from engine.scenario.metrics import MetricDefinition
from engine.sdk import initial_state
from engine.state import Decision, MetricRecord, PhaseType, WorldState
from engine.testing.providers import FixedCostProvider


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
    assert (record.phase, record.actor, record.provider, record.cost) == (PhaseType.METRICS, None, "offline", 0.0)
    assert record.model == "test/world-model"  # no validation model in this scenario


async def test_an_llm_metric_asks_for_structured_output_and_clamps_the_value():
    scenario = build_scenario(metrics=[METRICS[3]])
    provider = ScriptedProvider({"metric": {"value": 14}})
    state = await MetricsPhase().run(played(scenario), make_context(scenario, provider))
    [trust] = state.metrics_in(1)
    assert trust.value == 10.0
    [request] = provider.requests
    assert request.schema_name == "MetricAnswer"
    assert request.json_schema["required"] == ["value"] and request.json_schema["properties"]["value"]["type"] == "number"
    assert "How much do the parties trust each other" in request.prompt_text
    assert "4 clauses remain unresolved" in request.prompt_text


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ('{"value": 6.5}', None, 6.5),  # JSON as text
        ("", {"value": 3}, 3.0),  # decoded by the provider
        ('```json\n{"value": -2}\n```', None, 0.0),  # fenced, clamped
        ("I would say 14, honestly.", None, 10.0),  # a model without structured output, as V1's prompts ask
        ('{"value": "high"}', None, None),  # no number at all: not measured
        ("I cannot tell.", None, None),
    ],
)
def test_metric_answer(text, data, expected):
    assert metric_answer(text, data, (0, 10)) == expected


async def test_an_llm_metric_is_answered_from_the_response_cache_the_second_time():
    """The site wraps a run's provider in a CachingProvider (runs.execution.executor.provider_for_run): the same judgement
    asked again is a free replay, still booked under metrics with `cached` set."""
    scenario = build_scenario(metrics=[METRICS[3]])
    paid = FixedCostProvider(scenario, cost_per_call=0.01)
    cache = MemoryResponseCache()
    values = []
    for _ in range(2):
        ctx = make_context(scenario, CachingProvider(paid, cache))
        state = await MetricsPhase().run(played(scenario), ctx)
        [record] = ctx.llm.take_records()
        values.append(state.metrics_in(1)[0].value)
        assert record.phase == PhaseType.METRICS
    assert paid.calls == 1, "the second judgement came from the cache"
    assert (record.cached, record.cost) == (True, 0.0)
    assert values[0] == values[1] is not None


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


# ---- threshold events ------------------------------------------------------------------------------------
OPEN_CLAUSES = {"name": "clauses_open", "extraction": {"type": "pattern", "pattern": r"(\d+) clauses remain"}}


def crossings(ctx):
    return [dict(e.data) for e in ctx.bus.get_history(EventType.METRIC_THRESHOLD_CROSSED)]


async def test_a_value_past_a_threshold_emits_a_crossing_after_its_record():
    scenario = build_scenario(metrics=[{**OPEN_CLAUSES, "thresholds": {"warning": 3, "critical": 8}}, METRICS[1]])
    ctx = make_context(scenario)
    await MetricsPhase().run(played(scenario), ctx)
    assert crossings(ctx) == [{"turn": 1, "name": "clauses_open", "actor": None, "value": 4.0, "level": "warning", "limit": 3.0,
                               "direction": "above", "previous_level": None, "halts": False}]
    order = [(e.type, e.data["name"]) for e in ctx.bus.get_history() if e.data.get("name") == "clauses_open"]
    assert order == [(EventType.METRIC_RECORDED, "clauses_open"), (EventType.METRIC_THRESHOLD_CROSSED, "clauses_open")]


async def test_a_value_below_every_threshold_emits_no_crossing():
    scenario = build_scenario(metrics=[{**OPEN_CLAUSES, "thresholds": {"warning": 5, "critical": 8}}])
    ctx = make_context(scenario)
    await MetricsPhase().run(played(scenario), ctx)
    assert crossings(ctx) == []
    assert ctx.bus.get_history(EventType.METRIC_RECORDED)[0].data["threshold"] is None


async def test_a_falling_metric_crosses_below_and_says_what_it_was_the_turn_before():
    """direction: below; the crossing carries the previous turn's level, so a new crossing can be told apart."""
    scenario = build_scenario(metrics=[{**OPEN_CLAUSES, "thresholds": {"warning": 5, "critical": 4, "direction": "below"}}])
    state = played(scenario).with_metric(MetricRecord(turn=0, name="clauses_open", value=5.0, source="pattern"))
    ctx = make_context(scenario)
    await MetricsPhase().run(state, ctx)
    [crossing] = crossings(ctx)
    assert (crossing["level"], crossing["limit"], crossing["direction"], crossing["previous_level"]) == ("critical", 4.0, "below", "warning")


async def test_per_actor_crossings_and_a_halting_critical_one():
    talk = {**METRICS[1], "thresholds": {"warning": 1, "critical": 2, "halt_on_critical": True}}
    scenario = build_scenario(metrics=[talk])
    ctx = make_context(scenario)
    with pytest.raises(HaltRequested, match="compromise_talk reached its critical threshold"):
        await MetricsPhase().run(played(scenario), ctx)
    assert [(c["actor"], c["level"], c["halts"]) for c in crossings(ctx)] == [("upland", "critical", True)]


async def test_booleans_and_unmeasured_values_never_cross():
    scenario = build_scenario(metrics=[{**METRICS[3], "thresholds": {"warning": 0}}])
    ctx = make_context(scenario, ScriptedProvider({"metric": "no idea"}))
    state = await MetricsPhase().run(played(scenario), ctx)
    assert state.metrics_in(1)[0].value is None
    assert crossings(ctx) == []
