"""The runs router of the JSON API: start, list, read every record, follow events, steer, compare, export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from django.conf import settings
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from ninja import Body, Query, Router, Schema
from ninja.responses import Status
from pydantic import AfterValidator, Field

from runs import seats, selectors, services
from runs.metrics import export_filename, metrics_csv, metrics_export, run_metric_rows
from runs.comparison import MAX_RUNS as MAX_COMPARED
from runs.comparison import ComparisonError, RunNotFound, run_comparison
from runs.models import Communication, CostRecord, Decision, MetricRecord, Run, RunEvent, Turn, ValidationResult
from scenariolab_site.api_base import ApiError, caller, errors

router = Router(tags=["runs"])
# Mounted under /api/scenarios/: the V2 document's `POST /api/scenarios/{id}/execute`, which starts a run.
scenario_router = Router(tags=["runs"])
MAX_LIMIT = 200


# ---- schemas ---------------------------------------------------------------------------------------------
def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL cannot store it; refused where it is, not as a server error
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
BIGINT = 2**63 - 1


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


class RunOut(Schema):
    id: int
    scenario: str
    scenario_name: str
    number: int
    status: str = Field(description="queued, running, paused, halted, cancelled, completed, failed, or crashed")
    turn: int = Field(description="last completed turn")
    max_turns: int
    credit_limit: float | None
    total_cost: float
    total_tokens: int
    calls: int
    provider: str
    offline: bool
    models: list[str]
    seed: int
    halt_reason: str
    error: str
    owner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    page: str
    last_seq: int
    parent: int | None = Field(None, description="the run this one was branched from")
    branch_turn: int | None = Field(None, description="the parent's last turn this run shares")
    intervention: dict[str, Any] | None = Field(None, description="what was changed at the branch point, with `before`")


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


# ---- helpers ---------------------------------------------------------------------------------------------
def _may_read(run: Run, user) -> bool:
    return settings.PUBLIC_READ or selectors.run_visible_to(run, user)


def _run(request: HttpRequest, run_id: int, *, write: bool = False) -> Run:
    """The run if the caller may see it (and change it, with `write`); 404 otherwise, as pages answer."""
    run = Run.objects.select_related("owner", "scenario").filter(pk=run_id).first()
    user = caller(request)
    if run is None or not _may_read(run, user):
        raise Http404(f"no run {run_id}")
    if write and not selectors.run_visible_to(run, user):
        raise ApiError(403, "forbidden", f"run {run_id} is not yours: only its owner or staff may change it")
    return run


def _out(request: HttpRequest, run: Run, last_seq: int | None = None) -> dict[str, Any]:
    if last_seq is None:
        last_seq = RunEvent.objects.filter(run=run).aggregate(n=Max("seq"))["n"] or 0
    return {
        "id": run.pk, "scenario": run.scenario_slug, "scenario_name": run.scenario_name, "number": run.number,
        "status": selectors.run_display_status(run), "turn": run.turn, "max_turns": run.max_turns,
        "credit_limit": run.credit_limit, "total_cost": run.total_cost, "total_tokens": run.total_tokens,
        "calls": run.calls, "provider": run.provider, "offline": run.offline,
        "models": sorted({a["model"] for a in run.actors}), "seed": run.seed, "halt_reason": run.halt_reason,
        "error": run.error, "owner": run.owner.get_username() if run.owner else None, "created_at": run.created_at,
        "started_at": run.started_at, "finished_at": run.finished_at,
        "page": request.build_absolute_uri(reverse("runs:detail", args=[run.pk])), "last_seq": last_seq,
        "parent": run.parent_id, "branch_turn": run.branch_turn, "intervention": run.intervention,
    }


def _turn_filter(queryset, turn: int | None):
    return queryset if turn is None else queryset.filter(turn=turn)


# ---- routes ----------------------------------------------------------------------------------------------
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
    run = services.run_start(scenario=scenario, owner=user, **params)
    return Status(201, _out(request, run, 0))


@router.get("/", response={200: RunPage, **errors(401, 422)}, summary="List runs")
def list_runs(request, scenario: Text | None = Query(None, max_length=100), status: Text | None = Query(None, max_length=16),
              owner: Text | None = Query(None, max_length=150), limit: int = Query(50, ge=1, le=MAX_LIMIT),
              offset: int = Query(0, ge=0, le=2**31 - 1)):
    user = caller(request)
    runs = Run.objects.select_related("owner", "scenario") if settings.PUBLIC_READ else selectors.runs_for(user)
    if scenario:
        runs = runs.filter(scenario_slug=scenario)
    if status:
        runs = selectors.runs_with_status(runs, status)
    if owner:
        runs = runs.filter(owner__username=owner)
    # The frozen scenario (often the largest column) is not part of a run's summary.
    runs = runs.order_by("-created_at", "-id").defer("snapshot")
    page = list(runs[offset: offset + limit])
    seqs = dict(RunEvent.objects.filter(run__in=page).values("run").annotate(n=Max("seq")).values_list("run", "n"))
    return {"count": _total(runs, page, offset=offset, limit=limit),
            "items": [_out(request, run, seqs.get(run.pk, 0)) for run in page]}


def _total(rows, page: list, *, offset: int, limit: int) -> int:
    """How many rows the listing has: a short page says it without counting them again."""
    if len(page) < limit and (page or offset == 0):
        return offset + len(page)
    return rows.count()


# ---- comparison: runs side by side (runs.comparison, as the compare page and `scenario-lab compare`) ----------
class ComparedRunOut(Schema):
    id: int
    scenario: str
    scenario_name: str
    number: int
    status: str
    turn: int = Field(description="last completed turn")
    max_turns: int
    provider: str
    offline: bool
    models: list[str]
    seed: int
    credit_limit: float | None
    total_cost: float
    calls: int
    cost_by_actor: dict[str, float] = Field(description='USD by actor; "world" for the world, judge and QA models')
    cost_by_phase: dict[str, float]
    final_turn: int = Field(description="the turn of the run's last stored world (0: the start)")
    final_world: str
    page: str


class MetricRowOut(Schema):
    metric: str = Field(description='"name", or "name (actor)" for an actor\'s metric')
    turn: int
    values: list[float | str | bool | None] = Field(description="one per run, in the order of `runs`; null: none recorded")


class DecisionTextOut(Schema):
    action: str
    reasoning: str
    short_term_priorities: list[str]
    model: str


class ActorDecisionsOut(Schema):
    actor: str
    name: str
    decisions: list[DecisionTextOut | None] = Field(description="one per run, in the order of `runs`; null: no decision")


class WorldDiffOut(Schema):
    base_run: int
    base_turn: int
    run: int
    turn: int
    diff: str = Field(description="unified diff of the run's last world against the first run's; empty: the same")


class ComparisonOut(Schema):
    runs: list[ComparedRunOut]
    metrics: list[MetricRowOut] = Field(description="each metric at each turn, a value per run: overlay them by metric")
    last_turn: int = Field(description="the furthest turn any run reached: decisions compare at 1 to this")
    decision_turn: int | None = Field(description="the turn of `decisions`; null when the runs share no completed turn")
    decisions: list[ActorDecisionsOut]
    world_diffs: list[WorldDiffOut] = Field(description="every run after the first against the first")
    actor_names: dict[str, str]


@router.get("/compare", response={200: ComparisonOut, **errors(400, 401, 404, 422)},
            summary="Two or more runs side by side: costs, metrics per turn, decisions at a turn, final-world diffs")
def compare_runs(request, ids: list[Annotated[int, Field(ge=1, le=BIGINT)]] = Query(..., max_length=MAX_COMPARED, description="two or more run ids, in the order to show them"),
                 turn: int | None = Query(None, description="whose decisions to compare (default: the last turn every run completed)")):
    among = Run.objects.all() if settings.PUBLIC_READ else selectors.runs_for(caller(request))
    try:
        comparison = run_comparison(run_ids=ids, turn=turn, among=among)
    except RunNotFound as exc:
        raise Http404(str(exc)) from None
    except ComparisonError as exc:
        raise ApiError(400, "bad_request", str(exc), [{"loc": ["query", exc.field], "message": str(exc)}]) from None
    body = comparison.as_dict()
    for run in body["runs"]:
        run["page"] = request.build_absolute_uri(reverse("runs:detail", args=[run["id"]]))
    return body
# ---- end of comparison -------------------------------------------------------------------------------------------


@router.get("/{run_id}", response={200: RunOut, **errors(401, 404)},
            summary="A run: status, progress, totals, provider, halt reason")
def get_run(request, run_id: int):
    return _out(request, _run(request, run_id))


@router.get("/{run_id}/turns", response={200: list[TurnOut], **errors(401, 404)},
            summary="The world after each turn (turn 0: the start)")
def run_turns(request, run_id: int):
    return list(Turn.objects.filter(run=_run(request, run_id)).order_by("turn"))


@router.get("/{run_id}/decisions", response={200: list[DecisionOut], **errors(401, 404, 422)},
            summary="Each actor's decision per turn")
def run_decisions(request, run_id: int, turn: int | None = Query(None, ge=0)):
    return list(_turn_filter(Decision.objects.filter(run=_run(request, run_id)), turn))


@router.get("/{run_id}/communications", response={200: list[CommunicationOut], **errors(401, 404, 422)},
            summary="Messages between actors")
def run_communications(request, run_id: int, turn: int | None = Query(None, ge=0)):
    rows = _turn_filter(Communication.objects.filter(run=_run(request, run_id)), turn)
    return [{"turn": m.turn, "id": m.message_id, "kind": m.kind, "sender": m.sender, "recipients": m.recipients,
             "content": m.content, "in_reply_to": m.in_reply_to or None} for m in rows]


@router.get("/{run_id}/costs", response={200: CostsOut, **errors(401, 404)},
            summary="The ledger (one line per model call) and its breakdowns by actor, phase and turn")
def run_costs(request, run_id: int):
    run = _run(request, run_id)
    breakdown = selectors.run_cost_breakdown(run=run)
    records = [{**{f: getattr(r, f) for f in ("position", "seq", "turn", "phase", "task", "model", "provider",
                                                "input_tokens", "output_tokens", "cost", "cached")},
                "actor": r.actor or None} for r in CostRecord.objects.filter(run=run)]
    return {"total_cost": run.total_cost, "total_tokens": run.total_tokens, "calls": run.calls,
            "credit_limit": run.credit_limit, "by_actor": breakdown["by_actor"], "by_phase": breakdown["by_phase"],
            "by_turn": {str(k): v for k, v in breakdown["by_turn"].items()}, "records": records}


@router.get("/{run_id}/metrics", response={200: list[MetricOut], **errors(401, 404)},
            summary="Metric values per turn")
def run_metrics(request, run_id: int):
    return [{"turn": m.turn, "name": m.name, "actor": m.actor or None, "value": m.value, "source": m.source}
            for m in MetricRecord.objects.filter(run=_run(request, run_id)).order_by("turn", "position")]


# ---- metrics export: CSV and JSON downloads (runs.metrics) ------------------------------------------------------
@router.get("/{run_id}/metrics.csv", response={200: None, **errors(401, 404)},
            summary="Metric values as CSV: turn, metric, actor, value, unit, source, threshold (one line per value)")
def export_run_metrics_csv(request, run_id: int):
    run = _run(request, run_id)
    response = HttpResponse(metrics_csv(run_metric_rows(run=run)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export_filename(run, ".csv")}"'
    return response


@router.get("/{run_id}/metrics.json", response={200: None, **errors(401, 404)},
            summary="Metric values as a JSON download: the run, the metrics' definitions (units, thresholds), every value")
def export_run_metrics_json(request, run_id: int):
    run = _run(request, run_id)
    response = JsonResponse(metrics_export(run=run), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{export_filename(run, ".json")}"'
    return response


@router.get("/{run_id}/validations", response={200: list[ValidationOut], **errors(401, 404)},
            summary="Validation findings per turn")
def run_validations(request, run_id: int):
    return [{"turn": v.turn, "check": v.check_name, "passed": v.passed, "severity": v.severity, "actor": v.actor or None,
             "issues": v.issues, "explanation": v.explanation}
            for v in ValidationResult.objects.filter(run=_run(request, run_id)).order_by("turn", "position")]


@router.get("/{run_id}/events", response={200: EventPage, **errors(401, 404, 422)},
            summary="The run's events after a seq, in order (poll with next_after to follow a run)")
def run_events(request, run_id: int, after: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)):
    run = _run(request, run_id)
    rows = list(RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return {"events": rows, "next_after": rows[-1].seq if rows else after, "has_more": more,
            "status": selectors.run_display_status(run)}


def _steer(request, run_id: int, action) -> dict:
    run = _run(request, run_id, write=True)
    return _out(request, action(run))


@router.post("/{run_id}/pause", response={200: RunOut, **errors(401, 403, 404, 409)},
             summary="Pause at the next phase boundary")
def pause_run(request, run_id: int):
    return _steer(request, run_id, lambda run: services.run_pause(run=run))


@router.post("/{run_id}/resume", response={200: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Resume a paused, halted, failed, crashed or completed run (optionally with a new credit limit)")
def resume_run(request, run_id: int, payload: ResumeIn | None = None):
    payload = payload or ResumeIn()
    return _steer(request, run_id, lambda run: services.run_resume(run=run, credit_limit=payload.credit_limit,
                                                                   max_turns=payload.end_turn, by=caller(request)))


@router.post("/{run_id}/cancel", response={200: RunOut, **errors(401, 403, 404, 409)},
             summary="Cancel a run (a running one stops at its next heartbeat)")
def cancel_run(request, run_id: int):
    return _steer(request, run_id, lambda run: services.run_cancel(run=run))


# ---- branches: a new run from a completed turn, with an intervention (runs.branching) --------------------------
class ActorChangeIn(Schema):
    model: Text | None = Field(None, min_length=1, max_length=200)
    control: Literal["ai", "human"] | None = None
    system_prompt: Text | None = Field(None, max_length=50_000)
    goals: list[Annotated[Text, Field(max_length=2000)]] | None = Field(None, max_length=50)


class InterventionIn(Schema):
    actors: dict[Annotated[Text, Field(max_length=64)], ActorChangeIn] = Field(default_factory=dict, max_length=100, description="changes by actor short name")
    credit_limit: float | None = Field(None, gt=0, description="USD; default: the parent's")
    seed: int | None = Field(None, ge=-BIGINT - 1, le=BIGINT, description="default: the parent's")
    world_state: Text | None = Field(None, max_length=200_000, description="the world as it stood after the branch turn, rewritten")
    end_turn: int | None = Field(None, ge=2, le=1000, description="the last turn to play; default: the parent's")
    note: Text = Field("", max_length=2000, description="why, shown in the family tree")


class BranchIn(Schema):
    at_turn: int = Field(ge=1, le=1000, description="a completed turn of the parent: the branch shares turns up to it")
    intervention: InterventionIn = Field(default_factory=InterventionIn)
    start: bool = Field(False, description="queue the branch for a worker at once (else it waits, paused)")


class FamilyMemberOut(Schema):
    id: int
    parent: int | None
    depth: int = Field(description="0: the root")
    branch_turn: int | None
    number: int
    status: str
    turn: int
    max_turns: int
    owner: str | None
    changes: list[str] = Field(description="the intervention, as people read it")
    note: str
    intervention: dict[str, Any] | None
    current: bool = Field(description="the run asked about")
    page: str


class FamilyOut(Schema):
    root: int
    runs: list[FamilyMemberOut] = Field(description="root first, each run followed by its branches")


@router.post("/{run_id}/branch", response={201: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Branch a run at a completed turn, with an intervention (optionally started at once)")
def branch_run(request, run_id: int, payload: BranchIn):
    from runs.branching import Intervention, run_branch

    parent = _run(request, run_id, write=True)
    intervention = Intervention.from_json(payload.intervention.dict(exclude_none=True))
    child = run_branch(run=parent, at_turn=payload.at_turn, intervention=intervention, owner=caller(request),
                       start=payload.start)
    return Status(201, _out(request, child))


@router.get("/{run_id}/family", response={200: FamilyOut, **errors(401, 404)},
            summary="The run's family tree: its root, every branch, their branch turns and interventions")
def run_family(request, run_id: int):
    run = _run(request, run_id)
    members = selectors.run_family(run=run, user=None if settings.PUBLIC_READ else caller(request))
    return {"root": members[0].run.pk, "runs": [{
        "id": m.run.pk, "parent": m.run.parent_id if m.depth else None, "depth": m.depth, "branch_turn": m.run.branch_turn,
        "number": m.run.number, "status": m.status, "turn": m.run.turn,
        "max_turns": m.run.max_turns, "owner": m.run.owner.get_username() if m.run.owner else None,
        "changes": m.changes, "note": m.note, "intervention": m.run.intervention, "current": m.current,
        "page": request.build_absolute_uri(reverse("runs:detail", args=[m.run.pk])),
    } for m in members]}
# ---- end of branches ------------------------------------------------------------------------------------------


# ---- human seats (runs.seats): pending seats, what a seat sees, a person's decision, taking a seat ------------
class SeatOut(Schema):
    actor: str
    name: str
    control: str = Field(description="ai or human")
    model: str
    waiting: bool = Field(description="the run waits for this seat's decision")


class ProposalOut(Schema):
    id: str
    kind: str
    sender: str
    recipients: list[str]
    content: str


class SeatViewOut(Schema):
    run: int
    actor: str
    actor_name: str
    turn: int
    system: str = Field(description="the seat's system prompt, as a model would read it")
    user: str = Field(description="the decision prompt, as a model would read it")
    proposals: list[ProposalOut] = Field(description="proposals addressed to the seat that await its reply")


class PendingSeatOut(Schema):
    run: int
    scenario: str
    actor: str
    name: str
    turn: int
    waiting_since: datetime | None
    page: str


class SeatDecisionIn(Schema):
    long_term_goals: list[Annotated[Text, Field(max_length=2000)]] = Field(min_length=1, max_length=8)
    short_term_priorities: list[Annotated[Text, Field(max_length=2000)]] = Field(min_length=1, max_length=8)
    reasoning: Text = Field(max_length=20000)
    action: Text = Field(max_length=20000)
    replies: dict[Annotated[Text, Field(max_length=200)], Annotated[Text, Field(max_length=20000)]] = Field(
        default_factory=dict, max_length=50, description="proposal id -> your reply; every pending proposal needs one")


class SeatControlIn(Schema):
    control: Literal["ai", "human"] = Field(description="human: take the seat over; ai: hand it back to the model")


def _seat_page(request: HttpRequest, run_id: int, actor: str) -> str:
    return request.build_absolute_uri(reverse("runs:seat", args=[run_id, actor]))


@router.get("/seats/pending", response={200: list[PendingSeatOut], **errors(401)},
            summary="Seats waiting for a person, in the runs you may change")
def pending_seats(request):
    user = caller(request)
    return [
        {"run": seat.run.pk, "scenario": seat.run.scenario_slug, "actor": seat.actor, "name": seat.name, "turn": seat.turn,
         "waiting_since": seat.waiting_since, "page": _seat_page(request, seat.run.pk, seat.actor)}
        for seat in seats.seats_pending(runs=selectors.runs_for(user))
    ]


@router.get("/{run_id}/seats", response={200: list[SeatOut], **errors(401, 404)},
            summary="Who plays each actor, and which seats the run waits for")
def run_seats(request, run_id: int):
    run = _run(request, run_id)
    waiting = {seat.actor for seat in seats.run_pending_seats(run=run)}
    return [{"actor": a["short_name"], "name": a["name"], "control": a.get("control", "ai"), "model": a["model"],
             "waiting": a["short_name"] in waiting} for a in run.actors]


@router.get("/{run_id}/seats/{actor}", response={200: SeatViewOut, **errors(400, 401, 403, 404, 409)},
            summary="What the person in a waiting seat sees: the model's prompts and the proposals to answer")
def seat_view(request, run_id: int, actor: str):
    run = _run(request, run_id, write=True)  # a seat's prompt holds the actor's private information
    view = seats.seat_view_for(run=run, actor=actor)
    return {"run": run.pk, "actor": view.actor, "actor_name": view.actor_name, "turn": view.turn, "system": view.system,
            "user": view.user, "proposals": [{"id": p.id, "kind": p.kind.value, "sender": p.sender,
                                              "recipients": list(p.recipients), "content": p.content} for p in view.proposals]}


@router.post("/{run_id}/seats/{actor}/decision", response={200: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Decide for a waiting human seat; the run goes on once no seat is pending")
def decide_seat(request, run_id: int, actor: str, payload: SeatDecisionIn):
    return _steer(request, run_id, lambda run: seats.seat_decide(run=run, actor=actor, **payload.dict()))


@router.post("/{run_id}/seats/{actor}/control", response={200: RunOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Take a seat over (human) or hand it back to the model (ai)")
def control_seat(request, run_id: int, actor: str, payload: SeatControlIn):
    who = caller(request).get_username()
    reason = f"{'taken over' if payload.control == 'human' else 'handed back'} by {who}"
    return _steer(request, run_id, lambda run: seats.seat_set_control(run=run, actor=actor, control=payload.control, reason=reason))


# ---- end of human seats ----------------------------------------------------------------------------------------


@router.get("/{run_id}/export", response={200: None, **errors(401, 404)},
            summary="The run's Markdown files and state JSON as a zip")
def export_run(request, run_id: int):
    run = _run(request, run_id)
    response = HttpResponse(services.run_markdown_zip(run=run), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{run.scenario_slug}-run-{run.number:03d}.zip"'
    return response

