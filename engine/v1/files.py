"""The contents of V1's run files, rendered from engine state: conversations, QA reports, costs and metrics.

World-state and actor files are `engine.views.markdown`'s (they already follow V1's headers). V1 had bugs in
its numbers (per-actor turn costs overwritten, token counts estimated, QA costs left out); the shapes here are
V1's, the numbers are the ledger's.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from statistics import fmean
from typing import Any

from engine.scenario.folder import Scenario
from engine.state import Communication, CommunicationKind, CostRecord, MetricRecord, PhaseType, ScenarioState, ValidationResult

ACTOR_PHASES = (PhaseType.COMMUNICATION, PhaseType.DECISION)  # the calls V1 booked under an actor's name
TITLES = {CommunicationKind.BILATERAL: "Bilateral Negotiation", CommunicationKind.COALITION: "Coalition Communication"}


def actor_names(state: ScenarioState) -> dict[str, str]:
    return {actor.short_name: actor.name for actor in state.actors}


# File systems allow 255 bytes in a name, and the atomic write adds ".<name>.XXXXXXXX.tmp" (14 bytes) to it.
MAX_FILE_NAME_BYTES = 200


def _file_safe(name: str) -> str:
    return name.replace("/", "-").replace("\\", "-").replace("\0", "-")


def conversation_file_name(kind: str, participants: Iterable[str], turn: int) -> str:
    """`bilateral-<A>-<B>-NNN.md`: full names, sorted, with path separators replaced as V1 did.

    Names that would be too long for a file system (actors with long full names, large coalitions) keep
    their start, then a hash of the whole name, then the turn: `coalition-<start>-<hash>-NNN.md`, the same
    for the same conversation every time."""
    joined = "-".join(sorted(_file_safe(name) for name in participants))
    name = f"{kind}-{joined}-{turn:03d}.md"
    if len(name.encode()) <= MAX_FILE_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    tail = f"-{digest}-{turn:03d}.md"
    room = MAX_FILE_NAME_BYTES - len(tail.encode()) - len(kind.encode()) - 1
    start = joined.encode()[:room].decode("utf-8", errors="ignore")  # never half a character
    return f"{kind}-{start}{tail}"


def channel_id(kind: str, participants: Iterable[str], turn: int) -> str:
    """V1's key for a conversation in `communication_manager_state.channels`."""
    return f"{kind}-{'-'.join(sorted(participants))}-{turn}"


def conversations(state: ScenarioState, turn: int) -> dict[tuple[CommunicationKind, tuple[str, ...]], list[Communication]]:
    """A turn's private talks, grouped as V1 grouped them: one channel per kind and set of participants."""
    talks: dict[tuple[CommunicationKind, tuple[str, ...]], list[Communication]] = defaultdict(list)
    for message in state.communications_in(turn):
        if message.kind is not CommunicationKind.PUBLIC:
            talks[(message.kind, message.participants)].append(message)
    return dict(talks)


def conversation_markdown(
    state: ScenarioState, kind: CommunicationKind, messages: list[Communication], turn: int, *, generated_at: datetime
) -> str:
    names = actor_names(state)
    participants = sorted(names.get(p, p) for p in messages[0].participants)
    out = [
        f"# {TITLES[kind]} - Turn {turn}",
        "",
        f"**Scenario:** {state.scenario_name}",
        "",
        f"**Participants:** {', '.join(participants)}",
        "",
        f"**Generated:** {generated_at:%Y-%m-%d %H:%M:%S}",
        "",
        "---",
        "",
        "## Messages",
        "",
    ]
    for message in messages:
        out += [f"### {names.get(message.sender, message.sender)}", "", message.content.strip(), "", "---", ""]
    return "\n".join(out)


# ---- QA reports ---------------------------------------------------------------------------------------------
def _title(check: str) -> str:
    return check.replace("_", " ").title()


def validation_tokens(state: ScenarioState, turn: int) -> dict[str | None, int]:
    """Tokens of a turn's validation calls, by the actor checked (None: the checks of the whole turn).

    Checks run at once and their results are sorted afterwards, so the ledger's order is not the results'.
    A ledger line names the actor it checked but not the check, so an actor's tokens are told apart from
    another's, and the checks of one actor are counted together."""
    tokens: dict[str | None, int] = defaultdict(int)
    for record in state.costs:
        if record.turn == turn and record.phase is PhaseType.VALIDATION:
            tokens[record.actor] += record.tokens
    return dict(tokens)


