"""The one mapping between the engine's records and a run's rows, both ways.

Every engine record of a run has one row type here (`position` keeps its place in the state's tuple), so a
run's `ScenarioState` can be rebuilt from its rows alone, in any process. Adding a field to an engine record
means adding it to its model (with a migration) and to the two functions of its type below.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from engine import Event
from engine.seats import HumanDecision
from engine.state import (
    ActorState,
    Communication,
    CommunicationKind,
    ContextSummary,
    CostRecord,
    Decision,
    ExogenousOccurrence,
    MetricRecord,
    PhaseType,
    ScenarioState,
    ScenarioStatus,
    ValidationResult,
    WorldState,
)
from runs import models

# The records a save rewrites for a turn not yet complete (the ledger and the summaries are only ever added to).
TURN_RECORDS = (models.Turn, models.Decision, models.Communication, models.MetricRecord, models.ValidationResult)


# ---- state → rows --------------------------------------------------------------------------------------------
# A turn's QA checks play alongside the next turn's talks: its findings may reach the store one save later,
# so a save rewrites them for the last turn it stored too.
LATE_RECORDS = (models.ValidationResult,)


def turn_rows(run: models.Run, state: ScenarioState, after_turn: int) -> list[models.Model]:
    """Rows for every record of `state` belonging to a turn after `after_turn` (the ledger aside), and for
    `LATE_RECORDS` from `after_turn` on."""
    rows: list[models.Model] = []
    for i, w in enumerate(state.world_states):
        if w.turn > after_turn:
            events = [{"name": e.name, "kind": e.kind, "text": e.text} for e in w.exogenous_events]
            rows.append(models.Turn(run=run, turn=w.turn, position=i, world_state=w.content, exogenous_events=events))
    for i, d in enumerate(state.decisions):
        if d.turn > after_turn:
            rows.append(models.Decision(
                run=run, turn=d.turn, position=i, actor=d.actor, long_term_goals=list(d.long_term_goals),
                short_term_priorities=list(d.short_term_priorities), reasoning=d.reasoning, action=d.action,
                model=d.model, provider=d.provider,
            ))
    for i, c in enumerate(state.communications):
        if c.turn > after_turn:
            rows.append(models.Communication(
                run=run, turn=c.turn, position=i, message_id=c.id, kind=c.kind.value, sender=c.sender,
                recipients=list(c.recipients), content=c.content, in_reply_to=c.in_reply_to or "",
            ))
    for i, m in enumerate(state.metrics):
        if m.turn > after_turn:
            rows.append(models.MetricRecord(run=run, turn=m.turn, position=i, name=m.name, value=m.value,
                                            actor=m.actor or "", source=m.source))
    for i, v in enumerate(state.validations):
        if v.turn >= after_turn:
            rows.append(models.ValidationResult(
                run=run, turn=v.turn, position=i, check_name=v.check, passed=v.passed, severity=v.severity,
                actor=v.actor or "", issues=list(v.issues), explanation=v.explanation,
            ))
    return rows


def summary_row(run: models.Run, position: int, summary: ContextSummary) -> models.ContextSummary:
    return models.ContextSummary(run=run, turn=summary.last_turn, position=position, first_turn=summary.first_turn,
                                 text=summary.text)


def ledger_row(run_id: int, position: int, record: CostRecord, *, seq: int | None = None) -> models.CostRecord:
    """The ledger line of a call the state booked (at its index in `state.costs`)."""
    return models.CostRecord(
        run_id=run_id, position=position, seq=seq, turn=record.turn, phase=record.phase.value, actor=record.actor or "",
        model=record.model, provider=record.provider, input_tokens=record.input_tokens,
        output_tokens=record.output_tokens, cost=record.cost, cached=record.cached,
    )


def ledger_row_of_event(run_id: int, position: int, seq: int, data: dict[str, Any]) -> models.CostRecord:
    """The ledger line a cost event announces: the call as the tracker booked it, with what only the event
    carries (the task, the latency)."""
    return models.CostRecord(
        run_id=run_id, position=position, seq=seq, turn=data["turn"], phase=data["phase"], actor=data["actor"] or "",
        task=data.get("task", ""), model=data["model"], provider=data["provider"], input_tokens=data["input_tokens"],
        output_tokens=data["output_tokens"], cost=data["cost"], cached=data["cached"], latency_ms=data.get("latency_ms", 0),
    )


def call_row(run_id: int, seq: int, data: dict[str, Any], *, max_chars: int) -> models.ModelCall:
    """The trace of an answered call, from its `model_called` event (`engine.calls.call_trace`): each text cut at
    `max_chars` (and a parsed answer longer than that dropped), `truncated` saying so."""
    cut = False

    def fitted(text: str) -> str:
        nonlocal cut
        text = text.replace("\x00", "")  # PostgreSQL stores no NUL character; a model may still write one
        if len(text) <= max_chars:
            return text
        cut = True
        return text[:max_chars]

    request = dict(data.get("request") or {})
    messages = [{"role": m["role"], "content": fitted(m["content"])} for m in request.pop("messages", ())]
    answer = fitted(data.get("answer") or "")
    parsed = data.get("parsed")
    if parsed is not None:
        parsed = _without_nul(parsed)
        if len(json.dumps(parsed)) > max_chars:
            parsed, cut = None, True  # a parsed answer is kept whole or not at all: half of one is not JSON
    return models.ModelCall(
        run_id=run_id, seq=seq, turn=data["turn"], phase=data["phase"], task=data["task"], actor=data["actor"] or "",
        subject=data.get("subject") or "", model=data["model"], provider=data["provider"], attempt=data["attempt"],
        outcome=data["outcome"], repair=data.get("repair") or "", error=fitted(data.get("error") or ""), tries=data["tries"],
        input_tokens=data["input_tokens"], output_tokens=data["output_tokens"], cost=data["cost"],
        latency_ms=data["latency_ms"], cached=data["cached"], messages=messages, parameters=request, answer=answer,
        parsed=parsed, truncated=cut,
    )


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def event_row(run_id: int, event: Event) -> models.RunEvent:
    return models.RunEvent(run_id=run_id, seq=event.seq, type=str(event.type), data=event.to_dict()["data"],
                           source=event.source, timestamp=datetime.fromtimestamp(event.timestamp, UTC))


# ---- rows → state --------------------------------------------------------------------------------------------
def state_from_rows(run: models.Run) -> ScenarioState:
    """The engine state of a run, from its rows: what a resume continues from."""
    # The engine only tells a new run (CREATED) from one to continue (anything else).
    if not run.events.exists():
        status = ScenarioStatus.CREATED
    elif run.status in {s.value for s in ScenarioStatus}:
        status = ScenarioStatus(run.status)
    else:
        status = ScenarioStatus.RUNNING  # queued again to resume
    return ScenarioState(
        run_id=run.engine_run_id,
        scenario_name=run.scenario_name,
        actors=tuple(ActorState(**a) for a in run.actors),
        world_states=tuple(
            WorldState(t.turn, t.world_state, tuple(ExogenousOccurrence(**e) for e in t.exogenous_events))
            for t in run.turns.all()
        ),
        turn_duration=run.snapshot["config"].get("turn_duration", ""),
        seed=run.seed,
        status=status,
        turn=run.turn,
        completed_phases=tuple(PhaseType(p) for p in run.completed_phases),
        completed_steps=tuple(run.completed_steps),
        decisions=tuple(decision_of(d) for d in run.decisions.all()),
        communications=tuple(communication_of(c) for c in run.communications.all()),
        costs=tuple(
            CostRecord(c.turn, PhaseType(c.phase), c.actor or None, c.model, c.provider, c.input_tokens,
                       c.output_tokens, c.cost, c.cached, timestamp=c.recorded_at)
            for c in run.cost_records.all()
        ),
        metrics=tuple(MetricRecord(m.turn, m.name, m.value, m.actor or None, m.source) for m in run.metric_records.all()),
        validations=tuple(validation_of(v) for v in run.validation_results.all()),
        summaries=tuple(ContextSummary(c.first_turn, c.turn, c.text) for c in run.context_summaries.all()),
        halt_reason=run.halt_reason or None,
        error=run.error or None,
    )


def decision_of(row: models.Decision) -> Decision:
    return Decision(row.turn, row.actor, tuple(row.long_term_goals), tuple(row.short_term_priorities), row.reasoning,
                    row.action, row.model, row.provider)


def validation_of(row: models.ValidationResult) -> ValidationResult:
    # The column is `check_name`: `check` would hide Django's Model.check().
    return ValidationResult(row.turn, row.check_name, row.passed, row.severity, row.actor or None, tuple(row.issues),
                            row.explanation)


def communication_of(row: models.Communication) -> Communication:
    # The column is `message_id`: `id` is the row's primary key.
    return Communication(row.message_id, row.turn, CommunicationKind(row.kind), row.sender, tuple(row.recipients),
                         row.content, row.in_reply_to or None)


def human_decision_row(run_id: int, turn: int, actor: str, decision: HumanDecision, *, by=None) -> models.HumanDecision:
    return models.HumanDecision(
        run_id=run_id, turn=turn, actor=actor, long_term_goals=list(decision.long_term_goals),
        short_term_priorities=list(decision.short_term_priorities), reasoning=decision.reasoning,
        action=decision.action, replies=dict(decision.replies), decided_by=by if by is not None and by.is_authenticated else None,
    )


def human_decision_of(row: models.HumanDecision) -> HumanDecision:
    return HumanDecision(tuple(row.long_term_goals), tuple(row.short_term_priorities), row.reasoning, row.action,
                         dict(row.replies))
