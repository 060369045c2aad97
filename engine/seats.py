"""Human seats: an actor played by a person instead of a model.

After the talks, the decision phase builds each human seat's `SeatView` — exactly the prompt the model would
have read, plus the proposals addressed to the actor that await its reply — and asks the run's `SeatDesk`
for the person's decision. A desk that has one (a terminal prompt) answers at once; a desk that has none yet
(a web page) returns None, and the run stops as WAITING_FOR_HUMAN, holding no worker, until
`with_human_decision` adds the answer and the run is resumed. People decide before the models, so the models
read the people's replies to their proposals, as they read each other's.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from pydantic import ValidationError

from engine.phases.decision_form import DecisionOutput, decision_prompts  # a person decides as a model does
from engine.scenario.folder import Scenario
from engine.state import ActorState, Communication, Decision, ScenarioState

HUMAN = "human"
CONTROLS = ("ai", HUMAN)


@dataclass(frozen=True)
class SeatView:
    """What the seat's occupant sees: the model's prompts for this decision and the proposals to answer."""

    turn: int
    actor: str
    actor_name: str
    system: str
    user: str
    proposals: tuple[Communication, ...] = ()
    # Where the actor stands: its goals and priorities from its last decision (its brief's goals before any).
    long_term_goals: tuple[str, ...] = ()
    short_term_priorities: tuple[str, ...] = ()


@dataclass(frozen=True)
class HumanDecision:
    long_term_goals: tuple[str, ...]
    short_term_priorities: tuple[str, ...]
    reasoning: str
    action: str
    replies: Mapping[str, str] = field(default_factory=dict)  # proposal id -> the reply


class HumanDecisionError(ValueError):
    """A submitted decision cannot be used; `problems` maps each field to what is wrong with it."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))


class AwaitingHuman(Exception):
    """Raised by the decision phase once every model seat has decided: these human seats have not."""

    def __init__(self, views: tuple[SeatView, ...]) -> None:
        self.views = views
        names = ", ".join(view.actor_name for view in views)
        super().__init__(f"waiting for {names} (human seat) to decide turn {views[0].turn}")


class SeatDesk(Protocol):
    """Who holds each seat now, and a person's decision for a seat when there is one."""

    async def control(self, state: ScenarioState, actor: str) -> str:
        """"ai" or "human": read at every decision, so a seat can be taken over or handed back mid-run."""
        ...

    async def decision(self, view: SeatView) -> HumanDecision | None:
        """The person's decision, or None to wait for it (the run stops and is resumed later)."""
        ...


class StateSeats:
    """The default desk: control as the state records it; decisions arrive later via `with_human_decision`."""

    async def control(self, state: ScenarioState, actor: str) -> str:
        return state.actor(actor).control

    async def decision(self, view: SeatView) -> HumanDecision | None:
        return None


# ---- the pure part: pending seats, checking and applying a decision ------------------------------------------
def proposals_for(state: ScenarioState, actor: str, turn: int) -> tuple[Communication, ...]:
    """Bilateral and coalition openings of `turn` addressed to `actor` that it has not answered."""
    return open_proposals(state.communications_in(turn), actor)


def open_proposals(messages: Sequence[Communication], actor: str) -> tuple[Communication, ...]:
    """The openings among one turn's `messages` addressed to `actor` that it has not answered."""
    answered = {m.in_reply_to for m in messages if m.sender == actor and m.in_reply_to}
    return tuple(m for m in messages if m.in_reply_to is None and actor in m.recipients and m.id not in answered)


def pending_human_seats(state: ScenarioState) -> tuple[ActorState, ...]:
    """Human seats with no decision yet in the turn being played."""
    decided = state.decisions_in(state.current_turn)
    return tuple(a for a in state.actors if a.control == HUMAN and a.short_name not in decided)


