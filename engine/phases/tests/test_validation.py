"""Validation: reading verdicts, filling templates, per-actor and per-turn checks, halting, events."""

from __future__ import annotations

import json

import pytest

from engine.events import EventType
from engine.llm.provider import StructuredOutputError
from engine.phases.base import HaltRequested
from engine.phases.tests.conftest import RUN_ID, SEED, ScriptedProvider, build_scenario, make_context
from engine.phases.validation import ValidationPhase, fill_template, is_per_actor, parse_verdict
from engine.scenario.schema import ValidationCheck
from engine.sdk import initial_state
from engine.state import Communication, CommunicationKind, Decision, WorldState

PASS = {"passed": True, "severity": "low", "issues": [], "explanation": "Fine."}
FAIL_HIGH = {"passed": False, "severity": "high", "issues": ["The new world ignores the flood."], "explanation": "Gap."}

V1_ANSWER = """\
CONSISTENT: No

ISSUES FOUND:
- The city promises money the council has not approved
- None

SEVERITY: High

EXPLANATION:
The action breaks a stated constraint.
"""


# ---- parse_verdict ---------------------------------------------------------------------------------------
def test_parse_verdict_reads_json():
    verdict = parse_verdict("```json\n" + json.dumps(FAIL_HIGH) + "\n```")
    assert (verdict.passed, verdict.severity, verdict.issues) == (False, "high", ["The new world ignores the flood."])


def test_parse_verdict_reads_v1_text():
    verdict = parse_verdict(V1_ANSWER)
    assert verdict.passed is False
    assert verdict.severity == "high"
    assert verdict.issues == ["The city promises money the council has not approved"]
    assert "breaks a stated constraint" in verdict.explanation


@pytest.mark.parametrize("label", ["COHERENT", "VALID ACCESS", "consistent"])
def test_parse_verdict_reads_other_v1_labels(label):
    verdict = parse_verdict(f"{label}: [Yes]\n\nISSUES FOUND:\n- None\n")
    assert verdict.passed is True
    assert verdict.issues == []
    assert verdict.severity == "low"


def test_parse_verdict_rejects_an_answer_without_a_verdict():
    with pytest.raises(StructuredOutputError):
        parse_verdict("The turn looks plausible overall.")


# ---- templates -------------------------------------------------------------------------------------------
def test_fill_template_replaces_known_placeholders_and_leaves_other_braces():
    template = 'Actor: {actor_name}. Answer like {"passed": true}. Unknown: {mystery}. Again: {actor_name}'
    filled = fill_template(template, {"actor_name": "Varn City"})
    assert filled == 'Actor: Varn City. Answer like {"passed": true}. Unknown: {mystery}. Again: Varn City'


def test_which_checks_run_per_actor():
    assert not is_per_actor("actor_world", ValidationCheck(prompt_template="Old {previous_world_state}"))
    assert is_per_actor("anything", ValidationCheck(prompt_template="Who: {actor_name}"))
    assert is_per_actor("actor_consistency", ValidationCheck())
    assert is_per_actor("information_access", ValidationCheck())
    assert not is_per_actor("world_coherence", ValidationCheck())


# ---- the phase -------------------------------------------------------------------------------------------
WORLD_TEMPLATE = (
    "Before:\n{previous_world_state}\n\nActions:\n{actor_actions}\n\nAfter:\n{new_world_state}\n\n"
    'Reply like {"passed": true}. Keep {unknown}.'
)
ACCESS_TEMPLATE = "Actor: {actor_name}\nHeard: {private_communications}\nMust not know: {restricted_information}"
RULES = {
    "validation_model": "test/qa-model",
    "checks": {
        "actor_consistency": {"severity": "medium", "description": "Decisions fit the actor's goals."},
        "world_coherence": {"severity": "low", "prompt_template": WORLD_TEMPLATE},
        "retired_check": {"enabled": False, "description": "No longer used."},
    },
}
ACTIONS = {"upland": "Upland opens the sluices.", "city": "The city buys water.", "growers": "The growers wait."}
NEW_WORLD = "After turn 1 the sluices are open."


