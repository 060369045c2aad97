"""Decision phase: every actor decides at once (under the concurrency cap) and returns validated data."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, ValidationError

from engine.events import EventType
from engine.llm.parsing import NonBlankText
from engine.llm.provider import CallPurpose
from engine.phases.base import PhaseContext, first_failure, refresh_seats
from engine.phases.prompts import actor_system_prompt, situation
from engine.scenario.schema import ActorConfig, Scenario
from engine.seats import HUMAN, AwaitingHuman, SeatView, seat_view, with_human_decision
from engine.state import Decision, PhaseName, ScenarioState


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
    name = PhaseName.DECISION

    async def run(self, state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
        turn = state.current_turn
        done = state.decisions_in(turn)
        pending = [actor for actor in ctx.scenario.actors if actor.short_name not in done]  # a resume skips done ones
        state = await refresh_seats(state, ctx)  # a seat may have changed hands since the turn began
        humans = [actor for actor in pending if state.actor(actor.short_name).control == HUMAN]
        seen = ctx.checkpoint(state)  # every actor decides on the same situation, whatever finishes first

        async def decide(actor: ActorConfig) -> None:
            nonlocal state
            decision = await self._decide(seen, actor, ctx)
            state = ctx.checkpoint(state.with_decision(decision))

        models = [actor for actor in pending if actor not in humans]
        failure = first_failure(await ctx.gather_limited([lambda a=actor: decide(a) for actor in models]))
        waiting: list[SeatView] = []
        for actor in humans:  # after the models, so a person at a terminal is not interleaved with their output
            view = seat_view(seen, ctx.scenario, actor.short_name, max_turns=ctx.max_turns)
            answer = await ctx.seats.decision(view)
            if answer is None:
                waiting.append(view)
                continue
            state = ctx.checkpoint(with_human_decision(state, actor.short_name, answer))
            await self._announce(state.decisions_in(turn)[actor.short_name], ctx)
        if failure is not None:
            raise failure
        if waiting:
            raise AwaitingHuman(tuple(waiting))
        order = {a.short_name: i for i, a in enumerate(ctx.scenario.actors)}
        return state.with_turn_sorted("decisions", turn, lambda d: order[d.actor])

    @staticmethod
    async def _announce(decision: Decision, ctx: PhaseContext) -> None:
        data = {
            "turn": decision.turn, "actor": decision.actor, "long_term_goals": list(decision.long_term_goals),
            "short_term_priorities": list(decision.short_term_priorities), "reasoning": decision.reasoning,
            "action": decision.action, "model": decision.model, "provider": decision.provider,
        }
        await ctx.emit(EventType.ACTOR_DECISION_COMPLETED, data, turn=decision.turn)

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
        await self._announce(decision, ctx)
        return decision
