"""The text an actor or the world model reads: built from the scenario and the state, never stored."""

from __future__ import annotations

from engine.scenario.schema import ActorConfig, Scenario
from engine.state import Communication, CommunicationKind, ScenarioState


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


def recent_history(state: ScenarioState, window: int) -> str:
    """The last `window` world states before the current one, oldest first (the context window)."""
    earlier = [w for w in state.world_states[:-1]][-window:] if window > 0 else []
    if not earlier:
        return ""
    blocks = [f"### Turn {w.turn}\n{w.content.strip()}" for w in earlier]
    return "## Earlier turns\n\n" + "\n\n".join(blocks)


def own_previous_decisions(state: ScenarioState, actor: str, window: int) -> str:
    mine = [d for d in state.decisions if d.actor == actor and d.turn < state.current_turn][-max(window, 1) :]
    if not mine:
        return ""
    blocks = [f"### Turn {d.turn}\nAction: {d.action.strip()}" for d in mine]
    return "## Your previous actions\n\n" + "\n\n".join(blocks)


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


def situation(state: ScenarioState, scenario: Scenario, actor: str | None = None, *, max_turns: int | None = None) -> str:
    """The shared part of every actor prompt: where we are, what the world looks like, what came before."""
    window = scenario.config.context_window_size
    sections = [
        f"# Turn {state.current_turn} of {max_turns or scenario.config.turns} ({scenario.config.turn_duration} per turn)",
        recent_history(state, window),
        f"## Current world state\n\n{state.world.content.strip()}",
    ]
    if actor is not None:
        sections.append(own_previous_decisions(state, actor, window))
        sections.append(visible_messages(state, actor, state.current_turn))
    return "\n\n".join(section for section in sections if section)


def other_actors(scenario: Scenario, actor: str) -> str:
    lines = [f"- `{a.short_name}`: {a.name}" for a in scenario.actors if a.short_name != actor]
    return "## Other actors (use the short name in `with`)\n" + "\n".join(lines)
