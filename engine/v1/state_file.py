"""`scenario-state.json`: V1's resumable snapshot of a run, to and from `ScenarioState`.

V1's keys carry V1's view (actors by full name, one text per world state, a channel per conversation). So a
run written here resumes exactly, each section also keeps the engine's records beside V1's keys (the ledger in
`cost_tracker_state.records`, metric records, message ids, the engine's resume point). A file written by V1
has none of those; it is read from V1's keys alone, and what V1 never stored (the phase of an actor's call,
QA findings) is absent or approximated as documented below. What V1 wrote that the engine's state has no
place for (a decision's `raw_response` and `tokens_used`) is read beside the state and written back as it was.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from engine.scenario.schema import SHORT_NAME

from engine.scenario.folder import Scenario
from engine.state import (
    ActorState,
    Communication,
    CommunicationKind,
    CostRecord,
    Decision,
    MetricRecord,
    PhaseType,
    ScenarioStatus,
    ScenarioState,
    WorldState,
    as_dict,
)
from engine.v1.files import ACTOR_PHASES, actor_names, channel_id, conversations, cost_tables, metrics_by_turn
from engine.v1.state_schema import (
    CommunicationSection,
    CostSection,
    DecisionEntry,
    MetricSection,
    StateDocument,
    V1StateError,
    parse_state_document,
)

STATE_FILE = "scenario-state.json"
HALT_REASONS = ("credit_limit", "end_turn", "rate_limit", "api_error", "manual", "error", "branched")


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

    @classmethod
    def from_reading(cls, reading: V1Reading, *, scenario_path: str, output_path: str, total_turns: int,
                     now: datetime, until: int | None = None) -> RunMetadata:
        """The metadata of a directory read back: its start, lineage, turn times and decisions' answers (those
        of turns up to `until` only, for a branch)."""
        meta = reading.document.execution_metadata
        engine = reading.document.engine
        last = reading.state.turn if until is None else until
        return cls(
            scenario_path=reading.document.scenario_path or scenario_path,
            output_path=(meta.output_path if meta else None) or output_path,
            started_at=(meta.started_at if meta else None) or now,
            total_turns=total_turns,
            branched_from=meta.branched_from if meta else None,
            branch_point=meta.branch_point if meta else None,
            turn_times={t: when for t, when in (engine.turn_times if engine else {}).items() if t <= last},
            answers={key: answer for key, answer in reading.answers.items() if key[0] <= last},
            opened_after_turn=last,
        )


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


# ---- reading ------------------------------------------------------------------------------------------------
_GOALS = re.compile(r"\*\*LONG-TERM GOALS:\*\*(?P<long>.*?)(?:\*\*SHORT-TERM PRIORITIES:\*\*(?P<short>.*?))?(?=\*\*SHORT-TERM|\Z)", re.S)


def _bullets(text: str) -> tuple[str, ...]:
    return tuple(line.strip()[1:].strip() for line in text.splitlines() if line.strip().startswith(("-", "*")))


def _parse_goals(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """V1 kept goals as one Markdown block; split it back into long-term goals and short-term priorities."""
    match = _GOALS.search(text or "")
    if not match:
        return ((text.strip(),) if text and text.strip() else ()), ()
    return _bullets(match.group("long") or ""), _bullets(match.group("short") or "")


class WrittenAnswer(NamedTuple):
    """A decision's `raw_response` and `tokens_used` as the file had them (None: not there)."""

    raw_response: str | None
    tokens_used: int | None


NOT_WRITTEN = WrittenAnswer(None, None)


class V1Reading(NamedTuple):
    state: ScenarioState
    document: StateDocument  # the file's keys, typed
    answers: dict[tuple[int, str], WrittenAnswer]  # (turn, actor) of each decision kept in the state


class _Actors:
    """The run's actors, and the check that a name met in the file is one of them. Names become file names
    (`<short_name>-NNN.md`, conversation files), so a stranger is refused, never written."""

    def __init__(self, actors: list[ActorState]) -> None:
        self.short_of = {a.name: a.short_name for a in actors}
        self.shorts = {a.short_name for a in actors}

    def _refuse(self, value: str, path: str) -> V1StateError:
        known = ", ".join(sorted(self.shorts)) or "none"
        return V1StateError(f"{path}: {value!r} is not one of the run's actors (`actors`: {known})")

    def by_short_name(self, value: str, path: str) -> str:
        if value not in self.shorts:
            raise self._refuse(value, path)
        return value

    def by_name(self, value: str, path: str) -> str:
        """A full name, as V1 keyed decisions and wrote senders; a short name is accepted too."""
        short = self.short_of.get(value, value if value in self.shorts else None)
        if short is None:
            raise self._refuse(value, path)
        return short


