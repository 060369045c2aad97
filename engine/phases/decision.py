"""Decision phase: every actor decides at once (under the concurrency cap) and returns validated data."""

from __future__ import annotations



from engine.events import EventType
from engine.llm.provider import CallPurpose
from engine.phases.base import PhaseContext, first_failure, refresh_seats
from engine.scenario.schema import ActorConfig
from engine.phases.communication import announce_message, reply_to
from engine.phases.decision_form import DecisionOutput, decision_prompts
from engine.seats import HUMAN, AwaitingHuman, SeatView, proposals_for, seat_view, with_human_decision
from engine.state import Decision, PhaseType, ScenarioState, as_dict


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
    """The payload of ACTOR_DECISION_COMPLETED, whoever decided (a model, a person here or on a page): every
    field of the decision but its stamps, so a field added to `Decision` is announced without more code."""
    data = as_dict(decision)
    for stamp in ("timestamp", "metadata"):
        data.pop(stamp, None)
    return data


async def announce_decision(decision: Decision, ctx: PhaseContext) -> None:
    await ctx.emit(EventType.ACTOR_DECISION_COMPLETED, decision_event_data(decision), turn=decision.turn)
