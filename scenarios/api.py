"""The scenarios router of the JSON API: list, read, create and update from JSON, zip import/export, validate, estimate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.text import slugify
from ninja import Body, File, Form, Query, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status
from ninja.pagination import LimitOffsetPagination, paginate
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from engine.llm.routing import PROVIDER_CHOICES
from engine.scenario.errors import closest, friendly, merge_alternatives
from engine.scenario.export import actor_file_stems
from engine.scenario.schema import SHORT_NAME, ActorConfig, BackgroundDocument, ExogenousEventsConfig
from engine.scenario.metrics import MetricsConfig
from engine.scenario.folder import Scenario as EngineScenario
from engine.scenario.schema import ScenarioConfig, ValidationRules
from runs.services import run_plan_for
from scenariolab_site.api_base import ApiError, caller, errors
from scenarios.models import Scenario
from scenarios.selectors import scenario_get, scenario_list, scenario_slug_exists
from scenarios.services import (
    ScenarioImportError,
    ScenarioSlugTaken,
    StoredScenarioError,
    scenario_export_zip,
    scenario_from_engine,
    scenario_import_zip,
    scenario_to_engine,
)

router = Router(tags=["scenarios"])

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PAGE = 200
ENGINE_KEYS = ("config", "actors", "metrics", "validation", "exogenous_events", "background")


# ---- schemas --------------------------------------------------------------------------------------------------
class ScenarioSummary(Schema):
    slug: str
    name: str
    description: str
    turns: int
    actor_count: int


class ActorOut(Schema):
    name: str
    short_name: str
    model: str = Field(description="The model that plays this seat (actor's llm_model).")
    control: str = Field(description="'ai' or 'human'.")
    goals: list[str]
    constraints: list[str]


class Problem(Schema):
    file: str = Field(description="The file of the scenario folder the problem is in, as exported (e.g. actors/mayor.yaml).")
    key: str = Field(description="The key inside that file, e.g. features.communications.max_per_turn.")
    line: int | None = Field(None, description="1-based line, when known (stored scenarios have none).")
    message: str


class ScenarioDetail(Schema):
    slug: str
    name: str
    description: str
    turns: int
    credit_limit: float | None
    created_at: datetime
    updated_at: datetime
    actors: list[ActorOut]
    engine: dict[str, Any] | None = Field(
        description="The scenario as the engine reads it (the folder's content: config, actors, metrics, validation, "
                    "exogenous_events, background); null when the stored scenario does not validate (see problems)."
    )
    problems: list[Problem] = Field(description="Why the stored scenario does not validate; empty when it does.")


class ValidationOut(Schema):
    valid: bool
    problems: list[Problem]


class Range(Schema):
    low: float
    high: float


class EstimateLineOut(Schema):
    actor: str
    phase: str
    model: str
    calls: Range
    input_tokens: Range
    output_tokens: Range
    cost: Range


class ListPricesOut(Schema):
    cost: Range
    by_actor: dict[str, Range]
    description: str


class EstimateOut(Schema):
    scenario: str
    provider: str = Field(description="Where answers would come from, as the run page says it.")
    offline: bool = Field(description="True when the built-in offline provider would play the run (free).")
    turns: int = Field(description="The most turns the run plays.")
    min_turns: int = Field(description="The fewest: 1 when the scenario has an end condition (it may hold after any "
                                       "turn), else `turns`.")
    cost: Range = Field(description="USD, a quiet run (low) to the worst case the credit limit must allow (high).")
    tokens: Range
    calls: int = Field(description="The most model calls the run can make.")
    by_actor: dict[str, Range] = Field(description="Cost in USD by actor; '(world)' is the world, judge and QA models.")
    by_phase: dict[str, Range] = Field(description="Cost in USD by phase.")
    lines: list[EstimateLineOut]
    credit_limit: float | None = Field(description="USD: the one asked for, else the scenario's default; null for none.")
    description: str = Field(description="The estimate in one sentence, as the terminal prints it.")
    list_prices: ListPricesOut | None = Field(
        description="For an offline run (free): what it would cost if its models were called, at list prices "
                    "(the price data, no key needed); null when the run calls models")


class ScenarioIn(BaseModel):
    """The request body of create and update: the engine's Scenario (as `engine` in a scenario's detail) and a slug.

    Only documents the body: the route validates it itself, so field errors point into the body
    (["actors", 0, "short_name"]) in the scenario loader's words."""

    model_config = ConfigDict(extra="forbid")
    slug: str | None = Field(None, description="Create: defaults to the name, slugified. Update: the path's, or omitted.")
    config: ScenarioConfig
    actors: list[ActorConfig]
    metrics: MetricsConfig | None = None
    validation: ValidationRules | None = None
    exogenous_events: ExogenousEventsConfig | None = None
    background: list[BackgroundDocument] = []


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    # The body's JSON schema is given inline: components hold only the schemas ninja itself sees.
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
        return {key: _inline(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    return schema


def _body_schema() -> dict[str, Any]:
    schema = ScenarioIn.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": _inline(schema, schema.get("$defs", {}))}}}}


_ZIP_RESPONSE = {"responses": {200: {"description": "The scenario folder as a zip (one top-level folder named after the slug).",
                                     "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}}}


# ---- conversions ----------------------------------------------------------------------------------------------
def _problems(errors) -> list[dict[str, Any]]:
    return [{"file": e.file, "key": e.key_path, "line": e.line,
             "message": e.message + (f" ({e.suggestion})" if e.suggestion else "")} for e in errors]


def _detail(scenario: Scenario) -> dict[str, Any]:
    try:
        engine = scenario_to_engine(scenario=scenario).model_dump(mode="json", exclude={"source", "warnings"})
        problems: list[dict[str, Any]] = []
    except StoredScenarioError as exc:
        engine, problems = None, _problems(exc.errors)
    actors = [{"name": a.name, "short_name": a.short_name, "model": a.llm_model, "control": a.control,
               "goals": a.goals if isinstance(a.goals, list) else [a.goals],
               "constraints": a.constraints if isinstance(a.constraints, list) else [a.constraints]}
              for a in scenario.actors.all()]
    return {"slug": scenario.slug, "name": scenario.name, "description": scenario.description,
            "turns": scenario.turns, "credit_limit": scenario.credit_limit, "created_at": scenario.created_at,
            "updated_at": scenario.updated_at, "actors": actors, "engine": engine, "problems": problems}


def _is_slug(slug: Any) -> bool:
    try:
        validate_slug(slug)
    except DjangoValidationError:
        return False
    return isinstance(slug, str) and len(slug) <= 100


def _found(slug: str) -> Scenario:
    # Something that cannot be a slug (a NUL byte: PostgreSQL refuses the query) is not looked up.
    scenario = scenario_get(slug=slug) if _is_slug(slug) else None
    if scenario is None:
        raise ApiError(404, "not_found", f"no scenario with slug {slug!r}")
    return scenario


def _require(request: HttpRequest, permission: str) -> None:
    # Scenarios are shared: who may write is a model permission, not ownership.
    if not caller(request).has_perm(f"scenarios.{permission}"):
        raise ApiError(403, "forbidden", f"this needs the scenarios.{permission} permission (staff usually have it)")


def _invalid(message: str, fields: list[dict[str, Any]]) -> ApiError:
    return ApiError(422, "invalid_scenario", message, fields)


def _pydantic_fields(exc: PydanticValidationError) -> list[dict[str, Any]]:
    """pydantic's errors as located fields, worded as the folder loader words them; one per location."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if loc[:2] == ("metrics", "metrics") and loc[2:3] in (("list",), ("legacy",)):
            loc = loc[:2] + loc[3:]  # the metrics union's tag, never a key in the body
        missing = error["type"] == "missing"
        groups.setdefault(loc, []).append(friendly(error, missing_list_item=missing and bool(loc) and type(loc[-1]) is int))
    fields = []
    for loc, explained in groups.items():
        typed = [item for item in explained if item.expected]
        merged = ([merge_alternatives(typed)] if typed else []) + [item for item in explained if not item.expected]
        for item in dict.fromkeys(merged):
            message = item.message + (f" ({item.suggestion})" if item.suggestion else "")
            fields.append({"loc": list(loc), "message": message})
    return fields


def _engine_scenario(data: dict[str, Any]) -> EngineScenario:
    """The body as the engine's Scenario, or a 422 listing every problem with its location in the body.

    Checks across actors too (the folder loader's checks between files), since storing would fail on them."""
    unknown = [key for key in data if key not in ENGINE_KEYS]
    fields = [{"loc": loc, "message": "text cannot hold a NUL character (\\u0000)"} for loc in _nul_locs(data, [])]
    for key in unknown:
        near = closest(str(key), ENGINE_KEYS)
        fields.append({"loc": [key], "message": "unknown key" + (f" (did you mean '{near}'?)" if near else
                                                                  f"; expected {', '.join(ENGINE_KEYS)} and slug")})
    try:
        scenario = EngineScenario.model_validate({key: data[key] for key in ENGINE_KEYS if key in data})
    except PydanticValidationError as exc:
        raise _invalid("the scenario does not validate", fields + _pydantic_fields(exc)) from None
    if not scenario.actors:
        fields.append({"loc": ["actors"], "message": "the scenario has no actors (add at least one actor)"})
    owners: dict[str, int] = {}
    for index, actor in enumerate(scenario.actors):
        if actor.short_name in owners:
            fields.append({"loc": ["actors", index, "short_name"],
                           "message": f"short_name {actor.short_name!r} is already used by actors[{owners[actor.short_name]}]"})
        owners.setdefault(actor.short_name, index)
    try:
        stems = actor_file_stems(scenario) if scenario.actors else []
    except ValueError as exc:
        fields.append({"loc": ["config", "actors"], "message": str(exc)})
        stems = []
    if scenario.config.actors:  # listed file names become actors/<stem>.yaml on export
        seen: set[str] = set()
        for index, stem in enumerate(stems):
            if not SHORT_NAME.match(stem) or stem in seen:
                fields.append({"loc": ["config", "actors", index],
                               "message": f"{stem!r} cannot be an actor file name" if stem not in seen
                               else f"{stem!r} is listed twice"})
            seen.add(stem)
    if fields:
        raise _invalid("the scenario does not validate", fields)
    return scenario


def _store(scenario: EngineScenario, slug: str) -> Scenario:
    try:
        row = scenario_from_engine(config=scenario, slug=slug)
    except ScenarioImportError as exc:  # a column the engine allows but the database does not (a name too long)
        raise _invalid(str(exc), []) from None
    except IntegrityError:  # created by someone else since the check
        raise ApiError(409, "conflict", f"a scenario with slug {slug!r} already exists") from None
    return _found(row.slug)


def _check_slug(slug: Any) -> str:
    if not _is_slug(slug):
        raise ApiError(422, "invalid_request", "the slug is not valid",
                       [{"loc": ["slug"], "message": "expected up to 100 letters, digits, '-' or '_'"}])
    return slug


def _nul_locs(value: Any, loc: list[Any]) -> list[list[Any]]:
    """Where the body holds a NUL character, which PostgreSQL cannot store in text or JSON."""
    if isinstance(value, str):
        return [loc] if "\x00" in value else []
    if isinstance(value, dict):
        return [found for key, item in value.items()
                for found in ([loc + [key]] if "\x00" in key else _nul_locs(item, loc + [key]))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in _nul_locs(item, loc + [index])]
    return []


class ScenarioPages(LimitOffsetPagination):
    # Bounded: a limit or offset past the database's integers would be a server error, not an empty page.
    class Input(Schema):
        limit: int = Field(50, ge=1, le=MAX_PAGE, description=f"Scenarios per page, at most {MAX_PAGE}.")
        offset: int = Field(0, ge=0, le=2**31 - 1, description="Scenarios to skip.")


# ---- routes ---------------------------------------------------------------------------------------------------
@router.get("/", response={200: list[ScenarioSummary], **errors(401, 422)}, operation_id="scenarios_list",
            summary="List scenarios")
@paginate(ScenarioPages, max_limit=MAX_PAGE)
def list_scenarios(request: HttpRequest):
    """Every stored scenario by name, `limit` (default 50, at most 200) from `offset`; `count` is the total."""
    return scenario_list()


# Before the /{slug} routes, so that "import" is never taken for a slug.
@router.post("/import", response={200: ScenarioDetail, 201: ScenarioDetail, **errors(400, 401, 403, 409, 422)},
             operation_id="scenarios_import", summary="Import a scenario folder from a zip")
def import_scenario(request: HttpRequest, upload: File[UploadedFile],
                    slug: Form[str | None] = None, update: Form[bool] = False):
    """Store the folder in the zip (scenario.yaml at the top or in one top-level folder); at most 10 MB.

    Slug: given, else the top-level folder's name. 400: not a usable zip; 422: the folder does not load
    (loc: file, key, line); 409: the slug is taken and `update` is false. 201 when created, 200 when updated.
    Needs scenarios.add_scenario, and scenarios.change_scenario with `update`."""
    _require(request, "add_scenario")
    if update:
        _require(request, "change_scenario")
    if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:  # refused before a byte of it is read
        raise ApiError(400, "bad_request", f"the upload is {upload.size} bytes; the limit is "
                                           f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB", [{"loc": ["upload"], "message": "too large"}])
    if slug:
        _check_slug(slug)
    started = timezone.now()
    try:
        row = scenario_import_zip(upload=upload, slug=slug or None, update=update)
    except ScenarioImportError as exc:
        raise ApiError(400, "bad_request", str(exc), [{"loc": ["upload"], "message": str(exc)}]) from None
    except ScenarioSlugTaken as exc:
        raise ApiError(409, "conflict", str(exc), [{"loc": ["slug"], "message": "taken"}]) from None
    return Status(201 if row.created_at >= started else 200, _detail(_found(row.slug)))


@router.get("/{slug}", response={200: ScenarioDetail, **errors(401, 404)}, operation_id="scenarios_get",
            summary="Get a scenario with its actors")
def get_scenario(request: HttpRequest, slug: str):
    """The scenario, its actors and its engine configuration (`engine`: the body create and update take)."""
    return _detail(_found(slug))


@router.post("/", response={201: ScenarioDetail, **errors(401, 403, 409, 422)}, operation_id="scenarios_create",
             summary="Create a scenario from JSON", openapi_extra=_body_schema())
def create_scenario(request: HttpRequest, payload: dict[str, Any] = Body(...)):
    """Store a new scenario from the engine's Scenario shape plus `slug`. Needs scenarios.add_scenario.

    422 lists every problem with its location in the body; 409 when the slug is taken."""
    _require(request, "add_scenario")
    data = dict(payload)
    slug = data.pop("slug", None)
    scenario = _engine_scenario(data)
    slug = _check_slug(slug) if slug is not None else None
    if slug is None:
        slug = slugify(scenario.name)[:100] or "scenario"
    if scenario_slug_exists(slug=slug):
        raise ApiError(409, "conflict", f"a scenario with slug {slug!r} already exists; update it with PUT "
                                        f"/api/scenarios/{slug} or choose another slug", [{"loc": ["slug"], "message": "taken"}])
    return Status(201, _detail(_store(scenario, slug)))


@router.put("/{slug}", response={200: ScenarioDetail, **errors(401, 403, 404, 422)}, operation_id="scenarios_update",
            summary="Replace a scenario from JSON", openapi_extra=_body_schema())
def update_scenario(request: HttpRequest, slug: str, payload: dict[str, Any] = Body(...)):
    """Replace the scenario (actors and background documents included) with the body. Needs
    scenarios.change_scenario. A `slug` in the body must be the path's: scenarios are not renamed here."""
    _require(request, "change_scenario")
    _found(slug)
    data = dict(payload)
    given = data.pop("slug", None)
    if given is not None and given != slug:
        raise _invalid("the body's slug differs from the path's", [{"loc": ["slug"], "message": f"expected {slug!r} "
                                                                     "or no slug; scenarios are not renamed"}])
    return _detail(_store(_engine_scenario(data), slug))


@router.get("/{slug}/export", response=errors(401, 404, 422), operation_id="scenarios_export",
            summary="Export a scenario folder as a zip", openapi_extra=_ZIP_RESPONSE)
def export_scenario(request: HttpRequest, slug: str):
    """The folder as a zip, which imports again to the same scenario. 422 when the stored scenario does not
    validate (an export must load again)."""
    content = scenario_export_zip(scenario=_found(slug))
    response = HttpResponse(content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{slug}.zip"'
    return response


@router.post("/{slug}/validate", response={200: ValidationOut, **errors(401, 403, 404)},
             operation_id="scenarios_validate", summary="Validate a stored scenario")
def validate_scenario(request: HttpRequest, slug: str):
    """Every problem of the stored scenario, each naming the file it exports to and the key. Answers 200
    whether or not it is valid: validating is what was asked."""
    try:
        scenario_to_engine(scenario=_found(slug))
    except StoredScenarioError as exc:
        return {"valid": False, "problems": _problems(exc.errors)}
    return {"valid": True, "problems": []}


@router.get("/{slug}/estimate", response={200: EstimateOut, **errors(400, 401, 404, 409, 422)},
            operation_id="scenarios_estimate", summary="Estimate the cost of a run")
def estimate_scenario(
    request: HttpRequest,
    slug: str,
    turns: int | None = Query(None, ge=1, le=1000, description="Turns to play; the scenario's own by default."),
    model: str = Query("", description="One model for every seat, the world and the QA judge."),
    provider: str = Query("", description=f"Send every call to one server: {', '.join(PROVIDER_CHOICES)}."),
    credit_limit: float | None = Query(None, description="USD; the scenario's default when omitted."),
):
    """Provider and cost estimate of a run, before it exists, as the start form shows them. 400: a parameter
    the run would refuse (provider, model, credit limit); 409: the stored scenario does not validate."""
    plan = run_plan_for(scenario=_found(slug), turns=turns, model=model, provider=provider, credit_limit=credit_limit)
    return {"scenario": slug, **plan.estimate_summary()}

