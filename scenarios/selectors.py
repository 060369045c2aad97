"""Reads of stored scenarios: lists, the library's gallery, versions and what changed between two."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import Count, QuerySet

from engine.estimate import CostRange
from scenarios.models import Scenario, ScenarioVersion


def scenario_get(*, slug: str) -> Scenario | None:
    """The scenario with this slug, or None."""
    return Scenario.objects.prefetch_related("actors", "background_documents").filter(slug=slug).first()


def scenario_list() -> QuerySet[Scenario]:
    """Every stored scenario by name, with `actor_count`."""
    return Scenario.objects.annotate(actor_count=Count("actors")).order_by("name", "slug")


def scenario_slug_exists(*, slug: str) -> bool:
    return Scenario.objects.filter(slug=slug).exists()


# ---- the library's gallery -------------------------------------------------------------------------------------
# What a run of each library scenario would cost with its own models, and with every seat, the world and the QA
# judge on one common model: list prices (no key needed), the scenario's default turns.
GALLERY_MODELS = ("openai/gpt-4o-mini", "google/gemini-2.0-flash-001", "anthropic/claude-3.5-haiku", "openai/gpt-4o")


@dataclass(frozen=True)
class GalleryEntry:
    scenario: Scenario
    summary: str  # the description's first paragraph
    actors: list[str]
    turns: int
    turn_duration: str
    costs: list[tuple[str, CostRange]]  # ("as written" or a model, the run's cost range in USD)


def scenario_gallery() -> list[GalleryEntry]:
    """The bundled library's scenarios as stored, each with its summary, actors, length and estimated cost
    for common models."""
    from engine.estimate import estimate_run_cost
    from engine.llm.pricing import ListPrices
    from scenarios.services import scenario_to_engine

    names = {folder.name for folder in Path(settings.SCENARIO_LIBRARY_DIR).iterdir() if (folder / "scenario.yaml").is_file()}
    prices = ListPrices()
    entries = []
    for scenario in Scenario.objects.filter(slug__in=names).prefetch_related("actors").order_by("name"):
        config = scenario_to_engine(scenario=scenario)
        costs = [("as written", estimate_run_cost(config, prices).cost)]
        costs += [(model, estimate_run_cost(_all_on(config, model), prices).cost) for model in GALLERY_MODELS]
        entries.append(GalleryEntry(scenario=scenario, summary=(config.config.description or "").strip().split("\n\n")[0],
                                    actors=[actor.name for actor in config.actors], turns=config.config.turns,
                                    turn_duration=config.config.turn_duration, costs=costs))
    return entries


def _all_on(config, model: str):
    """The scenario with every seat, the world and the QA judge on `model`."""
    actors = [actor.model_copy(update={"llm_model": model}) for actor in config.actors]
    changes = {"actors": actors, "config": config.config.model_copy(update={"world_state_model": model})}
    if config.validation is not None:
        changes["validation"] = config.validation.model_copy(update={"validation_model": model})
    return config.model_copy(update=changes)


# ---- versions ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileDiff:
    path: str
    status: str  # "changed", "added" or "removed"
    lines: list[tuple[str, str]]  # (kind: "hunk", "add", "remove" or "same", the line)


def scenario_versions(*, scenario: Scenario) -> list[ScenarioVersion]:
    return list(scenario.versions.order_by("-number").only("id", "number", "created_at", "scenario_id"))


def scenario_version_pair(*, scenario: Scenario, older: str | None, newer: str | None) -> dict:
    """The two versions asked for (as given in a query string; by default the last two), oldest first, and what
    changed between them: {"older", "newer", "diff", "problem"}, the problem saying which numbers exist."""
    last = scenario.versions.order_by("-number").values_list("number", flat=True).first() or 0
    none = {"older": None, "newer": None, "diff": None, "problem": ""}
    if last < 2:
        return none
    try:
        newer_number = int(newer or last)
        older_number = int(older or newer_number - 1)
    except ValueError:
        older_number = newer_number = 0
    if not (1 <= older_number <= last and 1 <= newer_number <= last):  # never a number the database cannot hold
        return {**none, "problem": f"Choose two of the versions 1 to {last}."}
    found = {v.number: v for v in scenario.versions.filter(number__in=[older_number, newer_number])}
    if older_number not in found or newer_number not in found:
        return {**none, "problem": f"Choose two of the versions 1 to {last}."}
    first, second = sorted((found[older_number], found[newer_number]), key=lambda v: v.number)
    return {"older": first, "newer": second, "diff": scenario_version_diff(older=first, newer=second), "problem": ""}


def scenario_version_diff(*, older: ScenarioVersion, newer: ScenarioVersion) -> list[FileDiff]:
    """What changed from one version's folder to another's, file by file (unified diffs, 3 lines of context)."""
    diffs = []
    for path in sorted(set(older.files) | set(newer.files)):
        before, after = older.files.get(path), newer.files.get(path)
        if before == after:
            continue
        status = "added" if before is None else "removed" if after is None else "changed"
        body = list(difflib.unified_diff((before or "").splitlines(), (after or "").splitlines(), lineterm="", n=3))[2:]
        kinds = {"@": "hunk", "+": "add", "-": "remove"}
        diffs.append(FileDiff(path, status, [(kinds.get(line[:1], "same"), line) for line in body]))
    return diffs


# ---- what each model reads on turn 1 ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptPreview:
    who: str  # an actor's name, or "the world model"
    task: str  # outreach, decision, world_update
    model: str
    tokens: int  # the request's prompt, estimated as the engine budgets it
    budget: int  # the most prompt tokens the model's context allows with room for the answer
    messages: list[tuple[str, str]]  # (role, text)

    @property
    def label(self) -> str:
        return PREVIEW_TASKS[self.task]


PREVIEW_TASKS = {"outreach": "opening the talks", "decision": "deciding", "world_update": "writing the new world"}


def scenario_turn_one(*, config) -> list[PromptPreview]:
    """What each actor and the world model read on turn 1, played offline in this process (nothing is stored or
    paid): each one's first request of each task, with its tokens against its model's context."""
    import asyncio

    from engine import Runner
    from engine.llm.offline import OfflineProvider
    from engine.token_budget import prompt_budget, request_tokens, scenario_context_length

    class Recording(OfflineProvider):
        def __init__(self, scenario) -> None:
            super().__init__(scenario)
            self.requests = []

        async def complete(self, request):
            self.requests.append(request)
            return await super().complete(request)

    provider = Recording(config)
    asyncio.run(Runner(provider=provider).run_async(config, max_turns=1))
    names = {actor.short_name: actor.name for actor in config.actors}
    seen, previews = set(), []
    for request in provider.requests:
        key = (request.purpose.task, request.purpose.actor)
        if request.purpose.task not in PREVIEW_TASKS or key in seen:
            continue
        seen.add(key)
        budget = prompt_budget(scenario_context_length(config, request.model), request.max_tokens)
        previews.append(PromptPreview(who=names.get(request.purpose.actor, "the world model"), task=request.purpose.task,
                                      model=request.model, tokens=request_tokens(request), budget=budget,
                                      messages=[(m.role, m.content) for m in request.messages]))
    order = {actor.short_name: i for i, actor in enumerate(config.actors)}
    by_name = {actor.name: actor.short_name for actor in config.actors}
    return sorted(previews, key=lambda p: (order.get(by_name.get(p.who, ""), len(order)), list(PREVIEW_TASKS).index(p.task)))
