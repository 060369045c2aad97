"""The communication phase: what the settings allow, replies, events, visibility and resuming."""

from __future__ import annotations

import pytest

from engine.events import EventType
from engine.phases.communication import CommunicationPhase
from engine.phases.decision import DecisionPhase
from engine.llm.provider import StructuredOutputError
from engine.phases.tests.conftest import RUN_ID, SEED, ScriptedProvider, build_scenario, make_context
from engine.sdk import initial_state
from engine.state import Communication, CommunicationKind

REPLY = {"reply": {"response": "Noted; we will consider it."}}
SILENT = {"public_statement": "", "conversations": []}


def outreach(public: str = "", *talks: tuple[str, list[str], str]) -> dict:
    return {
        "public_statement": public,
        "conversations": [{"kind": kind, "with": who, "message": text} for kind, who, text in talks],
    }


def scripted(**by_actor: dict) -> ScriptedProvider:
    """Outreach answers per actor (silent for the others) and a fixed reply."""
    answers = {("outreach", actor): SILENT for actor in ("upland", "city", "growers")}
    answers.update({("outreach", actor): answer for actor, answer in by_actor.items()})
    return ScriptedProvider({**answers, **REPLY})


async def play(provider, *, state=None, **settings):
    """Run the phase on the Lake Varn scenario with these communication settings; return (state, ctx)."""
    scenario = build_scenario(communications=settings)
    ctx = make_context(scenario, provider)
    start = state or initial_state(scenario, run_id=RUN_ID, seed=SEED)
    return await CommunicationPhase().run(start, ctx), ctx


def openings(state):
    return [m for m in state.communications if m.in_reply_to is None]


async def test_public_off_sends_no_public_messages():
    provider = scripted(upland=outreach("We want a fair share.", ("bilateral", ["city"], "Talk dams?")))
    state, _ = await play(provider, public=False)
    assert [m.kind for m in openings(state)] == [CommunicationKind.BILATERAL]


async def test_public_on_sends_the_statement_to_nobody_in_particular():
    provider = scripted(upland=outreach("  We want a fair share.  "))
    state, _ = await play(provider)
    [statement] = state.communications
    assert statement.kind is CommunicationKind.PUBLIC
    assert statement.recipients == ()
    assert statement.content == "We want a fair share."


async def test_bilateral_off_drops_bilateral_talks_but_keeps_coalitions():
    provider = scripted(
        upland=outreach("", ("bilateral", ["city"], "Just us?"), ("coalition", ["city", "growers"], "All of us?"))
    )
    state, _ = await play(provider, bilateral=False)
    assert [m.kind for m in openings(state)] == [CommunicationKind.COALITION]


async def test_coalition_off_drops_coalitions():
    provider = scripted(upland=outreach("", ("coalition", ["city", "growers"], "All of us?")))
    state, _ = await play(provider, coalition=False)
    assert state.communications == ()


async def test_max_per_turn_caps_the_conversations_an_actor_opens():
    provider = scripted(
        upland=outreach(
            "",
            ("bilateral", ["city"], "First"),
            ("bilateral", ["growers"], "Second"),
            ("coalition", ["city", "growers"], "Third"),
        )
    )
    state, _ = await play(provider, max_per_turn=2)
    assert [m.content for m in openings(state)] == ["First", "Second"]


async def test_max_per_turn_zero_allows_only_public_statements():
    provider = scripted(upland=outreach("Hello all.", ("bilateral", ["city"], "Psst")))
    state, _ = await play(provider, max_per_turn=0)
    assert [m.kind for m in state.communications] == [CommunicationKind.PUBLIC]


async def test_unknown_and_self_addressees_are_dropped():
    provider = scripted(
        upland=outreach(
            "",
            ("bilateral", ["ghost"], "To nobody"),
            ("bilateral", ["upland"], "To myself"),
            ("coalition", ["upland", "city", "ghost"], "Only one real partner"),
            ("coalition", ["city", "ghost", "growers", "city"], "Real coalition"),
        ),
    )
    state, _ = await play(provider, max_per_turn=5)
    [coalition] = openings(state)
    assert coalition.content == "Real coalition"
    assert coalition.recipients == ("city", "growers")


async def test_invalid_talks_do_not_use_up_the_cap():
    provider = scripted(upland=outreach("", ("bilateral", ["ghost"], "Lost"), ("bilateral", ["city"], "Kept")))
    state, _ = await play(provider, max_per_turn=1)
    assert [m.content for m in openings(state)] == ["Kept"]


async def test_every_opening_gets_one_reply_per_recipient():
    provider = scripted(
        upland=outreach("Public words.", ("bilateral", ["city"], "Deal?"), ("coalition", ["city", "growers"], "Bloc?")),
        growers=outreach("", ("bilateral", ["upland"], "Orchards first")),
    )
    state, _ = await play(provider)
    replies = [m for m in state.communications if m.in_reply_to]
    by_opening = {(m.in_reply_to, m.sender) for m in replies}
    expected = {
        (o.id, recipient) for o in openings(state) for recipient in o.recipients
    }
    assert by_opening == expected
    assert len(replies) == len(expected) == 4  # 1 + 2 + 1; the public statement is not answered
    opening_ids = {o.id: o for o in openings(state)}
    for reply in replies:
        opening = opening_ids[reply.in_reply_to]
        assert reply.kind is opening.kind
        assert set(reply.recipients) == set(opening.participants) - {reply.sender}
    assert len(provider.calls("reply")) == 4