def played(scenario):
    state = initial_state(scenario, run_id=RUN_ID, seed=SEED)
    for actor, action in ACTIONS.items():
        state = state.with_decision(Decision(1, actor, ("g",), ("p",), f"{actor} reasoning", action))
    return state.with_world_state(WorldState(1, NEW_WORLD))


async def validate(rules, provider=None, state=None):
    scenario = build_scenario(validation=rules)
    ctx = make_context(scenario, provider)
    return await ValidationPhase().run(state or played(scenario), ctx), ctx


async def test_per_actor_checks_run_for_each_actor_and_per_turn_checks_once():
    state, ctx = await validate(RULES)
    results = sorted((v.check, v.actor or "") for v in state.validations_in(1))
    assert results == [
        ("actor_consistency", "city"),
        ("actor_consistency", "growers"),
        ("actor_consistency", "upland"),
        ("world_coherence", ""),
    ]
    records = ctx.llm.take_records()
    assert len(records) == 4
    assert {(r.phase.value, r.model) for r in records} == {("validation", "test/qa-model")}


async def test_templates_are_filled_from_the_turn():
    provider = ScriptedProvider({"validation": PASS})
    await validate(RULES, provider)
    [world_check] = [r for r in provider.requests if r.purpose.actor is None]
    prompt = world_check.prompt_text
    assert "Before:\n# Lake Varn Water Compact" in prompt
    assert "### Varn City\nThe city buys water." in prompt
    assert f"After:\n{NEW_WORLD}" in prompt
    assert 'Reply like {"passed": true}. Keep {unknown}.' in prompt
    [city_check] = [r for r in provider.requests if r.purpose.actor == "city"]
    assert "Decisions fit the actor's goals." in city_check.prompt_text
    assert "The city buys water." in city_check.prompt_text
    assert "Guarantee drinking water through August" in city_check.prompt_text
    assert "The growers wait." not in city_check.prompt_text


async def test_actor_templates_see_only_their_own_talks_and_list_what_they_must_not_know():
    rules = {"checks": {"information_access": {"prompt_template": ACCESS_TEMPLATE}}}
    scenario = build_scenario(validation=rules)
    secret = Communication("t1-upland-1", 1, CommunicationKind.BILATERAL, "upland", ("city",), "Spillway deal")
    provider = ScriptedProvider({"validation": PASS})
    await validate(rules, provider, played(scenario).with_communication(secret))
    prompts = {r.purpose.actor: r.prompt_text for r in provider.requests}
    assert set(prompts) == {"upland", "city", "growers"}
    assert "Spillway deal" in prompts["city"]
    assert "Heard: (none)" in prompts["growers"]
    assert "Upland Province: The spillway repair will cost 40 million crowns." in prompts["city"]
    assert "40 million" not in prompts["upland"]
    assert "Must not know: Upland Province" in prompts["growers"]


async def test_a_template_asking_only_for_restricted_information_is_filled_per_actor():
    """`restricted_information` is only known per actor, so a check using it must run per actor."""
    rules = {"checks": {"leaks": {"prompt_template": "World: {public_world_state}\nMust not know: {restricted_information}"}}}
    provider = ScriptedProvider({"validation": PASS})
    await validate(rules, provider)
    for request in provider.requests:
        assert "{restricted_information}" not in request.prompt_text, "the placeholder reached the model unfilled"
    assert sorted(r.purpose.actor for r in provider.requests) == ["city", "growers", "upland"]


async def test_severity_comes_from_the_check_when_passed_and_from_the_verdict_when_failed():
    provider = ScriptedProvider({("validation", None): FAIL_HIGH, "validation": PASS})
    state, _ = await validate(RULES, provider)
    by_check = {(v.check, v.actor): v for v in state.validations_in(1)}
    assert by_check[("actor_consistency", "city")].passed is True
    assert by_check[("actor_consistency", "city")].severity == "medium"
    failed = by_check[("world_coherence", None)]
    assert (failed.passed, failed.severity, failed.issues) == (False, "high", ("The new world ignores the flood.",))


