"""Start, list and read runs and every record, follow their events, steer them, export them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from django.http import Http404, HttpResponse, JsonResponse
from ninja import Body, Query, Schema
from ninja.responses import NinjaJSONEncoder, Status
from pydantic import Field

from runs.downloads import markdown_zip_response
from runs.execution.mapping import decision_of
from runs.reading import reader_of, readable_event
from runs.search import run_search
from runs.api.roles import RoleIn, role_grant
from runs import listing, selectors, services
from runs import record_selectors
from runs.metrics import export_filename, metrics_csv, metrics_export, run_metric_rows
from runs.models import Communication, CostRecord, Decision, MetricRecord, Turn, ValidationResult
from scenariolab_site.api_base import ApiError, caller, errors

from runs.api.common import (BIGINT, MAX_LIMIT, RunOut, Text, run_json, run_for, steer, router,
                             scenario_router)


class RunStartIn(Schema):
    scenario: Text = Field(description="the scenario's slug", max_length=100)
    turns: int | None = Field(None, ge=1, le=1000)
    credit_limit: float | None = Field(None, gt=0, description="USD; default: the scenario's")
    model: Text = Field("", max_length=200, description="play every seat, the world and the judge with this model")
    provider: Text = Field("", max_length=32, description="send every call to this server: offline, openrouter, openai, ollama, local")
    seed: int | None = Field(None, ge=-BIGINT - 1, le=BIGINT)
    use_cache: bool = True
    human_seats: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=50, description="short names of the actors a person plays")
    human_timeout_minutes: float | None = Field(None, gt=0, le=60 * 24 * 30, description="hand a waiting seat to the model after this long; empty: wait")
    roles: list[RoleIn] = Field(default_factory=list, max_length=100,
                                description="parts besides the owner's (after the scenario's own): a player's seats are people's from the start")


class ExecuteIn(Schema):
    """A run's options, as for POST /api/runs/ without the scenario (it is in the path). `max_turns` is the V2
    document's name for `turns`."""

    turns: int | None = Field(None, ge=1, le=1000)
    max_turns: int | None = Field(None, ge=1, le=1000, description="the V2 document's name for turns")
    credit_limit: float | None = Field(None, gt=0, description="USD; default: the scenario's")
    model: Text = Field("", max_length=200)
    provider: Text = Field("", max_length=32)
    seed: int | None = Field(None, ge=-BIGINT - 1, le=BIGINT)
    use_cache: bool = True
    human_seats: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=50)
    human_timeout_minutes: float | None = Field(None, gt=0, le=60 * 24 * 30)
    roles: list[RoleIn] = Field(default_factory=list, max_length=100)


class RunPage(Schema):
    count: int
    items: list[RunOut]


class TurnOut(Schema):
    turn: int
    world_state: str
    exogenous_events: list[dict[str, Any]]


class DecisionOut(Schema):
    turn: int
    actor: str
    long_term_goals: list[str]
    short_term_priorities: list[str]
    reasoning: str
    action: str
    model: str
    provider: str


class CommunicationOut(Schema):
    turn: int
    id: str
    kind: str
    sender: str
    recipients: list[str]
    content: str
    in_reply_to: str | None


class CostRecordOut(Schema):
    position: int
    seq: int | None
    turn: int
    phase: str
    actor: str | None
    task: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost: float
    cached: bool


class CostLine(Schema):
    cost: float
    tokens: int
    calls: int


class CostsOut(Schema):
    total_cost: float
    total_tokens: int
    calls: int
    credit_limit: float | None
    by_actor: dict[str, CostLine]
    by_phase: dict[str, CostLine]
    by_turn: dict[str, CostLine]
    records: list[CostRecordOut]


class MetricOut(Schema):
    turn: int
    name: str
    actor: str | None
    value: float | str | bool | None
    source: str


class ValidationOut(Schema):
    turn: int
    check: str
    passed: bool
    severity: str
    actor: str | None
    issues: list[str]
    explanation: str


class EventOut(Schema):
    seq: int
    type: str
    data: dict[str, Any]
    source: str
    timestamp: datetime


class EventPage(Schema):
    events: list[EventOut]
    next_after: int = Field(description="pass as `after` to get the next page")
    has_more: bool
    status: str


class ResumeIn(Schema):
    credit_limit: float | None = Field(None, gt=0)
    end_turn: int | None = Field(None, ge=1, le=1000)