async def test_a_communication_sent_event_for_every_message():
    provider = scripted(
        upland=outreach("Public words.", ("coalition", ["city", "growers"], "Bloc?")),
        city=outreach("City speaks."),
    )
    state, ctx = await play(provider)
    events = ctx.bus.get_history(EventType.COMMUNICATION_SENT)
    # Actors speak concurrently, so events interleave; each message is announced once, in its sender's order.
    assert sorted(e.data["id"] for e in events) == sorted(m.id for m in state.communications)
    for sender in {m.sender for m in state.communications}:
        said = [m.id for m in state.communications if m.sender == sender and not m.in_reply_to]
        assert [e.data["id"] for e in events if e.data["sender"] == sender and not e.data["in_reply_to"]] == said
    assert len(events) == 5  # two public statements, one coalition opening, two replies
    reply_events = [e for e in events if e.data["in_reply_to"]]
    assert {e.data["sender"] for e in reply_events} == {"city", "growers"}


async def test_bilateral_talks_are_invisible_to_outsiders():
    provider = scripted(
        upland=outreach("Upland speaks publicly.", ("bilateral", ["city"], "SECRET spillway offer")),
    )
    state, _ = await play(provider)
    bilateral = next(m for m in state.communications if m.kind is CommunicationKind.BILATERAL)
    assert bilateral.visible_to("city") and bilateral.visible_to("upland")
    assert not bilateral.visible_to("growers")

    # The decision prompts show it only to those in the room.
    deciding = ScriptedProvider(
        {"decision": {"long_term_goals": ["g"], "short_term_priorities": ["p"], "reasoning": "r", "action": "a"}}
    )
    await DecisionPhase().run(state, make_context(build_scenario(), deciding))
    prompts = {r.purpose.actor: r.prompt_text for r in deciding.requests}
    assert "SECRET spillway offer" in prompts["city"]
    assert "SECRET spillway offer" in prompts["upland"]
    assert "SECRET spillway offer" not in prompts["growers"]
    assert "Upland speaks publicly." in prompts["growers"]


async def test_a_resumed_phase_does_not_repeat_outreach_or_replies():
    start = initial_state(build_scenario(), run_id=RUN_ID, seed=SEED)
    opening = Communication("t1-upland-1", 1, CommunicationKind.BILATERAL, "upland", ("city",), "Deal?")
    answered = Communication("t1-upland-1-re-city", 1, CommunicationKind.BILATERAL, "city", ("upland",), "Maybe.", "t1-upland-1")
    # What an interrupted turn leaves: upland has spoken (its message and its step) and city answered it.
    start = start.with_communication(opening).with_step_completed("outreach:upland").with_communication(answered)
    provider = scripted(
        upland=outreach("Should not be sent again", ("bilateral", ["growers"], "Nor this")),
        growers=outreach("", ("bilateral", ["city"], "Water for fruit?")),
    )
    state, ctx = await play(provider, state=start)

    assert {r.purpose.actor for r in provider.calls("outreach")} == {"city", "growers"}
    ids = [m.id for m in state.communications]
    assert len(ids) == len(set(ids))
    assert [m.sender for m in openings(state)] == ["upland", "growers"]
    replies = [(m.in_reply_to, m.sender) for m in state.communications if m.in_reply_to]
    assert replies == [("t1-upland-1", "city"), ("t1-growers-1", "city")]
    # Only the new messages are announced.
    assert len(ctx.bus.get_history(EventType.COMMUNICATION_SENT)) == 2


async def test_running_the_phase_twice_adds_nothing_the_second_time():
    provider = scripted(
        upland=outreach("Public.", ("coalition", ["city", "growers"], "Bloc?")),
        city=outreach("", ("bilateral", ["growers"], "Deal?")),
    )
    once, _ = await play(provider)
    twice, _ = await play(provider, state=once)
    assert twice.communications == once.communications


async def test_disabled_communications_leave_the_state_unchanged(state, make_ctx):
    scenario = build_scenario(communications={"enabled": False})
    provider = ScriptedProvider({})
    ctx = make_ctx(provider, scenario=scenario)
    assert await CommunicationPhase().run(state, ctx) is state
    assert provider.requests == []
    assert ctx.bus.get_history() == []


async def test_offline_outreach_respects_the_settings(make_ctx):
    scenario = build_scenario(communications={"public": False, "coalition": False, "max_per_turn": 1})
    start = initial_state(scenario, run_id=RUN_ID, seed=SEED)
    state = await CommunicationPhase().run(start, make_ctx(scenario=scenario))
    assert openings(state), "the offline provider opened no talk at all"
    assert {m.kind for m in state.communications} == {CommunicationKind.BILATERAL}
    assert all(len([o for o in openings(state) if o.sender == a]) <= 1 for a in ("upland", "city", "growers"))


@pytest.mark.parametrize("bad", ["not json", '{"conversations": [{"kind": "bilateral", "with": ["city"]}]}'])
async def test_a_malformed_outreach_interrupts_the_phase_keeping_the_others(bad):
    provider = scripted(city=outreach("City speaks."))
    provider.answers[("outreach", "upland")] = bad
    scenario = build_scenario()
    ctx = make_context(scenario, provider)
    with pytest.raises(StructuredOutputError):
        await CommunicationPhase().run(initial_state(scenario, run_id=RUN_ID, seed=SEED), ctx)
    kept = ctx.progress.communications
    assert [m.sender for m in kept] == ["city"]