async def test_a_v1_style_answer_is_understood_in_the_phase():
    provider = ScriptedProvider({("validation", None): V1_ANSWER, "validation": PASS})
    state, _ = await validate(RULES, provider)
    [world] = [v for v in state.validations_in(1) if v.check == "world_coherence"]
    assert (world.passed, world.severity) == (False, "high")


async def test_a_failure_mapped_to_halt_stops_the_run_after_recording():
    rules = {**RULES, "severity_thresholds": {"high": "halt"}}
    provider = ScriptedProvider({("validation", None): FAIL_HIGH, "validation": PASS})
    scenario = build_scenario(validation=rules)
    ctx = make_context(scenario, provider)
    with pytest.raises(HaltRequested) as caught:
        await ValidationPhase().run(played(scenario), ctx)
    assert "world_coherence" in str(caught.value) and "high" in str(caught.value)
    assert len(ctx.progress.validations_in(1)) == 4


async def test_a_failure_not_mapped_to_halt_only_warns():
    provider = ScriptedProvider({("validation", None): FAIL_HIGH, "validation": PASS})
    state, ctx = await validate(RULES, provider)
    assert len(state.validations_in(1)) == 4
    [failed] = ctx.bus.get_history(EventType.VALIDATION_FAILED)
    assert failed.data["action"] == "warn"


async def test_critical_halts_when_reporting_says_so():
    rules = {**RULES, "reporting": {"halt_on_critical": True}}
    critical = {**FAIL_HIGH, "severity": "critical"}
    provider = ScriptedProvider({("validation", "growers"): critical, "validation": PASS})
    with pytest.raises(HaltRequested, match="for growers"):
        await validate(rules, provider)


async def test_started_failed_and_completed_events():
    rules = {**RULES, "severity_thresholds": {"high": "halt"}}
    provider = ScriptedProvider({("validation", None): FAIL_HIGH, "validation": PASS})
    scenario = build_scenario(validation=rules)
    ctx = make_context(scenario, provider)
    with pytest.raises(HaltRequested):
        await ValidationPhase().run(played(scenario), ctx)
    [started] = ctx.bus.get_history(EventType.VALIDATION_STARTED)
    assert list(started.data["checks"]) == ["actor_consistency", "world_coherence"]
    [failed] = ctx.bus.get_history(EventType.VALIDATION_FAILED)
    assert (failed.data["check"], failed.data["severity"], failed.data["action"]) == ("world_coherence", "high", "halt")
    [completed] = ctx.bus.get_history(EventType.VALIDATION_COMPLETED)
    assert (completed.data["passed"], completed.data["failed"]) == (3, 1)
    assert len(completed.data["results"]) == 4
    order = [e.type for e in ctx.bus.get_history() if str(e.type).startswith("validation")]
    assert order == [EventType.VALIDATION_STARTED, EventType.VALIDATION_FAILED, EventType.VALIDATION_COMPLETED]


async def test_a_rerun_checks_only_what_is_missing():
    once, _ = await validate(RULES)
    provider = ScriptedProvider({})
    twice, ctx = await validate(RULES, provider, once)
    assert twice is once
    assert provider.requests == [] and ctx.bus.get_history() == []


@pytest.mark.parametrize(
    ("rules", "features"),
    [(None, None), ({**RULES, "run_after_each_turn": False}, None), (RULES, {"quality_assurance": False})],
)
async def test_no_validation_when_turned_off(rules, features):
    scenario = build_scenario(validation=rules, features=features)
    state = played(scenario)
    provider = ScriptedProvider({})
    assert await ValidationPhase().run(state, make_context(scenario, provider)) is state
    assert provider.requests == []
