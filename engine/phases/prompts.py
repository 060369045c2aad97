"""The text an actor or the world model reads: built from the scenario and the state, never stored.

What an actor reads of the past: a model-written summary of the turns older than the context window
(`context_window_size` turns), the full world texts and its own actions of the turns within it, the current
world, and the messages of this turn it may see (public ones, and private ones it takes part in). The whole
is kept within the prompt budget of the actor's model (engine.token_budget): when it does not fit, the oldest
detail goes first, then the summary is shortened; the current world and this turn's messages are never cut,
for an actor cannot decide without them.
"""

from __future__ import annotations

import logging
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel

from engine.llm.parsing import json_schema_for
from engine.scenario.schema import ActorConfig
from engine.scenario.folder import Scenario
from engine.state import Communication, CommunicationKind, ContextSummary, Decision, ScenarioState, WorldState
from engine.token_budget import MESSAGE_OVERHEAD_TOKENS, estimate_tokens, prompt_budget, scenario_context_length, shorten

logger = logging.getLogger(__name__)

# The most an actor's call asks the model to write (a decision; outreach and replies ask less), and the room
# kept for what a phase writes around the situation (its instructions, the answer's JSON schema, the list of
# the other actors is counted apart). `situation` fits within what is left of the actor's budget.
ACTOR_MAX_OUTPUT_TOKENS = 1200
TASK_ALLOWANCE_TOKENS = 500
# Room a request for JSON leaves free, so that a re-ask (engine.phases.base) can add what was wrong with the
# answer and the start of that answer without passing the budget.
REASK_ALLOWANCE_TOKENS = 200
SUMMARY_TITLE = "Summary of earlier turns"


def bullet_list(items: list[str] | tuple[str, ...]) -> str:
    return "\n".join(f"- {item}" for item in items) if items else "- (none stated)"


def actor_system_prompt(scenario: Scenario, actor: ActorConfig) -> str:
    """Who the actor is: the scenario's framing, the actor's own prompt, goals, limits and private facts."""
    parts = [scenario.config.system_prompt.strip(), actor.system_prompt.strip() or f"You are {actor.name}."]
    parts.append(f"## Your goals\n{bullet_list(actor.goals)}")
    parts.append(f"## Your constraints\n{bullet_list(actor.constraints)}")
    if actor.expertise_text:
        parts.append(f"## Your expertise\n{actor.expertise_text}")
    if actor.decision_making_style.strip():
        parts.append(f"## How you decide\n{actor.decision_making_style.strip()}")
    if actor.private_information:
        parts.append(f"## Information only you have\n{bullet_list(actor.private_information)}")
    if scenario.background:
        parts.append(f"# Background documents\n\n{scenario.background_text}")
    return "\n\n".join(part for part in parts if part)


def world_system_prompt(scenario: Scenario) -> str:
    parts = [
        "You are the world model of a policy simulation. You write the new state of the world after each "
        "turn: concrete, plausible consequences of what the actors did and of outside events, in Markdown. "
        "You never act for an actor.",
        f"Scenario: {scenario.config.name}",
        scenario.config.description.strip(),
    ]
    if scenario.background:
        parts.append(f"# Background documents\n\n{scenario.background_text}")
    return "\n\n".join(part for part in parts if part)


# ---- the past: a summary, then detail --------------------------------------------------------------------
def summarised_until(state: ScenarioState, window: int) -> int:
    """The last turn no longer shown in full while turn `state.current_turn` is played: its actions have left
    the window (its world text is the oldest one still shown, as where the window starts). 0 for none."""
    return max(0, state.current_turn - 1 - max(window, 0))


def latest_summary(state: ScenarioState, window: int) -> ContextSummary | None:
    """The summary reaching furthest without reaching into the turns shown in full."""
    usable = [s for s in state.summaries if s.last_turn <= summarised_until(state, window)]
    return max(usable, key=lambda s: (s.last_turn, -s.first_turn), default=None)


