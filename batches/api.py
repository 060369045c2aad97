"""The batches router of the JSON API: plan (dry run), start, list, progress, statistics, pause, resume, cancel."""

from __future__ import annotations

import json

from datetime import datetime
from typing import Annotated, Any, Literal

from django.conf import settings
from django.http import Http404, HttpRequest
from django.urls import reverse
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import AfterValidator, Field

from batches import exports, planning, selectors, services
from batches.models import Batch
from engine.batch import BatchConfig, BatchConfigError
from scenariolab_site.api_base import ApiError, caller, errors

router = Router(tags=["batches"])
BIGINT = 2**63 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL cannot store it; refused where it is, not as a server error
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


# ---- schemas ---------------------------------------------------------------------------------------------
class VariationIn(Schema):
    type: Literal["actor_model", "scenario_parameter"]
    actor: Text | None = Field(None, min_length=1, max_length=64, description="actor_model: the actor's short name")
    parameter: Text | None = Field(None, min_length=1, max_length=200, description="scenario_parameter: a scenario.yaml key (dotted for nested)")
    values: list[Annotated[Text, Field(max_length=200)] | Annotated[int, Field(ge=-BIGINT // 2, le=BIGINT // 2)] | float | bool] = Field(
        min_length=1, max_length=100)


class BatchIn(Schema):
    """V1's batch-config.yaml keys, plus seeds, provider and turns. Any other key is refused (400) by the batch
    config's check, with the closest known key."""

    experiment_name: Text = Field(min_length=1, max_length=200)
    description: Text = Field("", max_length=10_000)
    base_scenario: Text = Field(min_length=1, max_length=100, description="a stored scenario's slug")
    variations: list[VariationIn] = Field(default_factory=list, max_length=20,
                                          description="each a dimension of the Cartesian product")
    runs_per_variation: int = Field(1, ge=1, le=1000)
    max_parallel: int = Field(1, ge=1, le=64, description="runs played at once")
    budget_limit: float | None = Field(None, gt=0, le=1e9, description="USD for the whole batch: a run starts only if its limit fits what is left")
    cost_per_run_limit: float | None = Field(None, gt=0, le=1e9, description="USD: each run's credit limit")
    output_dir: Text = Field("", max_length=500, description="kept with the batch (V1's batch runner writes there)")
    seeds: list[Annotated[int, Field(ge=-BIGINT // 2, le=BIGINT // 2)]] | None = Field(
        None, max_length=1000, description="run N of every variation plays seeds[N-1]; default: the scenario's seed + N - 1")
    provider: Text = Field("", max_length=32, description="offline, openrouter, openai, ollama or local; empty: by model")
    turns: int | None = Field(None, ge=1, le=1000, description="turns each run plays; default: the scenario's")


class CostSpan(Schema):
    low: float
    high: float


class PlannedVariationOut(Schema):
    variation_id: int
    description: str
    modifications: dict[str, Any]
    turns: int
    credit_limit: float | None
    cost_per_run: CostSpan


class PlannedRunOut(Schema):
    name: str
    variation_id: int
    run_number: int
    seed: int


class PlanOut(Schema):
    experiment_name: str
    scenario: str
    provider: str
    offline: bool
    total_runs: int
    affordable_runs: int = Field(description="runs the budget lets start if every run spent its whole limit")
    max_parallel: int
    budget_limit: float | None
    cost: CostSpan
    estimated_seconds: float
    variations: list[PlannedVariationOut]
    runs: list[PlannedRunOut]


class BatchRunOut(Schema):
    name: str = Field(description="var-XXX-run-YYY")
    variation: int
    number: int
    seed: int
    run: int | None = Field(description="the run's id once it has started")
    status: str = Field(description="pending until it starts, then the run's status")
    total_cost: float
    turn: int


class BatchOut(Schema):
    id: int
    experiment_name: str
    description: str
    scenario: str
    status: str = Field(description="running, paused, halted (budget), completed or cancelled")
    halt_reason: str
    max_parallel: int
    budget_limit: float | None
    total_runs: int
    counts: dict[str, int] = Field(description="runs by status (pending: not started yet)")
    ended: int
    active: int
    percent: int
    spent: float
    committed: float = Field(description="ended runs' costs plus the other started runs' limits")
    remaining: float | None
    variations: list[dict[str, Any]]
    owner: str | None
    created_at: datetime
    finished_at: datetime | None
    page: str
    runs: list[BatchRunOut] = Field(default_factory=list, description="in start order (only on a single batch)")


class BatchPage(Schema):
    count: int
    items: list[BatchOut]


class MetricSummaryOut(Schema):
    count: int
    mean: float
    stdev: float | None
    ci95_low: float | None
    ci95_high: float | None
    min: float
    max: float
    median: float


class VariationStatisticsOut(Schema):
    variation_id: int
    description: str
    runs: int
    ended: int
    successful: int
    success_rate: float | None
    total_cost: float
    cost_per_run: float | None
    metrics: dict[str, MetricSummaryOut] = Field(description="each metric's final value over the completed runs")


class StatisticsOut(Schema):
    variations: list[VariationStatisticsOut]


class ResumeIn(Schema):
    budget_limit: float | None = Field(None, gt=0, le=1e9)
    max_parallel: int | None = Field(None, ge=1, le=64)


# ---- helpers ---------------------------------------------------------------------------------------------
def _batch(request: HttpRequest, batch_id: int, *, write: bool = False) -> Batch:
    """The batch if the caller may see it (and change it, with `write`); 404 otherwise, as runs."""
    batch = selectors.batch_get(batch_id=batch_id)
    user = caller(request)
    if batch is None or not (settings.PUBLIC_READ or selectors.batch_visible_to(batch, user)):
        raise Http404(f"no batch {batch_id}")
    if write and not selectors.batch_visible_to(batch, user):
        raise ApiError(403, "forbidden", f"batch {batch_id} is not yours: only its owner or staff may change it")
    return batch


def _out(request: HttpRequest, batch: Batch, *, runs: bool = False) -> dict[str, Any]:
    progress = selectors.batch_progress(batch=batch)
    out = {
        "id": batch.pk, "experiment_name": batch.experiment_name, "description": batch.description,
        "scenario": batch.scenario_slug, "status": batch.status, "halt_reason": batch.halt_reason,
        "max_parallel": batch.max_parallel, "budget_limit": batch.budget_limit, "total_runs": progress.total,
        "counts": progress.counts, "ended": progress.ended, "active": progress.active, "percent": progress.percent,
        "spent": progress.spent, "committed": progress.committed, "remaining": progress.remaining,
        "variations": batch.variations, "owner": batch.owner.get_username() if batch.owner else None,
        "created_at": batch.created_at, "finished_at": batch.finished_at,
        "page": request.build_absolute_uri(reverse("batches:detail", args=[batch.pk])),
    }
    if runs:
        out["runs"] = [
            {"name": r.row.name, "variation": r.row.variation, "number": r.row.number, "seed": r.row.seed,
             "run": r.row.run_id, "status": r.status, "total_cost": r.run.total_cost if r.run else 0.0,
             "turn": r.run.turn if r.run else 0}
            for r in progress.rows
        ]
    return out


def _plan(request: HttpRequest, payload: BatchIn) -> planning.BatchPlan:
    # The body as sent, once the schema has checked it: the schema drops keys it does not know, and a misspelt
    # key must be refused (naming the closest known one), not ignored.
    if b"\\u0000" in request.body:  # the schema checks the keys it knows; PostgreSQL stores no NUL anywhere
        raise services.BatchInputError("the batch config holds a NUL character (\\u0000): remove it")
    body = json.loads(request.body)
    try:
        config = BatchConfig.parse({key: value for key, value in body.items() if value is not None})
    except BatchConfigError as exc:
        raise services.BatchInputError(str(exc)) from None
    return planning.batch_plan(config=config, base=planning.batch_base_scenario(name=config.base_scenario))


def _signed_in(request: HttpRequest):
    user = caller(request)
    if not user.is_authenticated:
        raise ApiError(403, "forbidden", "batches need a token or a signed-in session")
    return user


# ---- routes ----------------------------------------------------------------------------------------------
@router.post("/plan", response={200: PlanOut, **errors(400, 401, 403, 409, 422)},
             summary="A dry run: the variations, runs, cost estimate and time a batch would take; nothing starts")
def plan_batch(request, payload: BatchIn):
    # As it would start: within the caller's quota (refused past it, a budget and run limits filled in).
    return planning.batch_within_quota(plan=_plan(request, payload), owner=_signed_in(request)).summary()


@router.post("/", response={201: BatchOut, **errors(400, 401, 403, 409, 422)},
             summary="Start a batch: its runs go to workers, at most max_parallel at once, within the budget")
def start_batch(request, payload: BatchIn):
    user = _signed_in(request)
    batch = services.batch_start(plan=_plan(request, payload), owner=user)
    return Status(201, _out(request, batch, runs=True))


@router.get("/", response={200: BatchPage, **errors(401, 422)}, summary="List batches")
def list_batches(request, limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0, le=2**31 - 1)):
    batches = selectors.batches_readable(caller(request))
    page = list(selectors.with_progress(batches)[offset: offset + limit])
    return {"count": batches.count(), "items": [_out(request, batch) for batch in page]}


@router.get("/{batch_id}", response={200: BatchOut, **errors(401, 404)},
            summary="A batch: status, progress by run, spending against the budget")
def get_batch(request, batch_id: int):
    return _out(request, _batch(request, batch_id), runs=True)


@router.get("/{batch_id}/statistics", response={200: StatisticsOut, **errors(401, 404)},
            summary="Per variation: success rate, cost per run, and each metric's mean, sd, 95% CI, min, max")
def batch_statistics(request, batch_id: int):
    return {"variations": [s.to_dict() for s in selectors.batch_statistics(batch=_batch(request, batch_id))]}


@router.get("/{batch_id}/results.csv", response={200: None, **errors(401, 404)},
            summary="One row per run: its variation's values, seed, status, cost and each metric at its last turn (CSV)")
def batch_results_csv(request, batch_id: int):
    return exports.results_response(_batch(request, batch_id), "csv")


@router.get("/{batch_id}/results.json", response={200: None, **errors(401, 404)},
            summary="The same rows as JSON: {columns, rows}")
def batch_results_json(request, batch_id: int):
    return exports.results_response(_batch(request, batch_id), "json")


@router.post("/{batch_id}/pause", response={200: BatchOut, **errors(401, 403, 404, 409)},
             summary="No run starts; running runs pause at their next phase boundary")
def pause_batch(request, batch_id: int):
    return _out(request, services.batch_pause(batch=_batch(request, batch_id, write=True)), runs=True)


@router.post("/{batch_id}/resume", response={200: BatchOut, **errors(400, 401, 403, 404, 409, 422)},
             summary="Go on with a paused or halted batch, optionally with a larger budget or more runs at once")
def resume_batch(request, batch_id: int, payload: ResumeIn | None = None):
    batch = _batch(request, batch_id, write=True)
    changes = payload.dict(exclude_none=True) if payload else {}
    return _out(request, services.batch_resume(batch=batch, by=caller(request), **changes), runs=True)


@router.post("/{batch_id}/cancel", response={200: BatchOut, **errors(401, 403, 404, 409)},
             summary="Stop the batch: no run starts again, runs under way are cancelled")
def cancel_batch(request, batch_id: int):
    return _out(request, services.batch_cancel(batch=_batch(request, batch_id, write=True)), runs=True)
