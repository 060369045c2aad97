"""Reading `scenario-state.json` into a `ScenarioState`: from the engine's records kept beside V1's keys when
this project wrote the file, else from V1's keys alone (what V1 never stored is absent or approximated, as
`engine.v1.state_file` documents). What V1 wrote that the state has no place for comes back beside it."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from typing import Any, NamedTuple

from engine.scenario.schema import SHORT_NAME

from engine.scenario.folder import Scenario
from engine.state import (
    ActorState,
    Communication,
    CostRecord,
    Decision,
    MetricRecord,
    PhaseType,
    ScenarioStatus,
    ScenarioState,
    WorldState,
)
from engine.v1.files import ACTOR_PHASES
from engine.v1.state_schema import (
    CommunicationSection,
    CostSection,
    DecisionEntry,
    MetricSection,
    StateDocument,
    V1StateError,
    parse_state_document,
)

from engine.v1.state_file import RunMetadata, WrittenAnswer

_GOALS = re.compile(r"\*\*LONG-TERM GOALS:\*\*(?P<long>.*?)(?:\*\*SHORT-TERM PRIORITIES:\*\*(?P<short>.*?))?(?=\*\*SHORT-TERM|\Z)", re.S)


def _bullets(text: str) -> tuple[str, ...]:
    return tuple(line.strip()[1:].strip() for line in text.splitlines() if line.strip().startswith(("-", "*")))


def _parse_goals(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """V1 kept goals as one Markdown block; split it back into long-term goals and short-term priorities."""
    match = _GOALS.search(text or "")
    if not match:
        return ((text.strip(),) if text and text.strip() else ()), ()
    return _bullets(match.group("long") or ""), _bullets(match.group("short") or "")


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


def metadata_from_reading(reading: V1Reading, *, scenario_path: str, output_path: str, total_turns: int,
                          now: datetime, until: int | None = None) -> RunMetadata:
    """The metadata of a directory read back: its start, lineage, turn times and decisions' answers (those
    of turns up to `until` only, for a branch)."""
    meta = reading.document.execution_metadata
    engine = reading.document.engine
    last = reading.state.turn if until is None else until
    return RunMetadata(
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
