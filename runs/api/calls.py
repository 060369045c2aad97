"""A run's traced model calls: what each call was sent and answered (the full view's, like QA findings)."""

from __future__ import annotations

from typing import Any

from ninja import Query, Schema
from pydantic import Field

from runs import record_selectors
from runs.api.common import Text, router, run_for
from runs.models import ModelCall, Run
from runs.reading import reader_of
from scenariolab_site.api_base import ApiError, caller, errors


MAX_CALLS = 50  # a page of calls holds their prompts: tens of kilobytes each


class CallMessage(Schema):
    role: str
    content: str


class CallOut(Schema):
    seq: int = Field(description="its model_called event; the call's id within the run")
    turn: int
    phase: str
    task: str = Field(description="decision, outreach, reply, world_update, metric, validation or summary")
    actor: str | None = Field(description="the actor the call was for; null for the world's")
    subject: str = Field(description="the metric or check a judge's call measures")
    model: str
    provider: str
    attempt: int = Field(description="2 and more: asked again after an unusable answer")
    outcome: str = Field(description="used, re-asked or unusable")
    repair: str = Field(description="json_repair or sections when the answer needed mending; empty otherwise")
    error: str = Field(description="why the answer could not be used")
    tries: int = Field(description="requests sent for this answer (the provider's retries + 1)")
    input_tokens: int
    output_tokens: int
    cost: float
    latency_ms: float
    cached: bool
    messages: list[CallMessage] = Field(description="the request's messages, as sent")
    parameters: dict[str, Any] = Field(description="temperature, seed, max_tokens, schema_name")
    answer: str = Field(description="the answer as the model wrote it")
    parsed: Any = Field(description="what the engine read from it")
    truncated: bool = Field(description="a text was cut at the site's SCENARIOLAB_CALL_TRACE_MAX_CHARS")


class CallPage(Schema):
    count: int
    items: list[CallOut]


def call_json(call: ModelCall) -> dict[str, Any]:
    return {**{f: getattr(call, f) for f in (
        "seq", "turn", "phase", "task", "subject", "model", "provider", "attempt", "outcome", "repair", "error",
        "tries", "input_tokens", "output_tokens", "cost", "latency_ms", "cached", "messages", "parameters", "answer",
        "parsed", "truncated")}, "actor": call.actor or None}


def _calls_of(request, run_id: int) -> Run:
    run = run_for(request, run_id)
    if not reader_of(run, caller(request)).viewpoint.sees_calls:
        raise ApiError(403, "forbidden", f"the model calls of run {run_id} hold every actor's secrets: only readers "
                                         "with the full view (the owner, facilitators, full-view observers) see them")
    return run


@router.get("/{run_id}/calls", response={200: CallPage, **errors(401, 403, 404, 422)},
            summary="The run's model calls: each request as sent, the answer, what was read from it, tokens, cost, "
                    "latency, tries, re-asks and cache hits (filter by turn, phase, task, actor, subject, outcome, model)")
def run_calls(request, run_id: int, turn: int | None = Query(None, ge=0), phase: Text | None = Query(None, max_length=32),
              task: Text | None = Query(None, max_length=32),
              actor: Text | None = Query(None, max_length=64, description="an actor's short name, or world"),
              subject: Text | None = Query(None, max_length=200), outcome: Text | None = Query(None, max_length=16),
              model: Text | None = Query(None, max_length=200), limit: int = Query(20, ge=1, le=MAX_CALLS),
              offset: int = Query(0, ge=0, le=2**31 - 1)):
    run = _calls_of(request, run_id)
    given = {"phase": phase, "task": task, "actor": actor, "subject": subject, "outcome": outcome, "model": model}
    rows = record_selectors.run_calls(run, turn=turn, **{name: value or None for name, value in given.items()})
    page = list(rows[offset: offset + limit])
    count = offset + len(page) if len(page) < limit and (page or offset == 0) else rows.count()
    return {"count": count, "items": [call_json(call) for call in page]}


@router.get("/{run_id}/calls/{seq}", response={200: CallOut, **errors(401, 403, 404)},
            summary="One model call of the run, by its seq")
def run_call(request, run_id: int, seq: int):
    run = _calls_of(request, run_id)
    call = record_selectors.run_calls(run).filter(seq=seq).first()
    if call is None:
        raise ApiError(404, "not_found", f"run {run_id} has no model call at seq {seq}: GET /api/runs/{run_id}/calls lists them")
    return call_json(call)