def _played_turns(doc: StateDocument) -> int:
    """The last completed turn. A file without `current_turn` says it in `completed_turns` or in the world
    state's `current_turn`; with none of them it is refused rather than read as 0, which would play (and pay
    for) its turns again."""
    if doc.current_turn is not None:
        return doc.current_turn
    if doc.completed_turns is not None:
        return max(doc.completed_turns, default=0)
    if doc.world_state.current_turn is not None:
        return doc.world_state.current_turn
    raise V1StateError("current_turn: missing (or null), and neither `completed_turns` nor `world_state.current_turn` "
                       "says which turns were played; put the last completed turn in `current_turn`")


def state_from_v1(doc: Any, *, scenario: Scenario | None = None) -> V1Reading:
    """The run a scenario-state.json describes. A file written here restores the state exactly, a turn in
    progress included (a resume continues from its first phase not done). In a file written by V1, records of
    a turn not completed are dropped, for the resume plays that turn again; its ledger lines stay: those
    calls were paid. Raises V1StateError naming the key when the file is damaged."""
    parsed = parse_state_document(doc)
    world = parsed.world_state
    engine = parsed.engine
    turn = min(_played_turns(parsed), max(world.states, default=0))
    kept = turn + 1 if engine else turn  # the last turn whose records are kept

    actors: list[ActorState] = []
    for short, entry in parsed.actors.items():
        if not SHORT_NAME.match(short):
            raise V1StateError(f"actors.{short}: not a short name (letters, digits, '-', '_' or '.', starting with a "
                               "letter or digit)")
        actors.append(ActorState(short, entry.name, entry.llm_model or "", entry.control or "ai"))
    if scenario is not None:  # the scenario's order, so prompts and files list actors as a fresh run does
        order = {a.short_name: i for i, a in enumerate(scenario.actors)}
        actors.sort(key=lambda a: order.get(a.short_name, len(order)))
    known = _Actors(actors)

    events = world.exogenous_events or {}
    world_states = tuple(WorldState(t, text, tuple(events.get(t, ()))) for t, text in sorted(world.states.items()) if t <= kept)
    decisions, answers = _decisions(world.actor_decisions or {}, known, kept)
    state = ScenarioState(
        run_id=(engine.run_id if engine else None) or uuid.uuid4().hex,
        scenario_name=parsed.scenario_name or world.scenario_name or "",
        actors=tuple(actors),
        world_states=world_states,
        turn_duration=world.turn_duration or "",
        seed=(engine.seed if engine else None) or 0,
        status=_engine_status(parsed),
        turn=turn,
        completed_phases=tuple(engine.completed_phases) if engine else (),
        completed_steps=tuple(engine.completed_steps) if engine else (),
        decisions=tuple(decisions),
        communications=_communications(parsed.communication_manager_state, known, kept),
        costs=_costs(parsed.cost_tracker_state, known, actors),
        metrics=_metrics(parsed.metrics_tracker_state, kept),
        validations=tuple(engine.validation_results) if engine else (),
        summaries=tuple(s for s in engine.summaries if s.last_turn <= kept) if engine else (),
        halt_reason=(engine.halt_reason if engine and "halt_reason" in engine.model_fields_set else parsed.halt_reason),
        error=engine.error if engine else None,
    )
    return V1Reading(state, parsed, answers)


def _decisions(table: dict[int, dict[str, DecisionEntry]], known: _Actors, kept: int) -> tuple[list[Decision], dict[tuple[int, str], WrittenAnswer]]:
    decisions: list[Decision] = []
    answers: dict[tuple[int, str], WrittenAnswer] = {}
    for turn, by_actor in table.items():
        if turn > kept:
            continue
        for name, entry in by_actor.items():
            path = f"world_state.actor_decisions.{turn}.{name}"
            if entry.short_name is not None:
                actor = known.by_short_name(entry.short_name, f"{path}.short_name")
            else:
                actor = known.by_name(name, path)
            if (turn, actor) in answers:
                raise V1StateError(f"{path}: a second decision of {actor} in turn {turn}")
            if entry.long_term_goals is not None:
                goals, priorities = tuple(entry.long_term_goals), tuple(entry.short_term_priorities or ())
            else:
                goals, priorities = _parse_goals(entry.goals or "")
            decisions.append(Decision(
                turn=turn, actor=actor, long_term_goals=goals, short_term_priorities=priorities,
                reasoning=entry.reasoning or "", action=entry.action or "", model=entry.model or "",
                provider=entry.provider or ("v1" if "model" not in entry.model_fields_set else ""),
            ))
            answers[(turn, actor)] = WrittenAnswer(entry.raw_response, entry.tokens_used)
    return decisions, answers


