"""Decision phase: every actor decides at once (under the concurrency cap) and returns validated data."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, ValidationError

from engine.events import EventType
from engine.llm.parsing import NonBlankText
from engine.llm.provider import CallPurpose
from engine.phases.base import PhaseContext, first_failure, refresh_seats
from engine.phases.prompts import actor_system_prompt, situation
from engine.scenario.schema import ActorConfig
from engine.scenario.folder import Scenario
from engine.phases.communication import announce_message, reply_to
from engine.seats import HUMAN, AwaitingHuman, SeatView, proposals_for, seat_view, with_human_decision
from engine.state import Decision, PhaseType, ScenarioState


class DecisionOutput(BaseModel):
    """What a model (or a human in the seat) must return for a decision."""

    long_term_goals: list[NonBlankText] = Field(min_length=1, max_length=8, description="Goals for the whole scenario.")
    short_term_priorities: list[NonBlankText] = Field(min_length=1, max_length=8, description="Priorities for this turn.")
    reasoning: NonBlankText = Field(description="Why this action, given the situation and messages.")
    action: NonBlankText = Field(description="What the actor does this turn, concretely.")

    @classmethod
    def from_markdown(cls, text: str) -> DecisionOutput | None:
        """V1's answer format: **LONG-TERM GOALS:** / **SHORT-TERM PRIORITIES:** / **REASONING:** / **ACTION:**
        sections. Weak local models often manage this when they cannot manage JSON."""
        sections: dict[str, str] = {}
        for match in _V1_SECTION.finditer(text):
            sections[match.group(1).upper()] = match.group(2).strip()
        items = lambda body: [line.lstrip("-*• ").strip() for line in body.splitlines() if line.strip()]  # noqa: E731
        try:
            return cls(
                long_term_goals=items(sections.get("LONG-TERM GOALS", "")),
                short_term_priorities=items(sections.get("SHORT-TERM PRIORITIES", "")),
                reasoning=sections.get("REASONING", ""),
                action=sections.get("ACTION", ""),
            )
        except ValidationError:
            return None


_V1_SECTION = re.compile(
    r"^\W*(LONG-TERM GOALS|SHORT-TERM PRIORITIES|REASONING|ACTION)\W*:?\W*$\n?(.*?)(?=^\W*(?:LONG-TERM GOALS|SHORT-TERM PRIORITIES|REASONING|ACTION)\W*:?\W*$|\Z)",
    re.I | re.M | re.S,
)


DECISION_INSTRUCTIONS = (
    "Decide what you do this turn. Answer with a JSON object with keys `long_term_goals` (list of text), "
    "`short_term_priorities` (list of text), `reasoning` (text) and `action` (text: concrete, public "
    "steps you take this turn, in your own voice)."
)


def decision_prompts(state: ScenarioState, scenario: Scenario, actor: ActorConfig, *, max_turns: int | None) -> tuple[str, str]:
    """(system, user) for an actor's decision: what a model reads, and what a human in the seat is shown."""
    user = f"{situation(state, scenario, actor.short_name, max_turns=max_turns)}\n\n{DECISION_INSTRUCTIONS}"
    return actor_system_prompt(scenario, actor), user


class DecisionPhase:
    name = PhaseType.DECISION

    async def run(self, state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
        turn = state.current_turn
        state = await refresh_seats(state, ctx)  # a seat may have changed hands since the turn began
        done = state.decisions_in(turn)
        pending = [actor for actor in ctx.scenario.actors if actor.short_name not in done]  # a resume skips done ones
        humans = [actor for actor in pending if state.actor(actor.short_name).control == HUMAN]
        models = [actor for actor in pending if actor not in humans]

        # People first: their replies to proposals are this turn's messages, which the models read before
        # they decide. A person not there yet makes the run wait here, before any model decides.
        waiting: list[SeatView] = []
        for actor in humans:
            view = seat_view(state, ctx.scenario, actor.short_name, max_turns=ctx.max_turns)
            answer = await ctx.seats.decision(view)
            if answer is None:
                waiting.append(view)
                continue
            before = len(state.communications)
            state = ctx.checkpoint(with_human_decision(state, actor.short_name, answer))
            for message in state.communications[before:]:
                await announce_message(message, ctx)
            await announce_decision(state.decisions_in(turn)[actor.short_name], ctx)
        if waiting:
            raise AwaitingHuman(tuple(waiting))

        # A seat handed back to its model after the talks still owes replies to what was proposed to it.
        for actor in models:
            for proposal in proposals_for(state, actor.short_name, turn):
                reply = await reply_to(state, proposal, actor.short_name, ctx)
                await announce_message(reply, ctx)
                state = ctx.checkpoint(state.with_communication(reply))

        seen = ctx.checkpoint(state)  # every model decides on the same situation, whatever finishes first

        async def decide(actor: ActorConfig) -> None:
            nonlocal state
            decision = await self._decide(seen, actor, ctx)
            state = ctx.checkpoint(state.with_decision(decision))

        failure = first_failure(await ctx.gather_limited([lambda a=actor: decide(a) for actor in models]))
        if failure is not None:
            raise failure
        order = {a.short_name: i for i, a in enumerate(ctx.scenario.actors)}
        return state.with_turn_sorted("decisions", turn, lambda d: order[d.actor])

    async def _decide(self, state: ScenarioState, actor: ActorConfig, ctx: PhaseContext) -> Decision:
        turn = state.current_turn
        model = state.actor(actor.short_name).model
        await ctx.emit(EventType.ACTOR_DECISION_STARTED, {"turn": turn, "actor": actor.short_name}, turn=turn)
        system, user = decision_prompts(state, ctx.scenario, actor, max_turns=ctx.max_turns)
        request = ctx.request(
            purpose=CallPurpose(task="decision", phase=self.name.value, turn=turn, actor=actor.short_name),
            model=model,
            system=system,
            user=user,
            output=DecisionOutput,
        )
        try:
            output, response = await ctx.complete_structured(request, DecisionOutput)
        except Exception as exc:
            await ctx.emit(
                EventType.ACTOR_DECISION_FAILED,
                {"turn": turn, "actor": actor.short_name, "error": str(exc) or type(exc).__name__},
                turn=turn,
            )
            raise
        decision = Decision(
            turn=turn,
            actor=actor.short_name,
            long_term_goals=tuple(output.long_term_goals),
            short_term_priorities=tuple(output.short_term_priorities),
            reasoning=output.reasoning,
            action=output.action,
            model=response.model,
            provider=response.provider,
        )
        await announce_decision(decision, ctx)
        return decision


def decision_event_data(decision: Decision) -> dict:
    """The payload of ACTOR_DECISION_COMPLETED, whoever decided (a model, a person here or on a page)."""
    return {
        "turn": decision.turn, "actor": decision.actor, "long_term_goals": list(decision.long_term_goals),
        "short_term_priorities": list(decision.short_term_priorities), "reasoning": decision.reasoning,
        "action": decision.action, "model": decision.model, "provider": decision.provider,
    }


async def announce_decision(decision: Decision, ctx: PhaseContext) -> None:
    await ctx.emit(EventType.ACTOR_DECISION_COMPLETED, decision_event_data(decision), turn=decision.turn)
