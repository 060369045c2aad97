"""`scenario-state.json`: V1's resumable snapshot of a run, to and from `ScenarioState`.

V1's keys carry V1's view (actors by full name, one text per world state, a channel per conversation). So a
run written here resumes exactly, each section also keeps the engine's records beside V1's keys (the ledger in
`cost_tracker_state.records`, metric records, message ids, the engine's resume point). A file written by V1
has none of those; it is read from V1's keys alone, and what V1 never stored (the phase of an actor's call,
QA findings) is absent or approximated as documented below. What V1 wrote that the engine's state has no
place for (a decision's `raw_response` and `tokens_used`) is read beside the state and written back as it was.
Writing is here; reading is `engine.v1.state_reading`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


from engine.scenario.folder import Scenario
from engine.state import (
    CommunicationKind,
    Decision,
    PhaseType,
    ScenarioStatus,
    ScenarioState,
    as_dict,
)
from engine.v1.files import actor_names, channel_id, conversations, cost_tables, metrics_by_turn
STATE_FILE = "scenario-state.json"
HALT_REASONS = ("credit_limit", "end_turn", "rate_limit", "api_error", "manual", "error", "branched")


class WrittenAnswer(NamedTuple):
    """A decision's `raw_response` and `tokens_used` as the file had them (None: not there)."""

    raw_response: str | None
    tokens_used: int | None


NOT_WRITTEN = WrittenAnswer(None, None)


class V1Status(NamedTuple):
    status: str  # running | halted | completed
    halt_reason: str | None


def v1_status(state: ScenarioState, total_turns: int) -> V1Status:
    """The engine's status in V1's words. A run stopped by `--end-turn` is COMPLETED to the engine (it did all
    it was asked) but `halted` with `end_turn` to V1, and resumable."""
    reason = (state.halt_reason or "").lower()
    if state.status is ScenarioStatus.RUNNING or state.status is ScenarioStatus.CREATED:
        return V1Status("running", None)
    if state.status is ScenarioStatus.COMPLETED:
        return V1Status("completed", None) if state.turn >= total_turns else V1Status("halted", "end_turn")
    if reason == "branched":
        return V1Status("halted", "branched")
    if state.status is ScenarioStatus.HALTED:
        return V1Status("halted", "credit_limit" if "credit limit" in reason else "error")
    if state.status is ScenarioStatus.PAUSED:
        if "interrupted" in reason or "on request" in reason:
            return V1Status("halted", "manual")
        return V1Status("halted", "rate_limit" if ("429" in reason or "rate limit" in reason) else "api_error")
    if state.status in (ScenarioStatus.CANCELLED, ScenarioStatus.WAITING_FOR_HUMAN):  # a person is to act: resumable
        return V1Status("halted", "manual")
    return V1Status("halted", "error")


@dataclass
class RunMetadata:
    """What a run directory knows about itself beyond the state: where it came from and when things happened."""

    scenario_path: str
    output_path: str
    started_at: datetime
    total_turns: int
    branched_from: str | None = None
    branch_point: int | None = None
    turn_times: dict[int, datetime] | None = None  # when each turn was first written (message timestamps)
    # The decisions' raw_response and tokens_used as the file had them, written back unchanged: V1's
    # raw_response is the model's own answer, and its tokens_used cannot be recomputed from the ledger (V1
    # booked all of an actor's calls, talks included, as decision lines).
    answers: dict[tuple[int, str], WrittenAnswer] = field(default_factory=dict)
    # The last turn complete when the directory was opened: the files of turns up to it were written whole
    # (by V1, maybe) and are never written again.
    opened_after_turn: int | None = None

    def time_of(self, turn: int) -> datetime:
        return (self.turn_times or {}).get(turn, self.started_at)


def _goals_text(decision: Decision) -> str:
    lines = ["**LONG-TERM GOALS:**", *[f"- {g}" for g in decision.long_term_goals], ""]
    lines += ["**SHORT-TERM PRIORITIES:**", *[f"- {p}" for p in decision.short_term_priorities]]
    return "\n".join(lines)


def _raw_response(decision: Decision) -> str:
    # The engine asks for structured output and keeps the parsed fields; this is them in V1's answer layout.
    return f"{_goals_text(decision)}\n\n**REASONING:**\n{decision.reasoning}\n\n**ACTION:**\n{decision.action}"