def validation_report_markdown(state: ScenarioState, turn: int, *, generated_at: datetime) -> str:
    out = [f"# Validation Report - Turn {turn}", "", f"**Generated:** {generated_at:%Y-%m-%d %H:%M:%S}", "", "---", ""]
    results = state.validations_in(turn)
    if not results:
        out += ["*No validation checks performed this turn.*", ""]
        return "\n".join(out)
    tokens = validation_tokens(state, turn)
    names = actor_names(state)
    checks_of: dict[str | None, list[ValidationResult]] = defaultdict(list)
    for result in results:
        checks_of[result.actor].append(result)
    by_check: dict[str, list[ValidationResult]] = defaultdict(list)
    for result in results:
        by_check[result.check].append(result)
    for check, entries in by_check.items():
        out += [f"## {_title(check)}", ""]
        for result in entries:
            label = "✅ **PASSED**" if result.passed else "⚠️ **ISSUES FOUND**"
            if result.actor:
                label += f" ({names.get(result.actor, result.actor)})"
            out += [label, ""]
            if not result.passed and result.issues:
                out += ["**Issues:**", "", *[f"- {issue}" for issue in result.issues], ""]
                out += [f"**Severity:** {result.severity}", ""]
            if result.explanation:
                out += [f"**Explanation:** {result.explanation}", ""]
            out += [_tokens_line(result, checks_of[result.actor], tokens.get(result.actor, 0), names), "", "---", ""]
    return "\n".join(out)


def _tokens_line(result: ValidationResult, together: list[ValidationResult], used: int, names: dict[str, str]) -> str:
    """V1's `*Tokens used: N*`. Several checks of one actor (or of the whole turn) share one count: it is
    given once, on the first of them, and the others point to it."""
    if len(together) == 1:
        return f"*Tokens used: {used}*"
    subject = names.get(result.actor, result.actor) if result.actor else "the turn"
    first = together[0]
    if result is first:
        return f"*Tokens used: {used} (the {len(together)} checks of {subject} together)*"
    return f"*Tokens used: counted with {_title(first.check)} of {subject}*"


def validation_summary_markdown(state: ScenarioState, *, generated_at: datetime) -> str:
    out = ["# Validation Summary Report", "", f"**Generated:** {generated_at:%Y-%m-%d %H:%M:%S}", "", "---", ""]
    results = state.validations
    if not results:
        out += ["*No validation checks performed.*", ""]
        return "\n".join(out)
    lines = [r for r in state.costs if r.phase is PhaseType.VALIDATION]
    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    out += [
        "## Summary Statistics",
        "",
        f"- **Total Checks:** {len(results)}",
        f"- **Passed:** {passed} ({100 * passed / len(results):.1f}%)",
        f"- **Failed:** {failed} ({100 * failed / len(results):.1f}%)",
        f"- **Total Tokens Used:** {sum(r.tokens for r in lines):,}",
        f"- **Estimated Cost:** ${sum(r.cost for r in lines):.4f}",
        "",
        "## Checks by Type",
        "",
    ]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for result in results:
        counts[result.check][0 if result.passed else 1] += 1
    for check, (ok, bad) in counts.items():
        out += [f"### {_title(check)}", "", f"- Passed: {ok}/{ok + bad}", f"- Failed: {bad}/{ok + bad}", ""]
    failures = [r for r in results if not r.passed]
    if failures:
        names = actor_names(state)
        out += ["## All Validation Failures", ""]
        for result in failures:
            who = f" ({names.get(result.actor, result.actor)})" if result.actor else ""
            out += [f"### {_title(result.check)}{who}", "", f"**Turn:** {result.turn}", "", f"**Severity:** {result.severity}", ""]
            out += ["**Issues:**", "", *[f"- {issue}" for issue in result.issues], ""]
            if result.explanation:
                out += [f"**Explanation:** {result.explanation}", ""]
            out += ["---", ""]
    return "\n".join(out)


# ---- costs.json ---------------------------------------------------------------------------------------------
def _line(record: CostRecord) -> dict[str, Any]:
    return {"turn": record.turn, "tokens": record.tokens, "cost": record.cost}