def _lines(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = value.splitlines() if isinstance(value, str) else value
    return tuple(line.strip().lstrip("-*• ").strip() for line in items if line.strip().lstrip("-*• ").strip())


def human_decision(
    *, long_term_goals: str | list[str], short_term_priorities: str | list[str], reasoning: str, action: str,
    replies: Mapping[str, str] | None = None, proposals: tuple[Communication, ...] = (),
) -> HumanDecision:
    """A decision as a form or an API sends it (lists or one item per line), checked like a model's answer."""
    goals, priorities = _lines(long_term_goals), _lines(short_term_priorities)
    problems: dict[str, str] = {}
    try:
        DecisionOutput(long_term_goals=list(goals), short_term_priorities=list(priorities), reasoning=reasoning, action=action)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "decision"
            problems.setdefault(name, error["msg"].removeprefix("Value error, "))
    known = {p.id for p in proposals}
    given = {key: text.strip() for key, text in (replies or {}).items()}
    for key in given:
        if key not in known:
            problems[f"replies.{key}"] = "there is no proposal with this id awaiting your reply"
    if problems:
        raise HumanDecisionError(problems)
    # A proposal left without a reply stays unanswered, as a model may leave one.
    return HumanDecision(goals, priorities, reasoning.strip(), action.strip(), {key: text for key, text in given.items() if text})


def with_human_decision(state: ScenarioState, actor: str, decision: HumanDecision) -> ScenarioState:
    """The state with a person's decision for `actor` in the turn being played, and its replies."""
    turn = state.current_turn
    for proposal in proposals_for(state, actor, turn):
        reply = decision.replies.get(proposal.id)
        if reply:
            others = tuple(p for p in proposal.participants if p != actor)
            state = state.with_communication(Communication(
                id=f"{proposal.id}-re-{actor}", turn=turn, kind=proposal.kind, sender=actor, recipients=others,
                content=reply, in_reply_to=proposal.id,
            ))
    return state.with_decision(Decision(
        turn=turn, actor=actor, long_term_goals=decision.long_term_goals,
        short_term_priorities=decision.short_term_priorities, reasoning=decision.reasoning, action=decision.action,
        model="", provider=HUMAN,
    ))


def seat_view(state: ScenarioState, scenario: Scenario, actor: str, *, max_turns: int | None = None) -> SeatView:
    """The view of `actor`'s seat in the turn being played: the decision phase's own prompts."""
    config = scenario.actor(actor)
    system, user = decision_prompts(state, scenario, config, max_turns=max_turns)
    turn = state.current_turn
    earlier = [d for d in state.decisions if d.actor == actor and d.turn < turn]
    goals = earlier[-1].long_term_goals if earlier else tuple(config.goals)
    priorities = earlier[-1].short_term_priorities if earlier else ()
    return SeatView(turn, actor, state.actor(actor).name, system, user, proposals_for(state, actor, turn), goals, priorities)


# ---- the terminal --------------------------------------------------------------------------------------------
class TerminalSeats(StateSeats):
    """Asks at the terminal: the view is printed, then goals, priorities, reasoning, action and replies.
    Who holds a seat comes from `controls` (e.g. the stored run's desk, so a seat handed back on the run's
    page is honoured here too), else from the state."""

    def __init__(self, *, ask: Callable[[str], str] = input, out: TextIO | None = None, controls: SeatDesk | None = None) -> None:
        self.ask = ask
        self.out = out
        self.controls = controls

    async def control(self, state: ScenarioState, actor: str) -> str:
        return await (self.controls or StateSeats()).control(state, actor)

    async def decision(self, view: SeatView) -> HumanDecision | None:
        try:
            return await asyncio.to_thread(self._ask_decision, view)
        except EOFError:  # no one at the terminal (input closed): the run waits, and can be decided later
            return None

    def _say(self, text: str) -> None:
        print(text, file=self.out)

    def _ask_decision(self, view: SeatView) -> HumanDecision:
        self._say(f"\n{'=' * 60}\nYour seat: {view.actor_name}, turn {view.turn}\n{'=' * 60}\n{view.user}\n")
        while True:
            replies = {}
            for proposal in view.proposals:
                self._say(textwrap.indent(f"Proposal from {proposal.sender} ({proposal.kind.value}):\n{proposal.content}", "  "))
                replies[proposal.id] = self.ask("Your reply: ")
            goals = self.ask("Long-term goals (separate with ';'): ").replace(";", "\n")
            priorities = self.ask("Priorities this turn (separate with ';'): ").replace(";", "\n")
            reasoning = self.ask("Reasoning: ")
            action = self.ask("Action: ")
            try:
                return human_decision(long_term_goals=goals, short_term_priorities=priorities, reasoning=reasoning,
                                      action=action, replies=replies, proposals=view.proposals)
            except HumanDecisionError as exc:
                self._say(f"Not usable ({exc}); please answer again.")
