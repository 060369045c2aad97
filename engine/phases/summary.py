"""Summary phase: a model-written summary of the turns that have left the context window.

When it runs: in a scenario with `features.context_management.enabled`, first in every turn, so every prompt
of the turn reads the same summary. A summary is a paid call, so it is made only when the scenario asks for
it; without it, turns older than `context_window_size` are simply not shown, and prompts are still kept
within their models' budgets (engine.phases.prompts trims them, at no cost).

What it writes: one summary of turns 1..k, where k is the last turn prompts no longer show in full
(`prompts.summarised_until`). It is incremental: the latest summary (turns 1..j) and turns j+1..k give the
summary of 1..k, usually one new turn at a time. When more turns wait than fit one call of the summarising
model (context management switched on mid-run, a small model), they are folded in over several calls, each
recorded. Every summary is kept in the state (`with_summary`) as it lands, by its turn range: a retry, a
resume or a branch finds it there and never pays for the same range twice.

Its cost is booked under phase "summary", actor None (the world's), in the turn it was made.

Only what every reader may know goes in: the world states, the actions (public by the terms of a decision)
and public statements. Never private messages nor an actor's reasoning: every actor and the world model read
the summary.
"""

from __future__ import annotations

import logging

from engine.llm.provider import CallPurpose, LLMError
from engine.phases.base import PhaseContext
from engine.phases.prompts import latest_summary, request_room, summarised_until
from engine.phases.world_update import actions_text, public_statements_text
from engine.scenario.folder import Scenario
from engine.state import ContextSummary, PhaseType, ScenarioState
from engine.token_budget import estimate_tokens, shorten

logger = logging.getLogger(__name__)

SUMMARY_MAX_TOKENS = 700
SUMMARY_WORDS = 300
# The fake LLM server (engine.testing.fake_chat) recognises a summary request by this phrase.
SUMMARY_REQUEST_PHRASE = "Write one summary of turns"


def summary_model(scenario: Scenario) -> str:
    """The summarisation model, else the world model."""
    return scenario.config.features.context_management.summarization_model or scenario.config.world_state_model


def summary_system_prompt(scenario: Scenario) -> str:
    parts = [
        "You keep the record of a policy simulation. You write short, factual summaries of what has happened "
        "so far, which the participants read in place of the full record of older turns.",
        f"Scenario: {scenario.config.name}",
        scenario.config.description.strip(),
    ]
    return "\n\n".join(part for part in parts if part)


def summary_instructions(last_turn: int) -> str:
    return (
        f"{SUMMARY_REQUEST_PHRASE} 1–{last_turn}, taking in the summary so far (if any) and the turns above, in "
        f"at most {SUMMARY_WORDS} words of plain prose. Keep what matters for the turns ahead: agreements and "
        "commitments, open disputes, how each actor's position and the world changed. Use only what is stated "
        "above, oldest first; no headings."
    )


def turn_record(state: ScenarioState, turn: int) -> str:
    """The public record of one turn: actions, public statements, and the world they led to."""
    parts = [f"### Turn {turn}", f"#### Actions\n{actions_text(state, turn) or '(none recorded)'}"]
    statements = public_statements_text(state, turn)
    if statements:
        parts.append(f"#### Public statements\n{statements}")
    world = next((w for w in state.world_states if w.turn == turn), None)
    if world is not None:
        parts.append(f"#### World state after turn {turn}\n{world.content.strip()}")
    return "\n\n".join(parts)


def summary_prompt(previous: ContextSummary | None, records: list[str], last_turn: int) -> str:
    sections = []
    if previous is not None:
        sections.append(f"## Summary so far (turns {previous.first_turn}–{previous.last_turn})\n\n{previous.text.strip()}")
    sections.append("## Turns to summarise\n\n" + "\n\n".join(records))
    sections.append(summary_instructions(last_turn))
    return "\n\n".join(sections)


class SummaryPhase:
    name = PhaseType.SUMMARY

    async def run(self, state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
        if not ctx.scenario.config.features.context_management.enabled:
            return state
        window = ctx.scenario.config.context_window_size
        target = summarised_until(state, window)
        while True:
            previous = latest_summary(state, window)
            covered = previous.last_turn if previous is not None else 0
            if covered >= target:
                return state
            state = ctx.checkpoint(await self._summarise(state, previous, covered + 1, target, ctx))

    async def _summarise(
        self, state: ScenarioState, previous: ContextSummary | None, first: int, target: int, ctx: PhaseContext
    ) -> ScenarioState:
        """Fold turns `first`.. (as many up to `target` as fit one call) into the summary; return the state with it."""
        scenario, model = ctx.scenario, summary_model(ctx.scenario)
        system = summary_system_prompt(scenario)
        room = request_room(scenario, model, max_tokens=SUMMARY_MAX_TOKENS, system=system)  # for the user message
        records: list[str] = []
        last = first - 1
        for turn in range(first, target + 1):
            record = turn_record(state, turn)
            if estimate_tokens(summary_prompt(previous, [*records, record], turn)) > room:
                if records:
                    break
                # One turn alone is too long for the summarising model: its record is cut to what fits.
                spare = room - estimate_tokens(summary_prompt(previous, [""], turn))
                logger.warning("turn %s's record is longer than %s can take in one call; it is shortened", turn, model)
                record = shorten(record, max(spare, 0))
            records.append(record)
            last = turn
        request = ctx.request(
            purpose=CallPurpose(
                task="summary",
                phase=self.name.value,
                turn=state.current_turn,
                hints={"first_turn": 1, "last_turn": last},
            ),
            model=model,
            system=system,
            user=summary_prompt(previous, records, last),
            max_tokens=SUMMARY_MAX_TOKENS,
            temperature=0.3,
        )
        response = await ctx.complete_text(request)
        text = response.text.strip()
        if not text:
            raise LLMError("the summarisation model returned an empty summary")
        return state.with_summary(ContextSummary(first_turn=1, last_turn=last, text=text))
