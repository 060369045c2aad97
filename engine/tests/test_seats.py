"""Human seats in the engine: the run waits stored, the seat sees the model's prompt, a decision resumes it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine import EventType, Runner
from engine.sdk import initial_state
from engine.seats import (
    HumanDecisionError,
    StateSeats,
    TerminalSeats,
    human_decision,
    pending_human_seats,
    proposals_for,
    seat_view,
    with_human_decision,
)
from engine.state import PhaseType, ScenarioStatus, ScenarioState
from engine.testing.providers import RecordingProvider
from engine.tests.conftest import NO_WAIT

SEAT = "norvale"


def seated(summit, actor: str = SEAT) -> ScenarioState:
    start = initial_state(summit, run_id="seats")
    return start.with_actor(replace(start.actor(actor), control="human"))


def a_decision(view) -> dict:
    return dict(long_term_goals="A binding treaty\nA safety institute", short_term_priorities="Win the vote",
                reasoning="The room is divided.", action="We table the text.",
                replies={p.id: "We will consider it." for p in view.proposals}, proposals=view.proposals)


class HandedBackForDecisions(StateSeats):
    async def control(self, state, actor):
        if actor == SEAT and PhaseType.COMMUNICATION in state.completed_phases:
            return "ai"
        return state.actor(actor).control


async def test_the_run_waits_after_the_models_decide_and_shows_the_seat_the_models_prompt(summit):
    recording = RecordingProvider(summit)
    runner = Runner(provider=recording, error_policy=NO_WAIT)
    ends = []
    runner.on(EventType.SCENARIO_WAITING)(ends.append)
    waiting = await runner.run_async(summit, max_turns=2, state=seated(summit))

    assert waiting.status is ScenarioStatus.WAITING_FOR_HUMAN and waiting.turn == 0
    assert recording.prompts(task="outreach") and recording.prompts(task="reply")  # the models talked
    assert not waiting.decisions_in(1)  # and decide after the person, whose replies they are to read
    assert [a.short_name for a in pending_human_seats(waiting)] == [SEAT]
    assert ends and list(ends[0].data["seats"]) == [SEAT]
    assert not recording.prompts(task="decision", actor=SEAT) and not recording.prompts(task="outreach", actor=SEAT)

    # The same run with the model taking the seat back just before the decisions: it first answers the
    # proposals the person would have, then reads everything the person was shown (and its own replies).
    model_played = RecordingProvider(summit)
    done = await Runner(provider=model_played, seats=HandedBackForDecisions(), error_policy=NO_WAIT).run_async(
        summit, max_turns=2, state=seated(summit))
    view = seat_view(waiting, summit, SEAT, max_turns=2)
    assert view.turn == 1 and view.actor_name == waiting.actor(SEAT).name and view.proposals
    model_prompt = model_played.prompts(task="decision", actor=SEAT, turn=1)[0]
    assert set(view.user.splitlines()) <= set(model_prompt.splitlines())
    assert not proposals_for(done, SEAT, 1)  # every proposal to the handed-back seat answered, by its model
    assert {m.in_reply_to for m in done.communications_in(1) if m.sender == SEAT} == {p.id for p in view.proposals}


async def test_a_human_decision_resumes_the_run_and_is_recorded_as_human(summit):
    recording = RecordingProvider(summit)
    runner = Runner(provider=recording, error_policy=NO_WAIT)
    state = seated(summit)
    proposers: set[str] = set()
    for turn in (1, 2):
        state = await runner.run_async(summit, max_turns=2, state=state)
        assert state.status is ScenarioStatus.WAITING_FOR_HUMAN and state.current_turn == turn
        view = seat_view(state, summit, SEAT, max_turns=2)
        proposers.update(p.sender for p in view.proposals)
        state = with_human_decision(state, SEAT, human_decision(**a_decision(view)))
        assert not proposals_for(state, SEAT, turn)  # every proposal answered
    done = await runner.run_async(summit, max_turns=2, state=state)
    assert done.status is ScenarioStatus.COMPLETED and done.turn == 2
    mine = [d for d in done.decisions if d.actor == SEAT]
    assert [d.provider for d in mine] == ["human", "human"]
    assert mine[0].long_term_goals == ("A binding treaty", "A safety institute") and mine[0].action == "We table the text."
    assert {d.provider for d in done.decisions if d.actor != SEAT} == {"recording"}
    assert all("We table the text." in prompt for prompt in recording.prompts(task="world_update"))  # the world saw it
    assert proposers, "the summit's offline talks address the chair"
    for proposer in proposers:  # each proposer read the person's reply before deciding
        assert any("We will consider it." in prompt for prompt in recording.prompts(task="decision", actor=proposer))


def test_a_decision_is_checked_like_a_models_answer(summit):
    state = seated(summit)
    with pytest.raises(HumanDecisionError) as caught:
        human_decision(long_term_goals="", short_term_priorities="- x", reasoning=" ", action="Act", replies={"nope": "hi"})
    assert set(caught.value.problems) == {"long_term_goals", "reasoning", "replies.nope"}
    assert state.status is ScenarioStatus.CREATED


async def test_a_person_at_the_terminal_decides_in_place(summit):
    def ask(prompt: str) -> str:
        if prompt.startswith("Your reply"):
            return "We agree in principle."
        return {"Long": "Treaty; Institute", "Prio": "Win the vote", "Reas": "Divided room.", "Acti": "We table the text."}[prompt[:4]]

    done = await Runner(seats=TerminalSeats(ask=ask, out=open("/dev/null", "w")), error_policy=NO_WAIT).run_async(
        summit, max_turns=1, state=seated(summit))
    assert done.status is ScenarioStatus.COMPLETED
    assert done.decisions_in(1)[SEAT].provider == "human" and done.decisions_in(1)[SEAT].long_term_goals == ("Treaty", "Institute")


async def test_no_one_at_the_terminal_means_the_run_waits(summit):
    def closed(prompt: str) -> str:
        raise EOFError

    waiting = await Runner(seats=TerminalSeats(ask=closed, out=open("/dev/null", "w")), error_policy=NO_WAIT).run_async(
        summit, max_turns=1, state=seated(summit))
    assert waiting.status is ScenarioStatus.WAITING_FOR_HUMAN


class TakenOverAtTurn2(StateSeats):
    async def control(self, state, actor):
        return "human" if actor == SEAT and state.current_turn >= 2 else state.actor(actor).control


async def test_a_seat_taken_over_mid_run_is_announced_and_waits(summit):
    runner = Runner(seats=TakenOverAtTurn2(), error_policy=NO_WAIT)
    changes = []
    runner.on(EventType.SEAT_CONTROL_CHANGED)(changes.append)
    waiting = await runner.run_async(summit, max_turns=3)
    assert waiting.status is ScenarioStatus.WAITING_FOR_HUMAN and waiting.turn == 1
    assert waiting.actor(SEAT).control == "human"
    assert [(e.data["actor"], e.data["control"]) for e in changes] == [(SEAT, "human")]


async def test_a_proposal_left_without_a_reply_stays_unanswered_and_the_seat_starts_where_the_actor_stands(summit):
    runner = Runner(error_policy=NO_WAIT)
    state = await runner.run_async(summit, max_turns=2, state=seated(summit))
    view = seat_view(state, summit, SEAT, max_turns=2)
    assert view.proposals, "the summit's offline talks address the chair"
    assert view.long_term_goals == tuple(summit.actor(SEAT).goals) and view.short_term_priorities == ()
    skipped = view.proposals[0]
    replies = {p.id: "We will consider it." for p in view.proposals[1:]}
    decided = with_human_decision(state, SEAT, human_decision(**{**a_decision(view), "replies": replies}))
    assert [p.id for p in proposals_for(decided, SEAT, 1)] == [skipped.id], "the skipped proposal is still unanswered"
    assert not [m for m in decided.communications if m.in_reply_to == skipped.id and m.sender == SEAT]

    after = await runner.run_async(summit, max_turns=2, state=decided)
    assert after.status is ScenarioStatus.WAITING_FOR_HUMAN and after.current_turn == 2
    again = seat_view(after, summit, SEAT, max_turns=2)
    assert (again.long_term_goals, again.short_term_priorities) == (("A binding treaty", "A safety institute"), ("Win the vote",))