@dataclass(frozen=True)
class _History:
    """What an actor or the world model reads of the past, trimmed to a number of tokens as a whole."""

    summary: ContextSummary | None
    summary_text: str
    worlds: tuple[WorldState, ...]
    actions: tuple[Decision, ...]

    @classmethod
    def of(cls, state: ScenarioState, window: int, actor: str | None = None) -> _History:
        summary = latest_summary(state, window)
        earlier = state.world_states[:-1][-window:] if window > 0 else ()
        mine = [d for d in state.decisions if d.actor == actor and d.turn < state.current_turn][-max(window, 1):]
        return cls(summary, summary.text.strip() if summary else "", tuple(earlier), tuple(mine) if actor else ())

    def summary_section(self) -> str:
        if self.summary is None or not self.summary_text:
            return ""
        first, last = self.summary.first_turn, self.summary.last_turn
        span = f"turn {first}" if first == last else f"turns {first}–{last}"
        return f"## {SUMMARY_TITLE} ({span})\n\n{self.summary_text}"

    def worlds_section(self) -> str:
        if not self.worlds:
            return ""
        return "## Earlier turns\n\n" + "\n\n".join(f"### Turn {w.turn}\n{w.content.strip()}" for w in self.worlds)

    def actions_section(self) -> str:
        if not self.actions:
            return ""
        return "## Your previous actions\n\n" + "\n\n".join(f"### Turn {d.turn}\nAction: {d.action.strip()}" for d in self.actions)

    def without_oldest_detail(self) -> _History | None:
        """One turn's detail less: the oldest first (a turn's actions came before the world they led to)."""
        ages = [((w.turn, 1), "world") for w in self.worlds[:1]] + [((d.turn, 0), "action") for d in self.actions[:1]]
        if not ages:
            return None
        _, kind = min(ages)
        return replace(self, worlds=self.worlds[1:]) if kind == "world" else replace(self, actions=self.actions[1:])

    def fitted(self, render: Callable[[_History], str], room: int) -> _History:
        """This history trimmed until `render(history)` takes at most `room` tokens, as far as it can be."""
        history = self
        while estimate_tokens(render(history)) > room:
            shorter = history.without_oldest_detail()
            if shorter is None:
                return history._summary_shortened(render, room)
            history = shorter
        return history

    def _summary_shortened(self, render: Callable[[_History], str], room: int) -> _History:
        # The end of a summary is the latest news: it is kept, the start is cut.
        history = self
        while history.summary_text and (over := estimate_tokens(render(history)) - room) > 0:
            text = shorten(history.summary_text, estimate_tokens(history.summary_text) - over, keep="end")
            history = replace(history, summary_text=text)
        return history


def recent_history(state: ScenarioState, window: int, *, room: int | None = None) -> str:
    """The summary of turns older than the window, then the last `window` world states before the current one,
    oldest first. With `room`, at most that many tokens (see `prompt_room` for computing it)."""

    def render(history: _History) -> str:
        return "\n\n".join(part for part in (history.summary_section(), history.worlds_section()) if part)

    history = _History.of(state, window)
    if room is not None:
        history = history.fitted(render, room)
    return render(history)


def own_previous_decisions(state: ScenarioState, actor: str, window: int) -> str:
    return _History.of(state, window, actor).actions_section()


def describe_message(message: Communication, names: dict[str, str]) -> str:
    sender = names.get(message.sender, message.sender)
    if message.kind is CommunicationKind.PUBLIC:
        where = "public statement"
    else:
        others = ", ".join(names.get(r, r) for r in message.recipients)
        where = f"{message.kind.value} message to {others}"
    return f"**{sender}** ({where}):\n{message.content.strip()}"


def visible_messages(state: ScenarioState, actor: str, turn: int) -> str:
    names = {a.short_name: a.name for a in state.actors}
    seen = [m for m in state.communications_in(turn) if m.visible_to(actor)]
    if not seen:
        return ""
    return "## Messages this turn\n\n" + "\n\n".join(describe_message(m, names) for m in seen)


# ---- budgets -----------------------------------------------------------------------------------------------
def prompt_room(scenario: Scenario, model: str, *, max_tokens: int, around: Iterable[str] = ()) -> int:
    """Tokens left for a request's variable part: `model`'s prompt budget for an answer of `max_tokens`, less
    the text sent `around` it (the system prompt, instructions), each counted as a message of its own."""
    budget = prompt_budget(scenario_context_length(scenario, model), max_tokens)
    return budget - sum(estimate_tokens(text) + MESSAGE_OVERHEAD_TOKENS for text in around) - MESSAGE_OVERHEAD_TOKENS


