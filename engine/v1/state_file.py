"""`scenario-state.json`: V1's resumable snapshot of a run, to and from `ScenarioState`.

V1's keys carry V1's view (actors by full name, one text per world state, a channel per conversation). So a
run written here resumes exactly, each section also keeps the engine's records beside V1's keys (the ledger in
`cost_tracker_state.records`, metric records, message ids, the engine's resume point). A file written by V1
has none of those; it is read from V1's keys alone, and what V1 never stored (the phase of an actor's call,
QA findings) is absent or approximated as documented below.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from engine.scenario.schema import Scenario
from engine.state import (
    ActorState,
    Communication,
    CommunicationKind,
    ContextSummary,
    CostRecord,
    Decision,
    ExogenousOccurrence,
    MetricRecord,
    PhaseName,
    RunStatus,
    ScenarioState,
    ValidationResult,
    WorldState,
    as_dict,
)
from engine.v1.files import ACTOR_PHASES, actor_names, channel_id, conversations, cost_tables, metrics_by_turn

HALT_REASONS = ("credit_limit", "end_turn", "rate_limit", "api_error", "manual", "error", "branched")


class V1Status(NamedTuple):
    status: str  # running | halted | completed
    halt_reason: str | None


def v1_status(state: ScenarioState, total_turns: int) -> V1Status:
    """The engine's status in V1's words. A run stopped by `--end-turn` is COMPLETED to the engine (it did all
    it was asked) but `halted` with `end_turn` to V1, and resumable."""
    reason = (state.halt_reason or "").lower()
    if state.status is RunStatus.RUNNING or state.status is RunStatus.PENDING:
        return V1Status("running", None)
    if state.status is RunStatus.COMPLETED:
        return V1Status("completed", None) if state.turn >= total_turns else V1Status("halted", "end_turn")
    if reason == "branched":
        return V1Status("halted", "branched")
    if state.status is RunStatus.HALTED:
        return V1Status("halted", "credit_limit" if "credit limit" in reason else "error")
    if state.status is RunStatus.PAUSED:
        if "interrupted" in reason or "on request" in reason:
            return V1Status("halted", "manual")
        return V1Status("halted", "rate_limit" if ("429" in reason or "rate limit" in reason) else "api_error")
    if state.status is RunStatus.CANCELLED:
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
        if record.actor and record.phase is PhaseName.DECISION:
            tokens[(record.turn, record.actor)] = tokens.get((record.turn, record.actor), 0) + record.tokens
    decisions: dict[str, dict[str, Any]] = {}
    for decision in state.decisions:
        decisions.setdefault(str(decision.turn), {})[names.get(decision.actor, decision.actor)] = {
            "goals": _goals_text(decision),
            "reasoning": decision.reasoning,
            "action": decision.action,
            "raw_response": _raw_response(decision),
            "tokens_used": tokens.get((decision.turn, decision.actor), 0),
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
            "current_state": state.world.content,
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


# ---- reading ------------------------------------------------------------------------------------------------
class V1StateError(ValueError):
    """scenario-state.json cannot be turned into a run; the message names the key."""


_GOALS = re.compile(r"\*\*LONG-TERM GOALS:\*\*(?P<long>.*?)(?:\*\*SHORT-TERM PRIORITIES:\*\*(?P<short>.*?))?(?=\*\*SHORT-TERM|\Z)", re.S)


def _bullets(text: str) -> tuple[str, ...]:
    return tuple(line.strip()[1:].strip() for line in text.splitlines() if line.strip().startswith(("-", "*")))


def _parse_goals(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """V1 kept goals as one Markdown block; split it back into long-term goals and short-term priorities."""
    match = _GOALS.search(text or "")
    if not match:
        return ((text.strip(),) if text and text.strip() else ()), ()
    return _bullets(match.group("long") or ""), _bullets(match.group("short") or "")


def _need(doc: dict[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise V1StateError(f"`{key}` is missing or is not a {kind.__name__}")
    return value


def state_from_v1(doc: dict[str, Any], *, scenario: Scenario | None = None) -> tuple[ScenarioState, dict[str, Any]]:
    """The run a scenario-state.json describes, and its `execution_metadata`. A file written here restores the
    state exactly, a turn in progress included (a resume continues from its first phase not done). In a file
    written by V1, records of a turn not completed are dropped, for the resume plays that turn again; its
    ledger lines stay: those calls were paid."""
    if not isinstance(doc, dict):
        raise V1StateError("the file does not hold a JSON object")
    world = _need(doc, "world_state", dict)
    states = _need(world, "states", dict)
    actors_doc = _need(doc, "actors", dict)
    metadata = doc.get("execution_metadata") if isinstance(doc.get("execution_metadata"), dict) else {}
    engine = metadata.get("engine") if isinstance(metadata.get("engine"), dict) else {}
    try:
        turn = int(doc.get("current_turn", world.get("current_turn", 0)) or 0)
        world_turns = sorted(int(t) for t in states)
    except (TypeError, ValueError):
        raise V1StateError("`current_turn` and the keys of `world_state.states` must be turn numbers") from None
    turn = min(turn, max(world_turns, default=0))
    kept = turn + 1 if engine else turn  # the last turn whose records are kept

    actors: list[ActorState] = []
    for short, entry in actors_doc.items():
        if not isinstance(entry, dict) or not entry.get("name"):
            raise V1StateError(f"`actors.{short}` must have a `name`")
        actors.append(ActorState(str(short), str(entry["name"]), str(entry.get("llm_model") or ""), str(entry.get("control") or "ai")))
    if scenario is not None:  # the scenario's order, so prompts and files list actors as a fresh run does
        order = {a.short_name: i for i, a in enumerate(scenario.actors)}
        actors.sort(key=lambda a: order.get(a.short_name, len(order)))
    short_of = {a.name: a.short_name for a in actors}

    events = world.get("exogenous_events") or {}
    world_states = tuple(
        WorldState(t, str(states[str(t)] if str(t) in states else states[t]),
                   tuple(ExogenousOccurrence(**e) for e in events.get(str(t), ())))
        for t in world_turns if t <= kept
    )

    decisions: list[Decision] = []
    for t, by_actor in (world.get("actor_decisions") or {}).items():
        if int(t) > kept:
            continue
        for name, entry in by_actor.items():
            if "long_term_goals" in entry:
                goals, priorities = tuple(entry["long_term_goals"]), tuple(entry.get("short_term_priorities") or ())
            else:
                goals, priorities = _parse_goals(str(entry.get("goals") or ""))
            decisions.append(Decision(
                turn=int(t), actor=entry.get("short_name") or short_of.get(name, name),
                long_term_goals=goals, short_term_priorities=priorities,
                reasoning=str(entry.get("reasoning") or ""), action=str(entry.get("action") or ""),
                model=str(entry.get("model") or ""), provider=str(entry.get("provider") or ("v1" if "model" not in entry else "")),
            ))

    state = ScenarioState(
        run_id=str(engine.get("run_id") or uuid.uuid4().hex),
        scenario_name=str(doc.get("scenario_name") or world.get("scenario_name") or ""),
        actors=tuple(actors),
        world_states=world_states,
        turn_duration=str(world.get("turn_duration") or ""),
        seed=int(engine.get("seed") or 0),
        status=_engine_status(doc, engine),
        turn=turn,
        completed_phases=tuple(PhaseName(p) for p in engine.get("completed_phases", ())) if engine else (),
        completed_steps=tuple(engine.get("completed_steps", ())) if engine else (),
        decisions=tuple(decisions),
        communications=_communications(doc.get("communication_manager_state") or {}, short_of, kept),
        costs=_costs(doc.get("cost_tracker_state") or {}, short_of, actors),
        metrics=_metrics(doc.get("metrics_tracker_state") or {}, kept),
        validations=tuple(ValidationResult(**{**v, "issues": tuple(v.get("issues", ()))}) for v in engine.get("validation_results", ())),
        summaries=tuple(ContextSummary(**s) for s in engine.get("summaries", ()) if s["last_turn"] <= kept),
        halt_reason=engine.get("halt_reason", doc.get("halt_reason")) if engine else doc.get("halt_reason"),
        error=engine.get("error") if engine else None,
    )
    return state, metadata


def _engine_status(doc: dict[str, Any], engine: dict[str, Any]) -> RunStatus:
    if engine.get("status"):
        return RunStatus(engine["status"])
    return {"completed": RunStatus.COMPLETED, "running": RunStatus.RUNNING}.get(str(doc.get("status")), RunStatus.HALTED)


def _communications(doc: dict[str, Any], short_of: dict[str, str], turn: int) -> tuple[Communication, ...]:
    out: list[tuple[float, Communication]] = []
    for key, channel in (doc.get("channels") or {}).items():
        channel_turn = int(channel.get("turn", 0))
        if channel_turn > turn:
            continue
        kind = CommunicationKind(channel.get("channel_type", "bilateral"))
        participants = [short_of.get(p, p) for p in channel.get("participants", ())]
        first_id: str | None = None
        for index, message in enumerate(channel.get("messages", ())):
            sender = message.get("sender_short_name") or short_of.get(message["sender"], message["sender"])
            if "id" in message:
                out.append((message.get("position", len(out)), Communication(
                    id=message["id"], turn=channel_turn, kind=kind, sender=sender,
                    recipients=tuple(message.get("recipients") or ()), content=message["content"],
                    in_reply_to=message.get("in_reply_to"),
                )))
                continue
            # V1: the first message opens the conversation, the others answer it.
            # Short and stable: a channel key of full names can be longer than an id column.
            message_id = f"t{channel_turn}-v1-{hashlib.sha256(key.encode()).hexdigest()[:10]}-{index}"
            out.append((len(out), Communication(
                id=message_id, turn=channel_turn, kind=kind, sender=sender,
                recipients=tuple(p for p in participants if p != sender), content=message["content"],
                in_reply_to=first_id,
            )))
            first_id = first_id or message_id
    # This project's files give each message its place in the run; V1's keep channel order within a turn.
    return tuple(m for _, m in sorted(out, key=lambda item: (item[1].turn, item[0])))


def _costs(doc: dict[str, Any], short_of: dict[str, str], actors: list[ActorState]) -> tuple[CostRecord, ...]:
    if "records" in doc:
        return tuple(
            CostRecord(**{**r, "phase": PhaseName(r["phase"])}) for r in doc["records"]
        )
    # V1 kept tokens and cost per call, not the phase or the input/output split: actor calls are booked as
    # decisions (V1 did not tell them apart from talks) and all tokens as input.
    records: list[CostRecord] = []
    models = {a.name: a.model for a in actors}
    for name, entry in (doc.get("costs_by_actor") or {}).items():
        for line in entry.get("turns", ()):
            records.append(CostRecord(int(line["turn"]), ACTOR_PHASES[1], short_of.get(name, name),
                                      entry.get("model") or models.get(name, ""), "v1",
                                      int(line.get("tokens") or 0), 0, float(line.get("cost") or 0.0)))
    for line in doc.get("world_state_costs") or ():
        records.append(CostRecord(int(line["turn"]), PhaseName.WORLD_UPDATE, None, "", "v1",
                                  int(line.get("tokens") or 0), 0, float(line.get("cost") or 0.0)))
    return tuple(sorted(records, key=lambda r: r.turn))


def _metrics(doc: dict[str, Any], turn: int) -> tuple[MetricRecord, ...]:
    if "records" in doc:
        return tuple(MetricRecord(**r) for r in doc["records"] if r["turn"] <= turn)
    return tuple(
        MetricRecord(int(t), name, value, source="v1")
        for t, values in sorted((doc.get("metrics_by_turn") or {}).items(), key=lambda item: int(item[0]))
        if int(t) <= turn
        for name, value in values.items()
    )
