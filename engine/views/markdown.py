"""Markdown views of a run, generated from state (never read back: the state is the source of truth).

The headers follow V1's files (`# World State - Turn t`, `**Scenario:**`, ..., `---`) so readers of V1
output recognise them and the legacy writer can reuse these functions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from engine.state import Communication, CommunicationKind, Decision, ScenarioState

OFFLINE_NOTICE = (
    "> Played by the built-in **offline provider**: no language model was called. Texts are composed "
    "deterministically from the scenario, so they show the shape of a run, not a model's judgement."
)


def _header(title: str, fields: list[tuple[str, str]], generated_at: datetime | None) -> str:
    lines = [f"# {title}", ""]
    for label, value in fields:
        lines += [f"**{label}:** {value}", ""]
    if generated_at is not None:
        lines += [f"**Generated:** {generated_at:%Y-%m-%d %H:%M:%S}", ""]
    lines += ["---", ""]
    return "\n".join(lines)


def _names(state: ScenarioState) -> dict[str, str]:
    return {actor.short_name: actor.name for actor in state.actors}


def world_state_markdown(state: ScenarioState, turn: int, *, generated_at: datetime | None = None) -> str:
    world = next(w for w in state.world_states if w.turn == turn)
    out = [
        _header(
            f"World State - Turn {turn}",
            [("Scenario", state.scenario_name), ("Turn Duration", state.turn_duration)],
            generated_at,
        ),
        "## Current Situation",
        "",
        world.content.strip(),
        "",
    ]
    if world.exogenous_events:
        out += ["---", "", "## Outside Events", ""]
        for event in world.exogenous_events:
            out += [f"- **{event.name}** ({event.kind}): {event.text}"]
        out.append("")
    decisions = state.decisions_in(turn)
    if decisions:
        out += ["---", "", "## Actions Taken This Turn", ""]
        for actor in state.actors:
            if actor.short_name in decisions:
                out += [f"### {actor.name}", "", decisions[actor.short_name].action.strip(), ""]
    return "\n".join(out)


def decision_markdown(state: ScenarioState, decision: Decision, *, generated_at: datetime | None = None) -> str:
    name = _names(state).get(decision.actor, decision.actor)
    out = [
        _header(
            f"{name} - Turn {decision.turn}",
            [("Scenario", state.scenario_name), ("Turn Duration", state.turn_duration)],
            generated_at,
        ),
        "## Current Goals",
        "**LONG-TERM GOALS:**",
        *[f"- {goal}" for goal in decision.long_term_goals],
        "",
        "**SHORT-TERM PRIORITIES:**",
        *[f"- {priority}" for priority in decision.short_term_priorities],
        "",
        "---",
        "",
        "## Reasoning",
        decision.reasoning.strip(),
        "",
        "---",
        "",
        "## Action",
        decision.action.strip(),
        "",
    ]
    return "\n".join(out)


def conversation_key(message: Communication) -> tuple[str, tuple[str, ...]]:
    return message.kind.value, message.participants


def communications_markdown(state: ScenarioState, turn: int, *, generated_at: datetime | None = None) -> str:
    """Every message of a turn, grouped: public statements, then each bilateral or coalition conversation."""
    names = _names(state)
    messages = state.communications_in(turn)
    out = [_header(f"Communications - Turn {turn}", [("Scenario", state.scenario_name)], generated_at)]
    public = [m for m in messages if m.kind is CommunicationKind.PUBLIC]
    if public:
        out += ["## Public Statements", ""]
        for message in public:
            out += [f"### {names.get(message.sender, message.sender)}", "", message.content.strip(), ""]
    talks: dict[tuple[str, tuple[str, ...]], list[Communication]] = defaultdict(list)
    for message in messages:
        if message.kind is not CommunicationKind.PUBLIC:
            talks[conversation_key(message)].append(message)
    for (kind, participants), thread in talks.items():
        who = ", ".join(sorted(names.get(p, p) for p in participants))
        out += [f"## {kind.capitalize()}: {who}", ""]
        for message in thread:
            out += [f"### {names.get(message.sender, message.sender)}", "", message.content.strip(), "", "---", ""]
    if not messages:
        out += ["No messages this turn.", ""]
    return "\n".join(out)


def _money(value: float) -> str:
    return f"${value:,.4f}"


def run_summary_markdown(state: ScenarioState, *, generated_at: datetime | None = None) -> str:
    names = _names(state)
    providers = ", ".join(state.providers) or "none"
    out = [
        _header(
            f"Run Summary - {state.scenario_name}",
            [
                ("Run", state.run_id),
                ("Status", state.status.value + (f" ({state.halt_reason})" if state.halt_reason else "")),
                ("Turns completed", str(state.turn)),
                ("Providers", providers),
            ],
            generated_at,
        )
    ]
    if state.providers == ("offline",):
        out += [OFFLINE_NOTICE, ""]
    if state.error:
        out += [f"**Error:** {state.error}", ""]
    out += [
        "## Costs",
        "",
        f"Total: {_money(state.total_cost)} over {len(state.costs)} model calls, {state.total_tokens:,} tokens.",
        "",
        "| Actor | Cost |",
        "| --- | ---: |",
        *[f"| {names.get(k, k)} | {_money(v)} |" for k, v in sorted(state.cost_by_actor().items())],
        "",
        "| Phase | Cost |",
        "| --- | ---: |",
        *[f"| {k} | {_money(v)} |" for k, v in sorted(state.cost_by_phase().items())],
        "",
        "| Turn | Cost |",
        "| --- | ---: |",
        *[f"| {k} | {_money(v)} |" for k, v in sorted(state.cost_by_turn().items())],
        "",
    ]
    if state.metrics:
        out += ["## Metrics", "", "| Turn | Metric | Actor | Value |", "| ---: | --- | --- | ---: |"]
        out += [f"| {m.turn} | {m.name} | {names.get(m.actor, m.actor) if m.actor else '-'} | {m.value} |" for m in state.metrics]
        out.append("")
    failed = [v for v in state.validations if not v.passed]
    if state.validations:
        out += ["## Validation", "", f"{len(state.validations) - len(failed)} checks passed, {len(failed)} failed.", ""]
        for result in failed:
            who = f" ({names.get(result.actor, result.actor)})" if result.actor else ""
            out.append(f"- Turn {result.turn}, {result.check}{who}, {result.severity}: {'; '.join(result.issues) or result.explanation}")
        out.append("")
    return "\n".join(out)


@dataclass(frozen=True)
class View:
    """One Markdown file of a run: its name, the turn it shows (None: the whole run) and how to render it."""

    name: str
    turn: int | None
    render: Callable[[], str]


def run_views(state: ScenarioState) -> list[View]:
    """Every Markdown file of a run, in reading order: what run folders and zip downloads hold."""
    views = [View(f"world-state-{w.turn:03d}.md", w.turn, partial(world_state_markdown, state, w.turn)) for w in state.world_states]
    views += [View(f"{d.actor}-{d.turn:03d}.md", d.turn, partial(decision_markdown, state, d)) for d in state.decisions]
    views += [
        View(f"communications-{turn:03d}.md", turn, partial(communications_markdown, state, turn))
        for turn in sorted({m.turn for m in state.communications})
    ]
    views.append(View("summary.md", None, partial(run_summary_markdown, state)))
    return views