def request_room(
    scenario: Scenario,
    model: str,
    *,
    max_tokens: int,
    system: str,
    around: Iterable[str] = (),
    output: type[BaseModel] | None = None,
    reask: bool = False,
) -> int:
    """Tokens the variable part of a request's user message may take, exactly as `request_tokens` counts the
    request (engine.phases.base.PhaseContext.request builds it): `model`'s budget for an answer of
    `max_tokens`, less the system prompt, the user message's other parts (`around`, joined to it by blank
    lines), the `output` schema and, for a request that may be asked again, REASK_ALLOWANCE_TOKENS."""
    schema = estimate_tokens(json.dumps(json_schema_for(output))) if output is not None else 0
    # Joining parts with "\n\n" may round a part's estimate up by one token: one more per part.
    others = sum(estimate_tokens(text) + 1 for text in around)
    room = prompt_room(scenario, model, max_tokens=max_tokens, around=(system,)) - MESSAGE_OVERHEAD_TOKENS
    return room - schema - others - (REASK_ALLOWANCE_TOKENS if reask else 0)


def fitted_texts(
    texts: Mapping[str, str], render: Callable[[Mapping[str, str]], str], room: int, *, keep: Literal["start", "end"] = "start"
) -> dict[str, str]:
    """`texts` shortened, the longest first (to a common length), until `render(texts)` takes at most `room`
    tokens, as far as shortening them can go. For prompts made of texts that may each be long (the world
    before and after a turn, actions, messages) where none matters more than the others. Texts `render`
    does not show (a template without their placeholder) are left as they are."""
    texts = dict(texts)
    marked = render({name: f"\0{name}\0" for name in texts})
    shown = [name for name in texts if f"\0{name}\0" in marked]
    while (over := estimate_tokens(render(texts)) - room) > 0:
        sizes = {name: estimate_tokens(texts[name]) for name in shown}
        # The highest length that the texts above it, cut to it, give up at least the excess.
        low, high = 0, max(sizes.values(), default=0)
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if sum(max(0, size - middle) for size in sizes.values()) >= over else (low, middle - 1)
        before = estimate_tokens(render(texts))
        texts.update({name: shorten(texts[name], low, keep=keep) for name, size in sizes.items() if size > low})
        if estimate_tokens(render(texts)) >= before:
            break  # the rest of the excess is not in these texts
    return texts


def actor_room(state: ScenarioState, scenario: Scenario, actor: str | None = None) -> int:
    """The tokens `situation` may take in an actor's decision: its model's budget, less its system prompt,
    the list of the others, the allowance for the phase's instructions and the room for a re-ask. For no
    actor in particular (a text every actor reads), the smallest of all."""
    readers = [actor] if actor is not None else [a.short_name for a in scenario.actors]
    return min(
        prompt_room(
            scenario,
            state.actor(name).model,
            max_tokens=ACTOR_MAX_OUTPUT_TOKENS,
            around=(actor_system_prompt(scenario, scenario.actor(name)), other_actors(scenario, name)),
        )
        - TASK_ALLOWANCE_TOKENS
        - REASK_ALLOWANCE_TOKENS
        for name in readers
    )


def situation(
    state: ScenarioState,
    scenario: Scenario,
    actor: str | None = None,
    *,
    max_turns: int | None = None,
    room: int | None = None,
    messages: bool = True,
) -> str:
    """The shared part of every actor prompt: where we are, what came before, what the world looks like now,
    and for `actor` its own earlier actions and (unless `messages` is False: the talks, which show the one
    message answered) this turn's messages it may see. At most `room` tokens (by default `actor_room`),
    trimming the past as the module says; only the past is ever trimmed."""
    window = scenario.config.context_window_size
    header = f"# Turn {state.current_turn} of {max_turns or scenario.config.turns} ({scenario.config.turn_duration} per turn)"
    current = f"## Current world state\n\n{state.world_state.content.strip()}"
    shown = visible_messages(state, actor, state.current_turn) if actor is not None and messages else ""

    def render(history: _History) -> str:
        sections = [header, history.summary_section(), history.worlds_section(), current, history.actions_section(), shown]
        return "\n\n".join(section for section in sections if section)

    room = actor_room(state, scenario, actor) if room is None else room
    text = render(_History.of(state, window, actor).fitted(render, room))
    if estimate_tokens(text) > room:
        logger.warning(
            "turn %s: the current world and this turn's messages alone (%s tokens) exceed the room of %s's "
            "prompt (%s tokens); sent whole, the call may fail",
            state.current_turn, estimate_tokens(text), actor or "an actor", room,
        )
    return text


def other_actors(scenario: Scenario, actor: str) -> str:
    lines = [f"- `{a.short_name}`: {a.name}" for a in scenario.actors if a.short_name != actor]
    return "## Other actors (use the short name in `with`)\n" + "\n".join(lines)