def cost_tables(state: ScenarioState) -> dict[str, Any]:
    """V1's cost breakdowns: every call of an actor listed (V1 overwrote all but one per turn), world updates,
    and per-turn totals that include QA and metric calls."""
    names = actor_names(state)
    by_actor: dict[str, dict[str, Any]] = {}
    by_turn: dict[str, dict[str, Any]] = {}
    world: list[dict[str, Any]] = []
    for record in state.costs:
        turn = by_turn.setdefault(str(record.turn), {"actor_costs": {}, "world_state_cost": 0.0, "total": 0.0})
        turn["total"] += record.cost
        if record.actor and record.phase in ACTOR_PHASES:
            name = names.get(record.actor, record.actor)
            entry = by_actor.setdefault(name, {"model": record.model, "turns": [], "total_tokens": 0, "total_cost": 0.0})
            entry["turns"].append(_line(record))
            entry["total_tokens"] += record.tokens
            entry["total_cost"] += record.cost
            turn["actor_costs"][name] = turn["actor_costs"].get(name, 0.0) + record.cost
        elif record.phase is PhaseType.WORLD_UPDATE:
            world.append(_line(record))
            turn["world_state_cost"] += record.cost
    return {"costs_by_actor": by_actor, "costs_by_turn": by_turn, "world_state_costs": world}


def validation_costs(state: ScenarioState, scenario: Scenario) -> dict[str, Any]:
    lines = [r for r in state.costs if r.phase is PhaseType.VALIDATION]
    return {
        "total_tokens": sum(r.tokens for r in lines),
        "total_cost_usd": round(sum(r.cost for r in lines), 4),
        "checks_performed": len(state.validations),
        "model": scenario.validation.validation_model if scenario.validation else "unknown",
    }


def v1_costs(state: ScenarioState, scenario: Scenario, *, started_at: datetime, ended_at: datetime) -> dict[str, Any]:
    document: dict[str, Any] = {
        "scenario_execution": {
            "start_time": started_at.isoformat(),
            "end_time": ended_at.isoformat(),
            "duration_seconds": (ended_at - started_at).total_seconds(),
        },
        **cost_tables(state),
        "totals": {"total_tokens": state.total_tokens, "total_cost_usd": state.total_cost},
    }
    if scenario.validation is not None:
        document["validation"] = validation_costs(state, scenario)
    return document


# ---- metrics.json -------------------------------------------------------------------------------------------
def metric_key(record: MetricRecord, scenario: Scenario | None) -> str:
    """V1 keyed metrics by name; a metric measured for every actor gets one key per actor."""
    if record.actor is None:
        return record.name
    for definition in scenario.metric_definitions if scenario else ():
        if definition.name == record.name and definition.actor:
            return record.name
    return f"{record.name}_{record.actor}"


def metrics_by_turn(state: ScenarioState, scenario: Scenario | None) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for record in state.metrics:
        if record.value is None:
            continue  # V1 recorded a metric only when its pattern matched
        table.setdefault(str(record.turn), {})[metric_key(record, scenario)] = record.value
    return table


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def v1_metrics(state: ScenarioState, scenario: Scenario) -> dict[str, Any]:
    table = metrics_by_turn(state, scenario)
    final = table[max(table, key=int)] if table else {}
    series: dict[str, list[Any]] = defaultdict(list)
    for turn in sorted(table, key=int):
        for key, value in table[turn].items():
            series[key].append(value)
    statistics = {
        key: {"min": min(values), "max": max(values), "mean": fmean(values), "count": len(values), "values": values}
        for key, values in series.items()
        if values and all(_numeric(v) for v in values)
    }
    written = scenario.metrics.metrics if scenario.metrics else []
    # As the folder wrote them: V1's dict form by name, the list form keyed by each metric's name.
    entries = written.items() if isinstance(written, dict) else ((d.name, d) for d in written)
    definitions = {name: d.model_dump(mode="json", exclude_unset=True) for name, d in entries}
    return {
        "scenario": scenario.name,  # V1 wrote metrics.yaml's `scenario_name`, usually missing, so often ""
        "metrics_definitions": definitions,
        "metrics_by_turn": table,
        "final_metrics": dict(final),
        "summary_statistics": statistics,
    }