def v1_state_document(state: ScenarioState, meta: RunMetadata, *, scenario: Scenario | None, now: datetime) -> dict[str, Any]:
    names = actor_names(state)
    status = v1_status(state, meta.total_turns)
    tokens: dict[tuple[int, str], int] = {}
    for record in state.costs:
        if record.actor and record.phase is PhaseType.DECISION:
            tokens[(record.turn, record.actor)] = tokens.get((record.turn, record.actor), 0) + record.tokens
    decisions: dict[str, dict[str, Any]] = {}
    for decision in state.decisions:
        kept = meta.answers.get((decision.turn, decision.actor), NOT_WRITTEN)
        decisions.setdefault(str(decision.turn), {})[names.get(decision.actor, decision.actor)] = {
            "goals": _goals_text(decision),
            "reasoning": decision.reasoning,
            "action": decision.action,
            "raw_response": _raw_response(decision) if kept.raw_response is None else kept.raw_response,
            "tokens_used": tokens.get((decision.turn, decision.actor), 0) if kept.tokens_used is None else kept.tokens_used,
            "short_name": decision.actor,
            "long_term_goals": list(decision.long_term_goals),
            "short_term_priorities": list(decision.short_term_priorities),
            "model": decision.model,
            "provider": decision.provider,
        }
    tables = cost_tables(state)
    metadata: dict[str, Any] = {
        "started_at": meta.started_at.isoformat(),
        "last_updated": now.isoformat(),
        "output_path": meta.output_path,
    }
    if meta.branched_from is not None:
        metadata["branched_from"] = meta.branched_from
        metadata["branch_point"] = meta.branch_point
    metadata["engine"] = {
        "run_id": state.run_id,
        "seed": state.seed,
        "status": state.status.value,
        "halt_reason": state.halt_reason,
        "error": state.error,
        "completed_phases": [p.value for p in state.completed_phases],
        "completed_steps": list(state.completed_steps),
        "validation_results": as_dict(state.validations),
        "turn_times": {str(t): when.isoformat() for t, when in sorted((meta.turn_times or {}).items())},
    }
    if state.summaries:  # written only when there are some, so a run without context management reads as before
        metadata["engine"]["summaries"] = as_dict(state.summaries)
    return {
        "scenario_name": state.scenario_name,
        "scenario_path": meta.scenario_path,
        "status": status.status,
        "halt_reason": status.halt_reason,
        "current_turn": state.turn,
        "total_turns": meta.total_turns,
        "completed_turns": list(range(1, state.turn + 1)),
        "world_state": {
            "current_state": state.world_state.content,
            "current_turn": state.turn,
            "turn_duration": state.turn_duration,
            "scenario_name": state.scenario_name,
            "states": {str(w.turn): w.content for w in state.world_states},
            "actor_decisions": decisions,
            "exogenous_events": {str(w.turn): as_dict(w.exogenous_events) for w in state.world_states if w.exogenous_events},
        },
        "actors": {a.short_name: {"name": a.name, "short_name": a.short_name, "llm_model": a.model, "control": a.control} for a in state.actors},
        "cost_tracker_state": {
            "total_cost": state.total_cost,
            "total_tokens": state.total_tokens,
            **tables,
            "start_time": meta.started_at.isoformat(),
            "end_time": now.isoformat() if status.status == "completed" else None,
            "records": as_dict(state.costs),
        },
        "metrics_tracker_state": {
            "metrics_by_turn": (table := metrics_by_turn(state, scenario)),
            "final_metrics": dict(table[max(table, key=int)]) if table else {},
            "records": as_dict(state.metrics),
        },
        "communication_manager_state": _communication_state(state, meta),
        "execution_metadata": metadata,
    }


def _communication_state(state: ScenarioState, meta: RunMetadata) -> dict[str, Any]:
    names = actor_names(state)
    position = {m.id: index for index, m in enumerate(state.communications)}
    channels: dict[str, Any] = {}
    by_turn: dict[str, list[str]] = {}
    for turn in sorted({m.turn for m in state.communications}):
        groups = dict(conversations(state, turn))
        public = [m for m in state.communications_in(turn) if m.kind is CommunicationKind.PUBLIC]
        if public:
            groups[(CommunicationKind.PUBLIC, tuple(sorted(names)))] = public
        for (kind, participants), messages in groups.items():
            full = sorted(names.get(p, p) for p in participants)
            key = channel_id(kind.value, full, turn)
            channels[key] = {
                "channel_type": kind.value,
                "participants": full,
                "turn": turn,
                "messages": [
                    {
                        "sender": names.get(m.sender, m.sender),
                        "content": m.content,
                        "timestamp": meta.time_of(turn).isoformat(),
                        "id": m.id,
                        "sender_short_name": m.sender,
                        "recipients": list(m.recipients),
                        "in_reply_to": m.in_reply_to,
                        "position": position[m.id],  # the order of the run, across channels
                    }
                    for m in messages
                ],
            }
            by_turn.setdefault(str(turn), []).append(key)
    return {"actor_names": [a.name for a in state.actors], "channels": channels, "channels_by_turn": by_turn}
