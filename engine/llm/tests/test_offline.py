"""The offline provider: deterministic, free, and answering in exactly the shapes the phases need."""

from __future__ import annotations

import pytest

from engine.llm.offline import OfflineProvider, scenario_topics
from engine.llm.provider import CallPurpose, LLMRequest, Message
from engine.phases.communication import OutreachOutput, ReplyOutput
from engine.phases.decision_form import DecisionOutput
from engine.phases.tests.conftest import build_scenario
from engine.phases.validation import ValidationOutput

SCENARIO = build_scenario()
ACTORS = ("upland", "city", "growers")


def request(
    task: str,
    *,
    actor: str | None = "city",
    turn: int = 1,
    user: str = "## Current world state\n\nLow lake.",
    seed: int = 7,
    **hints,
) -> LLMRequest:
    return LLMRequest(
        messages=(Message("system", "You are a party."), Message("user", user)),
        model="test/model",
        purpose=CallPurpose(task=task, phase="decision", turn=turn, actor=actor, hints=hints),
        seed=seed,
    )


@pytest.fixture
def offline() -> OfflineProvider:
    return OfflineProvider(SCENARIO)


async def test_the_same_request_gives_the_same_answer(offline):
    first = await offline.complete(request("decision"))
    second = await OfflineProvider(SCENARIO).complete(request("decision"))
    assert first.text == second.text
    assert first.data == second.data


async def test_answers_differ_by_actor_turn_and_seed(offline):
    by_actor = {(await offline.complete(request("decision", actor=a))).text for a in ACTORS}
    by_turn = {(await offline.complete(request("decision", turn=t))).text for t in (1, 2, 3)}
    by_seed = {(await offline.complete(request("decision", seed=s))).text for s in (1, 2, 3)}
    assert len(by_actor) == 3
    assert len(by_turn) == 3
    assert len(by_seed) == 3


@pytest.mark.parametrize(
    ("task", "schema", "hints"),
    [
        ("decision", DecisionOutput, {}),
        ("outreach", OutreachOutput, {}),
        ("reply", ReplyOutput, {"to": "upland", "kind": "bilateral"}),
        ("validation", ValidationOutput, {"check": "actor_consistency"}),
    ],
)
async def test_structured_answers_match_the_phase_schemas(offline, task, schema, hints):
    for actor in ACTORS:
        for turn in range(1, 6):
            response = await offline.complete(request(task, actor=actor, turn=turn, **hints))
            assert schema.model_validate(response.data) == schema.model_validate_json(response.text)


async def test_decisions_speak_for_the_actor(offline):
    response = await offline.complete(request("decision", actor="growers"))
    decision = DecisionOutput.model_validate(response.data)
    assert decision.long_term_goals == ["Protect irrigation quotas for the orchards"]
    assert decision.action.startswith("Growers' Cooperative ")
    assert "members vote on every concession" in decision.reasoning


async def test_outreach_only_addresses_other_known_actors_within_the_cap(offline):
    for turn in range(1, 11):
        output = OutreachOutput.model_validate((await offline.complete(request("outreach", actor="city", turn=turn))).data)
        assert len(output.conversations) <= 2
        for talk in output.conversations:
            assert set(talk.with_) <= {"upland", "growers"}
            assert len(talk.with_) == (1 if talk.kind == "bilateral" else 2)


async def test_outreach_proposes_no_talks_when_private_talks_are_off():
    provider = OfflineProvider(build_scenario(communications={"bilateral": False, "coalition": False}))
    for turn in range(1, 11):
        assert (await provider.complete(request("outreach", turn=turn))).data["conversations"] == []


async def test_responses_are_free_and_say_offline(offline):
    response = await offline.complete(request("decision"))
    assert response.provider == "offline"
    assert response.cost == 0.0
    assert response.input_tokens > 0 and response.output_tokens > 0
    assert response.model == "test/model"
    assert offline.max_cost(request("decision")) == 0.0


async def test_a_metric_answer_is_a_number_in_range(offline):
    for turn in range(1, 6):
        text = (await offline.complete(request("metric", actor=None, turn=turn, range=[2, 4]))).text
        assert 2 <= float(text) <= 4


async def test_the_world_update_mentions_every_actor_who_acted(offline):
    user = (
        "## World state before turn 2\n\nThe lake is low.\n- **Signatures:** 1 party has signed.\n\n"
        "## Actions taken in turn 2\n\n"
        "### Upland Province\nUpland Province opens the sluices for a week.\n\n"
        "### Varn City\nVarn City buys water from the growers.\n\n"
        "### Growers' Cooperative\nThe growers accept a joint compromise.\n\n"
        "## Outside events this turn\n\n- **Heatwave**: Temperatures reach 38 degrees.\n\n"
        "Write the new world state."
    )
    response = await offline.complete(request("world_update", actor=None, turn=2, user=user))
    assert response.data is None
    for name in ("Upland Province", "Varn City", "Growers' Cooperative"):
        assert f"**{name}**" in response.text
    assert "Temperatures reach 38 degrees." in response.text
    assert "- **Signatures:** " in response.text  # the counted status line is carried forward


def test_scenario_topics_prefers_bold_labels_under_an_issues_heading():
    text = (
        "# Talks\n\nIntro.\n\n## Status\n- **Signatures:** none yet\n\n"
        "## Open issues\n- **Summer allocation:** who draws what.\n- **Drought trigger**: at which level.\n"
        "- Gauge monitoring, and who pays for it\n\n## Venue\n- **Kessel town hall:** booked\n"
    )
    assert scenario_topics(text) == ["Summer allocation", "Drought trigger", "Gauge monitoring"]


def test_scenario_topics_falls_back_to_any_bullets():
    assert scenario_topics("# Talks\n\n- **Harbour fees:** high\n- Dredging schedule\n") == ["Harbour fees", "Dredging schedule"]


def test_the_provider_uses_the_scenarios_topics(offline):
    assert offline.topics == ["Summer allocation", "Drought trigger", "Gauge monitoring"]
    assert OfflineProvider().topics  # without a scenario it still has something to talk about
