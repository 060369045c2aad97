"""World update phase: the world model writes the new world from the old one, every action and the turn's
outside events. Its answer is Markdown, not JSON: long prose inside JSON is where models break most.

The prompt is kept within the world model's budget as an actor's is (engine.phases.prompts): the past (the
summary and the earlier worlds) is trimmed to what the present (the world before the turn, its actions,
statements and events) leaves room for; the present is never cut.
"""

from __future__ import annotations

import logging

from engine.events import EventType
from engine.llm.provider import CallPurpose, LLMError
from engine.phases.base import PhaseContext
from engine.phases.exogenous import events_for_turn
from engine.phases.prompts import recent_history, request_room, world_system_prompt
from engine.state import CommunicationKind, PhaseType, ScenarioState, WorldState

WORLD_INSTRUCTIONS = (
    "Write the new world state at the end of this turn, in Markdown. Show the concrete consequences of each "
    "action and outside event, how positions shifted, and the open questions for the next turn. Write it "
    "as the situation now, not as a list of the actions. Do not add a title with the turn number."
)
WORLD_MAX_TOKENS = 2000
logger = logging.getLogger(__name__)


def actions_text(state: ScenarioState, turn: int) -> str:
    names = {a.short_name: a.name for a in state.actors}
    decisions = state.decisions_in(turn)
    blocks = [f"### {names[a.short_name]}\n{decisions[a.short_name].action.strip()}" for a in state.actors if a.short_name in decisions]
    return "\n\n".join(blocks)


def public_statements_text(state: ScenarioState, turn: int) -> str:
    names = {a.short_name: a.name for a in state.actors}
    public = [m for m in state.communications_in(turn) if m.kind is CommunicationKind.PUBLIC]
    return "\n\n".join(f"**{names.get(m.sender, m.sender)}:** {m.content.strip()}" for m in public)


class WorldUpdatePhase:
    name = PhaseType.WORLD_UPDATE

    async def run(self, state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
        turn = state.current_turn
        config = ctx.scenario.exogenous_events
        enabled = ctx.scenario.config.features.exogenous_events.enabled
        events = events_for_turn(config, state, turn) if (config and enabled) else ()
        present = [
            f"## World state before turn {turn}\n\n{state.world_state.content.strip()}",
            f"## Actions taken in turn {turn}\n\n{actions_text(state, turn) or '(no actions)'}",
        ]
        statements = public_statements_text(state, turn)
        if statements:
            present.append(f"## Public statements\n\n{statements}")
        if events:
            present.append("## Outside events this turn\n\n" + "\n\n".join(f"- **{e.name}**: {' '.join(e.text.split())}" for e in events))
        present.append(WORLD_INSTRUCTIONS)
        model, system = ctx.scenario.config.world_state_model, world_system_prompt(ctx.scenario)
        room = request_room(ctx.scenario, model, max_tokens=WORLD_MAX_TOKENS, system=system, around=present)
        if room < 0:
            logger.warning("turn %s: the world update's present alone exceeds %s's budget by %s tokens; sent whole, "
                           "the call may fail", turn, model, -room)
        history = recent_history(state, ctx.scenario.config.context_window_size, room=max(room, 0))
        request = ctx.request(
            purpose=CallPurpose(
                task="world_update",
                phase=self.name.value,
                turn=turn,
                hints={"events": [e.name for e in events]},
            ),
            model=model,
            system=system,
            user="\n\n".join(section for section in (history, *present) if section),
            max_tokens=WORLD_MAX_TOKENS,
        )
        response = await ctx.complete_text(request)
        content = response.text.strip()
        if not content:
            raise LLMError("the world model returned an empty world state")
        world = WorldState(turn=turn, content=content, exogenous_events=events)
        # Announced once the world that used them is written, so a retried call does not announce them twice.
        for event in events:
            await ctx.emit(EventType.EXOGENOUS_EVENT, {"turn": turn, "name": event.name, "kind": event.kind, "text": event.text}, turn=turn)
        await ctx.emit(
            EventType.WORLD_STATE_UPDATED,
            {
                "turn": turn,
                "content": content,
                "exogenous_events": [{"name": e.name, "kind": e.kind, "text": e.text} for e in events],
            },
            turn=turn,
        )
        return state.with_world_state(world)
