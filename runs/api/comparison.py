"""Runs side by side (`runs.comparison`, as the compare page and `scenario-lab compare`)."""

from __future__ import annotations

from typing import Annotated

from django.http import Http404
from django.urls import reverse
from ninja import Query, Schema
from pydantic import Field

from runs import selectors
from runs.reading import reader_of
from runs.comparison import MAX_RUNS as MAX_COMPARED
from runs.comparison import ComparisonError, RunNotFound, run_comparison
from scenariolab_site.api_base import ApiError, caller, errors

from runs.api.common import BIGINT, router


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
    among = selectors.runs_readable(caller(request))
    try:
        user = caller(request)
        comparison = run_comparison(run_ids=ids, turn=turn, among=among,
                                    viewpoint_of=lambda run: reader_of(run, user).viewpoint)
    except RunNotFound as exc:
        raise Http404(str(exc)) from None
    except ComparisonError as exc:
        raise ApiError(400, "bad_request", str(exc), [{"loc": ["query", exc.field], "message": str(exc)}]) from None
    body = comparison.as_dict()
    for run in body["runs"]:
        run["page"] = request.build_absolute_uri(reverse("runs:detail", args=[run["id"]]))
    return body