@router.post("/", response={201: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Start a run of a scenario on a worker")
def start_run(request, payload: RunStartIn):
    return _start(request, payload.scenario, payload.dict(exclude={"scenario"}))


@scenario_router.post("/{slug}/execute", response={201: RunOut, **errors(400, 401, 403, 404, 409, 422)},
                      operation_id="scenarios_execute", summary="Start a run of this scenario (the V2 document's execute)")
def execute_scenario(request, slug: str, payload: ExecuteIn = Body(None)):
    """The run it starts is followed as any other: GET /api/runs/{id}, POST /api/runs/{id}/pause,
    ws /api/runs/{id}/stream."""
    params = (payload or ExecuteIn()).dict()
    max_turns = params.pop("max_turns")
    if max_turns is not None and params["turns"] not in (None, max_turns):
        raise ApiError(422, "invalid_request", "give turns or max_turns, not two different numbers")
    params["turns"] = params["turns"] or max_turns
    return _start(request, slug, params)


def _start(request, slug: str, params: dict):
    from scenarios.selectors import scenario_get

    user = caller(request)
    if not user.is_authenticated:
        raise ApiError(403, "forbidden", "starting a run needs a token or a signed-in session")
    scenario = scenario_get(slug=slug)
    if scenario is None:
        raise Http404(f"no scenario {slug!r}")
    params["roles"] = [role_grant(role) for role in params.get("roles") or ()]
    run = services.run_start(scenario=scenario, owner=user, **params)
    return Status(201, run_json(request, run, 0))


@router.get("/", response={200: RunPage, **errors(401, 422)},
            summary="List runs (filter by scenario, status, owner, batch, family, a seat's model, tag; sort)")
def list_runs(request, scenario: Text | None = Query(None, max_length=100), status: Text | None = Query(None, max_length=16),
              owner: Text | None = Query(None, max_length=150),
              batch: int | None = Query(None, ge=1, le=BIGINT, description="a batch's id: its runs"),
              family: int | None = Query(None, ge=1, le=BIGINT, description="a run's id: its family tree"),
              model: Text | None = Query(None, max_length=200, description="a seat's model, e.g. openai/gpt-4o"),
              tag: Text | None = Query(None, max_length=64),
              sort: Literal["newest", "oldest", "cost", "scenario", "status"] = Query("newest"),
              limit: int = Query(50, ge=1, le=MAX_LIMIT), offset: int = Query(0, ge=0, le=2**31 - 1)):
    runs = listing.runs_listed(user=caller(request), filters=listing.RunFilters(
        scenario=scenario or "", status=status or "", owner=owner or "", batch=batch, family=family, model=model or "",
        tag=tag or "", sort=sort))
    page = list(runs[offset: offset + limit])
    seqs = record_selectors.last_seqs(page)
    return {"count": _total(runs, page, offset=offset, limit=limit),
            "items": [run_json(request, run, seqs[run.pk]) for run in page]}


def _total(rows, page: list, *, offset: int, limit: int) -> int:
    """How many rows the listing has: a short page says it without counting them again."""
    if len(page) < limit and (page or offset == 0):
        return offset + len(page)
    return rows.count()





class RunNotesIn(Schema):
    tags: list[Annotated[Text, Field(max_length=64)]] | None = Field(None, max_length=20, description="every tag (replaces them)")
    notes: Text | None = Field(None, max_length=20_000)


@router.patch("/{run_id}", response={200: RunOut, **errors(400, 401, 403, 404, 422)},
              summary="Set a run's tags and notes (whoever steers it)")
def annotate_run(request, run_id: int, payload: RunNotesIn):
    return steer(request, run_id, lambda run: services.run_annotate(run=run, tags=payload.tags, notes=payload.notes))


@router.get("/{run_id}", response={200: RunOut, **errors(401, 404)},
            summary="A run: status, progress, totals, provider, halt reason")
def get_run(request, run_id: int):
    return run_json(request, run_for(request, run_id))


@router.get("/{run_id}/turns", response={200: list[TurnOut], **errors(401, 404)},
            summary="The world after each turn (turn 0: the start)")
def run_turns(request, run_id: int):
    return list(record_selectors.run_records(Turn, run_for(request, run_id), order=("turn",)))


@router.get("/{run_id}/decisions", response={200: list[DecisionOut], **errors(401, 404, 422)},
            summary="Each actor's decision per turn")
def run_decisions(request, run_id: int, turn: int | None = Query(None, ge=0)):
    run = run_for(request, run_id)
    viewpoint = reader_of(run, caller(request)).viewpoint
    return [viewpoint.decision(decision_of(row)) for row in record_selectors.run_records(Decision, run, turn=turn)]


@router.get("/{run_id}/communications", response={200: list[CommunicationOut], **errors(401, 404, 422)},
            summary="Messages between actors")
def run_communications(request, run_id: int, turn: int | None = Query(None, ge=0)):
    run = run_for(request, run_id)
    viewpoint = reader_of(run, caller(request)).viewpoint
    rows = record_selectors.run_records(Communication, run, turn=turn)
    return [{"turn": m.turn, "id": m.message_id, "kind": m.kind, "sender": m.sender, "recipients": m.recipients,
             "content": m.content, "in_reply_to": m.in_reply_to or None}
            for m in rows if viewpoint.sees_message(m.kind, m.sender, m.recipients)]


@router.get("/{run_id}/costs", response={200: CostsOut, **errors(401, 404)},
            summary="The ledger (one line per model call) and its breakdowns by actor, phase and turn")
def run_costs(request, run_id: int):
    run = run_for(request, run_id)
    breakdown = selectors.run_cost_breakdown(run=run)
    records = [{**{f: getattr(r, f) for f in ("position", "seq", "turn", "phase", "task", "model", "provider",
                                                "input_tokens", "output_tokens", "cost", "cached")},
                "actor": r.actor or None} for r in record_selectors.run_records(CostRecord, run)]
    return {"total_cost": run.total_cost, "total_tokens": run.total_tokens, "calls": run.calls,
            "credit_limit": run.credit_limit, "by_actor": breakdown["by_actor"], "by_phase": breakdown["by_phase"],
            "by_turn": {str(k): v for k, v in breakdown["by_turn"].items()}, "records": records}


@router.get("/{run_id}/metrics", response={200: list[MetricOut], **errors(401, 404)},
            summary="Metric values per turn")
def run_metrics(request, run_id: int):
    return [{"turn": m.turn, "name": m.name, "actor": m.actor or None, "value": m.value, "source": m.source}
            for m in record_selectors.run_records(MetricRecord, run_for(request, run_id), order=("turn", "position"))]


# ---- metrics export: CSV and JSON downloads (runs.metrics) ------------------------------------------------------
@router.get("/{run_id}/metrics.csv", response={200: None, **errors(401, 404)},
            summary="Metric values as CSV: turn, metric, actor, value, unit, source, threshold (one line per value)")
def export_run_metrics_csv(request, run_id: int):
    run = run_for(request, run_id)
    response = HttpResponse(metrics_csv(run_metric_rows(run=run)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export_filename(run, ".csv")}"'
    return response


@router.get("/{run_id}/metrics.json", response={200: None, **errors(401, 404)},
            summary="Metric values as a JSON download: the run, the metrics' definitions (units, thresholds), every value")
def export_run_metrics_json(request, run_id: int):
    run = run_for(request, run_id)
    response = JsonResponse(metrics_export(run=run), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{export_filename(run, ".json")}"'
    return response


@router.get("/{run_id}/validations", response={200: list[ValidationOut], **errors(401, 404)},
            summary="Validation findings per turn")
def run_validations(request, run_id: int):
    run = run_for(request, run_id)
    viewpoint = reader_of(run, caller(request)).viewpoint
    return [{"turn": v.turn, "check": v.check_name, "passed": v.passed, "severity": v.severity, "actor": v.actor or None,
             "issues": v.issues, "explanation": v.explanation}
            for v in record_selectors.run_records(ValidationResult, run, order=("turn", "position"))
            if viewpoint.sees_finding(v.actor or None)]


@router.get("/{run_id}/events", response={200: EventPage, **errors(401, 404, 422)},
            summary="The run's events after a seq, in order (poll with next_after to follow a run)")
def run_events(request, run_id: int, after: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)):
    run = run_for(request, run_id)
    viewpoint = reader_of(run, caller(request)).viewpoint
    rows, more = record_selectors.events_after(run, after, limit)
    page = {"events": [readable_event(viewpoint, row) for row in rows], "next_after": rows[-1]["seq"] if rows else after,
            "has_more": more, "status": selectors.run_display_status(run)}
    # Written with the API's own encoder rather than checked against EventPage (which documents it): this is what
    # a script following a run polls, and checking a hundred events' data was a third of each request.
    return JsonResponse(page, encoder=NinjaJSONEncoder)




@router.post("/{run_id}/pause", response={200: RunOut, **errors(401, 403, 404, 409)},
             summary="Pause at the next phase boundary")
def pause_run(request, run_id: int):
    return steer(request, run_id, lambda run: services.run_pause(run=run))


@router.post("/{run_id}/resume", response={200: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Resume a paused, halted, failed, crashed or completed run (optionally with a new credit limit)")
def resume_run(request, run_id: int, payload: ResumeIn | None = None):
    payload = payload or ResumeIn()
    return steer(request, run_id, lambda run: services.run_resume(run=run, credit_limit=payload.credit_limit,
                                                                   max_turns=payload.end_turn, by=caller(request)))


@router.post("/{run_id}/cancel", response={200: RunOut, **errors(401, 403, 404, 409)},
             summary="Cancel a run (a running one stops at its next heartbeat)")
def cancel_run(request, run_id: int):
    return steer(request, run_id, lambda run: services.run_cancel(run=run))



@router.get("/{run_id}/export", response={200: None, **errors(401, 404)},
            summary="The run's Markdown files and state JSON as a zip")
def export_run(request, run_id: int):
    run = run_for(request, run_id)
    return markdown_zip_response(run, reader_of(run, caller(request)).viewpoint)


class SearchHitOut(Schema):
    kind: str = Field(description="message, decision or world")
    turn: int
    actor: str | None
    anchor: str = Field(description="the element id on the run page")
    before: str
    match: str
    after: str


@router.get("/{run_id}/search", response={200: list[SearchHitOut], **errors(401, 404, 422)},
            summary="Messages, decisions and worlds of the run holding q (case-insensitive), as the caller may know them")
def search_run(request, run_id: int, q: Text = Query("", max_length=200, description="the words; empty finds nothing")):
    run = run_for(request, run_id)
    hits = run_search(run=run, viewpoint=reader_of(run, caller(request)).viewpoint, query=q)
    return [{**hit.__dict__, "actor": hit.actor or None} for hit in hits]
