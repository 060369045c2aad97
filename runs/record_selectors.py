"""Reads of a run's records: its events by seq, its records by turn, and the rows its page is first drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Max, QuerySet

from engine.event_types import EventType
from engine.state import Communication as EngineCommunication
from engine.state import ValidationResult as EngineValidationResult
from runs.execution.mapping import communication_of, validation_of
from runs.models import Communication, Decision, MetricRecord, ModelCall, Run, RunEvent, Turn, ValidationResult


def last_seqs(runs: list[Run]) -> dict[int, int]:
    """Each run's last event seq, in one query (0 for a run with none)."""
    found = dict(RunEvent.objects.filter(run__in=runs).values("run").annotate(n=Max("seq")).values_list("run", "n"))
    return {run.pk: found.get(run.pk, 0) for run in runs}


def last_seq(run: Run) -> int:
    return RunEvent.objects.filter(run=run).aggregate(n=Max("seq"))["n"] or 0


def run_records(model, run: Run, *, turn: int | None = None, order: tuple[str, ...] = ()) -> QuerySet:
    """A run's rows of one record kind (turns, decisions, messages, ledger lines, metrics, QA findings), of one
    turn when given."""
    rows = model.objects.filter(run=run)
    if turn is not None:
        rows = rows.filter(turn=turn)
    return rows.order_by(*order) if order else rows


def events_after(run: Run, after: int, limit: int) -> tuple[list[dict], bool]:
    """Up to `limit` of the run's events after seq `after`, in order (seq, type, data, source, timestamp), and
    whether more follow."""
    rows = list(RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")
                .values("seq", "type", "data", "source", "timestamp")[: limit + 1])
    return rows[:limit], len(rows) > limit


def snapshot_seq(run: Run) -> int:
    """The seq the stored rows correspond to: the last state_saved event (0 before the first save)."""
    return RunEvent.objects.filter(run=run, type=EventType.STATE_SAVED).aggregate(n=Max("seq"))["n"] or 0


@dataclass(frozen=True)
class RunPageRecords:
    snapshot_seq: int  # the rows below are the state as of this event
    status_seq: int  # the run's status (refreshed) includes every lifecycle event up to this one
    initial_world: Turn | None
    turns: list[Turn]
    messages: list[EngineCommunication]  # engine records: pages use the engine's names (`id`, `check`)
    decisions: list[Decision]
    metrics: list[dict[str, Any]]
    findings: list[EngineValidationResult]
    checks_passed: int


def run_page_records(run: Run) -> RunPageRecords:
    """The rows a run page is first drawn from; `run` is refreshed after the newest seq is read, so a replayed
    older lifecycle event (paused, waiting) never overrides the status the page shows."""
    seq = snapshot_seq(run)
    status_seq = last_seq(run)
    run.refresh_from_db()
    findings = run_findings(run)
    return RunPageRecords(
        snapshot_seq=seq,
        status_seq=status_seq,
        initial_world=Turn.objects.filter(run=run, turn=0).first(),
        turns=list(Turn.objects.filter(run=run).exclude(turn=0)),
        messages=[communication_of(row) for row in Communication.objects.filter(run=run)],
        decisions=list(Decision.objects.filter(run=run)),
        metrics=list(MetricRecord.objects.filter(run=run).order_by("turn", "position").values("turn", "name", "actor", "value")),
        findings=findings.failed,
        checks_passed=findings.passed,
    )


@dataclass(frozen=True)
class Findings:
    failed: list[EngineValidationResult]  # the checks that did not pass, in order
    passed: int  # how many did


def run_findings(run: Run) -> Findings:
    """The run's QA results as stored: the failed checks, and how many passed (one query)."""
    rows = list(ValidationResult.objects.filter(run=run))
    return Findings(failed=[validation_of(row) for row in rows if not row.passed], passed=sum(row.passed for row in rows))


# The events that announce a record the run page lists, and the record each names.
ANNOUNCING = {EventType.COMMUNICATION_SENT: "message", EventType.ACTOR_DECISION_COMPLETED: "decision",
              EventType.VALIDATION_FAILED: "finding", EventType.TURN_STARTED: "turn"}


def announced_at(run: Run) -> dict[tuple, int]:
    """When each message, decision and failed check of the run was announced, and each turn started (its event's
    seq), keyed ("message", id), ("decision", turn, actor), ("finding", turn, check, actor) or ("turn", turn); one
    query."""
    rows = RunEvent.objects.filter(run=run, type__in=[str(kind) for kind in ANNOUNCING]).values_list(
        "type", "seq", "data__id", "data__turn", "data__actor", "data__check")
    found: dict[tuple, int] = {}
    for kind, seq, message_id, turn, actor, check in rows:
        name = ANNOUNCING[EventType(kind)]
        key = ("message", message_id) if name == "message" else ("decision", turn, actor) if name == "decision" \
            else ("turn", turn) if name == "turn" else ("finding", turn, check, actor)
        found.setdefault(key, seq)
    return found


CALL_FILTERS = ("turn", "phase", "task", "actor", "subject", "outcome", "model")


def run_calls(run: Run, **filters: object) -> QuerySet:
    """A run's traced model calls in the order they were answered, narrowed by any of CALL_FILTERS (an actor
    of "" or "world": the world's calls)."""
    unknown = set(filters) - set(CALL_FILTERS)
    if unknown:
        raise TypeError(f"unknown call filters: {sorted(unknown)}")
    rows = ModelCall.objects.filter(run=run)
    for name, value in filters.items():
        if value is None:
            continue
        if name == "actor" and value == "world":
            value = ""
        rows = rows.filter(**{name: value})
    return rows.order_by("seq")