def _engine_status(doc: StateDocument) -> ScenarioStatus:
    if doc.engine is not None and doc.engine.status is not None:
        return doc.engine.status
    return {"completed": ScenarioStatus.COMPLETED, "running": ScenarioStatus.RUNNING}.get(str(doc.status), ScenarioStatus.HALTED)


def _communications(section: CommunicationSection | None, known: _Actors, turn: int) -> tuple[Communication, ...]:
    out: list[tuple[float, Communication]] = []
    ids: set[str] = set()
    for key, channel in (section.channels if section else {}).items():
        if channel.turn > turn:
            continue
        path = f"communication_manager_state.channels.{key}"
        participants = [known.by_name(p, f"{path}.participants") for p in channel.participants]
        first_id: str | None = None
        for index, message in enumerate(channel.messages):
            where = f"{path}.messages.{index}"
            if message.sender_short_name is not None:
                sender = known.by_short_name(message.sender_short_name, f"{where}.sender_short_name")
            else:
                sender = known.by_name(message.sender, f"{where}.sender")
            if message.id is not None:
                recipients = tuple(known.by_short_name(r, f"{where}.recipients") for r in message.recipients or ())
                communication = Communication(
                    id=message.id, turn=channel.turn, kind=channel.channel_type, sender=sender,
                    recipients=recipients, content=message.content, in_reply_to=message.in_reply_to,
                )
                position: float = message.position if message.position is not None else len(out)
            else:
                # V1: the first message opens the conversation, the others answer it.
                # Short and stable: a channel key of full names can be longer than an id column.
                message_id = f"t{channel.turn}-v1-{hashlib.sha256(key.encode()).hexdigest()[:10]}-{index}"
                communication = Communication(
                    id=message_id, turn=channel.turn, kind=channel.channel_type, sender=sender,
                    recipients=tuple(p for p in participants if p != sender), content=message.content,
                    in_reply_to=first_id,
                )
                first_id = first_id or message_id
                position = len(out)
            if communication.id in ids:
                raise V1StateError(f"{where}.id: {communication.id!r} is the id of another message too")
            ids.add(communication.id)
            out.append((position, communication))
    # This project's files give each message its place in the run; V1's keep channel order within a turn.
    return tuple(m for _, m in sorted(out, key=lambda item: (item[1].turn, item[0])))


def _costs(section: CostSection | None, known: _Actors, actors: list[ActorState]) -> tuple[CostRecord, ...]:
    if section is None:
        return ()
    if section.records is not None:
        return tuple(section.records)
    # V1 kept tokens and cost per call, not the phase or the input/output split: actor calls are booked as
    # decisions (V1 did not tell them apart from talks) and all tokens as input. A line's actor names no file,
    # so one V1 booked under another name is kept under that name.
    records: list[CostRecord] = []
    models = {a.name: a.model for a in actors}
    for name, entry in (section.costs_by_actor or {}).items():
        for line in entry.turns:
            records.append(CostRecord(line.turn, ACTOR_PHASES[1], known.short_of.get(name, name),
                                      entry.model or models.get(name, ""), "v1", line.tokens or 0, 0, line.cost or 0.0))
    for line in section.world_state_costs or ():
        records.append(CostRecord(line.turn, PhaseType.WORLD_UPDATE, None, "", "v1", line.tokens or 0, 0, line.cost or 0.0))
    return tuple(sorted(records, key=lambda r: r.turn))


def _metrics(section: MetricSection | None, turn: int) -> tuple[MetricRecord, ...]:
    if section is None:
        return ()
    if section.records is not None:
        return tuple(MetricRecord(r.turn, r.name, r.value, r.actor, r.source) for r in section.records if r.turn <= turn)
    return tuple(
        MetricRecord(t, name, value, source="v1")
        for t, values in sorted((section.metrics_by_turn or {}).items())
        if t <= turn
        for name, value in values.items()
    )
