"""Communication phase: actors make public statements and open bilateral or coalition talks; those
addressed answer. Two rounds, each with every actor at once: outreach, then replies.

Each prompt is fitted to its own actor's budget (engine.phases.prompts.situation). Neither shows the
turn's other messages: an outreach is written before any (a retried one reads what the first attempt read),
and a reply shows only the message it answers, which its responder takes part in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from engine.events import EventType
from engine.llm.parsing import NonBlankText
from engine.llm.provider import CallPurpose
from engine.phases.base import PhaseContext, first_failure, refresh_seats
from engine.phases.prompts import actor_system_prompt, describe_message, other_actors, request_room, situation
from engine.scenario.schema import ActorConfig, CommunicationSettings
from engine.seats import HUMAN
from engine.state import Communication, CommunicationKind, PhaseType, ScenarioState


class Conversation(BaseModel):
    kind: Literal["bilateral", "coalition"]
    with_: list[str] = Field(alias="with", description="Short names of the actors addressed.")
    message: NonBlankText

    model_config = {"populate_by_name": True}


OUTREACH_MAX_TOKENS = 800
REPLY_MAX_TOKENS = 600
REPLY_INSTRUCTIONS = "Reply to it. Answer with a JSON object with key `response` (your reply, in your own voice)."


class OutreachOutput(BaseModel):
    public_statement: str = Field("", description="Said to everyone; empty for none.")
    conversations: list[Conversation] = Field(default_factory=list)


class ReplyOutput(BaseModel):
    response: NonBlankText


def outreach_instructions(settings: CommunicationSettings) -> str:
    allowed = [kind for kind in ("bilateral", "coalition") if getattr(settings, kind)]
    parts = ["Before deciding, you may talk to the others."]
    if settings.public:
        parts.append("`public_statement`: what you say publicly this turn (empty string for nothing).")
    if allowed and settings.max_per_turn:
        parts.append(
            f"`conversations`: up to {settings.max_per_turn} private conversations, each with `kind` "
            f"({' or '.join(allowed)}), `with` (short names: one for bilateral, two or more for a coalition) "
            "and `message` (your opening message)."
        )
    parts.append("Answer with a JSON object with keys `public_statement` and `conversations`.")
    return " ".join(parts)


def outreach_step(actor: str) -> str:
    return f"outreach:{actor}"


class CommunicationPhase:
    name = PhaseType.COMMUNICATION

    async def run(self, state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
        settings = ctx.scenario.config.features.communications
        if not settings.enabled:
            return state
        turn = state.current_turn
        # A person in a seat does not open talks here; proposals addressed to them are answered with their
        # decision, on the seat's page or at the terminal (engine/seats.py).
        state = await refresh_seats(state, ctx)
        humans = {a.short_name for a in state.actors if a.control == HUMAN}
        for short_name in humans:
            state = state.with_step_completed(outreach_step(short_name))
        pending = [a for a in ctx.scenario.actors if outreach_step(a.short_name) not in state.completed_steps]
        seen = state

        async def reach_out(actor: ActorConfig) -> None:
            nonlocal state
            messages = await self._outreach(seen, actor, settings, ctx)
            for message in messages:
                await self._announce(message, ctx)
            # An actor's messages and the mark that it has spoken land together: a resume never re-asks it.
            for message in messages:
                state = state.with_communication(message)
            state = ctx.checkpoint(state.with_step_completed(outreach_step(actor.short_name)))

        failure = first_failure(await ctx.gather_limited([lambda a=a: reach_out(a) for a in pending]))
        if failure is not None:
            raise failure
        state = self._canonical(state, ctx)

        openings = [m for m in state.communications_in(turn) if m.in_reply_to is None and m.recipients]
        answered = {(m.in_reply_to, m.sender) for m in state.communications_in(turn) if m.in_reply_to}
        to_answer = [(m, r) for m in openings for r in m.recipients if (m.id, r) not in answered and r not in humans]
        seen = state

        async def answer(opening: Communication, responder: str) -> None:
            nonlocal state
            reply = await self._reply(seen, opening, responder, ctx)
            await self._announce(reply, ctx)
            state = ctx.checkpoint(state.with_communication(reply))

        failure = first_failure(await ctx.gather_limited([lambda m=m, r=r: answer(m, r) for m, r in to_answer]))
        if failure is not None:
            raise failure
        return self._canonical(state, ctx)

    @staticmethod
    def _canonical(state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
        """Messages in the order an uninterrupted turn sends them: every opening (by the opener's actor order,
        then in sequence: ids are `t{turn}-{sender}-{public|n}`), then every reply in the same order."""
        order = {a.short_name: i for i, a in enumerate(ctx.scenario.actors)}
        turn = state.current_turn
        by_id = {m.id: m for m in state.communications_in(turn)}

        def key(message: Communication) -> tuple:
            opening = by_id.get(message.in_reply_to or "", message)
            suffix = opening.id.rsplit("-", 1)[-1]
            position = 0 if suffix == "public" else int(suffix) if suffix.isdigit() else 99
            reply = opening.recipients.index(message.sender) if message.sender in opening.recipients else -1
            return message.in_reply_to is not None, order.get(opening.sender, 99), position, reply

        return state.with_turn_sorted("communications", turn, key)

    @staticmethod
    async def _announce(message: Communication, ctx: PhaseContext) -> None:
        await announce_message(message, ctx)


    async def _outreach(
        self, state: ScenarioState, actor: ActorConfig, settings: CommunicationSettings, ctx: PhaseContext
    ) -> list[Communication]:
        turn = state.current_turn
        model, system = state.actor(actor.short_name).model, actor_system_prompt(ctx.scenario, actor)
        around = [other_actors(ctx.scenario, actor.short_name), outreach_instructions(settings)]
        room = request_room(
            ctx.scenario, model, max_tokens=OUTREACH_MAX_TOKENS, system=system, around=around, output=OutreachOutput, reask=True
        )
        request = ctx.request(
            purpose=CallPurpose(task="outreach", phase=self.name.value, turn=turn, actor=actor.short_name),
            model=model,
            system=system,
            user="\n\n".join(
                [situation(state, ctx.scenario, actor.short_name, max_turns=ctx.max_turns, room=room, messages=False), *around]
            ),
            output=OutreachOutput,
            max_tokens=OUTREACH_MAX_TOKENS,
        )
        output, _ = await ctx.complete_structured(request, OutreachOutput)
        return self._messages(output, actor.short_name, turn, settings, {a.short_name for a in ctx.scenario.actors})

    @staticmethod
    def _messages(
        output: OutreachOutput, sender: str, turn: int, settings: CommunicationSettings, known: set[str]
    ) -> list[Communication]:
        """Keep what the scenario allows: known addressees, enabled kinds, at most max_per_turn talks."""
        messages: list[Communication] = []
        if settings.public and output.public_statement.strip():
            messages.append(
                Communication(
                    id=f"t{turn}-{sender}-public",
                    turn=turn,
                    kind=CommunicationKind.PUBLIC,
                    sender=sender,
                    recipients=(),
                    content=output.public_statement.strip(),
                )
            )
        opened = 0
        for talk in output.conversations:
            if opened >= settings.max_per_turn or not getattr(settings, talk.kind):
                continue
            recipients = tuple(dict.fromkeys(r for r in talk.with_ if r in known and r != sender))
            if (talk.kind == "bilateral" and len(recipients) != 1) or (talk.kind == "coalition" and len(recipients) < 2):
                continue
            opened += 1
            messages.append(
                Communication(
                    id=f"t{turn}-{sender}-{opened}",
                    turn=turn,
                    kind=CommunicationKind(talk.kind),
                    sender=sender,
                    recipients=recipients,
                    content=talk.message.strip(),
                )
            )
        return messages

    async def _reply(
        self, state: ScenarioState, opening: Communication, responder: str, ctx: PhaseContext
    ) -> Communication:
        return await reply_to(state, opening, responder, ctx)


async def reply_to(state: ScenarioState, opening: Communication, responder: str, ctx: PhaseContext) -> Communication:
    """The model's reply for `responder` to a bilateral or coalition opening (a call booked as communication):
    the reply round, and a seat handed back to the model after the talks."""
    turn = state.current_turn
    actor = ctx.scenario.actor(responder)
    names = {a.short_name: a.name for a in state.actors}
    model, system = state.actor(responder).model, actor_system_prompt(ctx.scenario, actor)
    around = ["## A message addressed to you\n\n" + describe_message(opening, names), REPLY_INSTRUCTIONS]
    room = request_room(
        ctx.scenario, model, max_tokens=REPLY_MAX_TOKENS, system=system, around=around, output=ReplyOutput, reask=True
    )
    request = ctx.request(
        purpose=CallPurpose(
            task="reply",
            phase=PhaseType.COMMUNICATION.value,
            turn=turn,
            actor=responder,
            hints={"to": opening.sender, "kind": opening.kind.value},
        ),
        model=model,
        system=system,
        user="\n\n".join([situation(state, ctx.scenario, responder, max_turns=ctx.max_turns, room=room, messages=False), *around]),
        output=ReplyOutput,
        max_tokens=REPLY_MAX_TOKENS,
    )
    output, _ = await ctx.complete_structured(request, ReplyOutput)
    others = tuple(p for p in opening.participants if p != responder)
    return Communication(
        id=f"{opening.id}-re-{responder}",
        turn=turn,
        kind=opening.kind,
        sender=responder,
        recipients=others,
        content=output.response.strip(),
        in_reply_to=opening.id,
    )


async def announce_message(message: Communication, ctx: PhaseContext) -> None:
    await ctx.emit(
        EventType.COMMUNICATION_SENT,
        {
            "id": message.id,
            "turn": message.turn,
            "kind": message.kind.value,
            "sender": message.sender,
            "recipients": list(message.recipients),
            "content": message.content,
            "in_reply_to": message.in_reply_to,
        },
        turn=message.turn,
    )
