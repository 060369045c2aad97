"""Scenario pages: the list, the library's gallery, and one scenario with its actors and a start form that shows
the estimate first."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.quotas import QuotaExceeded
from engine.scenario.errors import ScenarioLoadError
from runs import services as run_services
from runs.forms import ScenarioRunStartForm
from scenarios import editing, editor_page, selectors, services
from scenarios.archives import ScenarioImportError
from scenarios.models import Actor, Scenario
from scenarios.services import ScenarioSlugTaken


@login_required
def scenario_list(request: HttpRequest) -> HttpResponse:
    return render(request, "scenarios/scenario_list.html", {"scenarios": selectors.scenario_list()})


@login_required
def scenario_gallery(request: HttpRequest) -> HttpResponse:
    """The bundled library, to start from: each scenario's summary, actors, length and what a run would cost."""
    services.scenario_import_library()  # a library scenario added since the database was made is stored first
    return render(request, "scenarios/scenario_gallery.html", {"entries": selectors.scenario_gallery(),
                                                                "models": selectors.GALLERY_MODELS})


def _scenario_or_404(slug: str) -> Scenario:
    scenario = selectors.scenario_get(slug=slug)
    if scenario is None:
        raise Http404("no such scenario")
    return scenario


def _text_list(value) -> list[str]:
    # Goals and constraints are stored as a list, but the admin accepts V1's single block of text too.
    if not value:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _actor_rows(scenario: Scenario) -> list[dict]:
    return [
        {
            "name": actor.name, "short_name": actor.short_name, "model": actor.llm_model,
            "control": actor.get_control_display(), "is_human": actor.control == Actor.Control.HUMAN,
            "description": actor.description, "goals": _text_list(actor.goals),
            "constraints": _text_list(actor.constraints),
        }
        for actor in scenario.actors.all()
    ]


def _start_form(data, scenario: Scenario) -> ScenarioRunStartForm:
    actors = [(actor.short_name, actor.name) for actor in scenario.actors.all()]
    form = ScenarioRunStartForm(data, initial={"use_cache": True}, actors=actors)
    # Empty fields mean the scenario's defaults: the placeholders say what those are.
    form.fields["turns"].widget.attrs["placeholder"] = scenario.turns
    form.fields["seed"].widget.attrs["placeholder"] = scenario.seed
    if scenario.credit_limit:
        form.fields["credit_limit"].widget.attrs["placeholder"] = scenario.credit_limit
    return form


@login_required
def scenario_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """GET shows the estimate for the scenario's defaults; POST "estimate" re-estimates, POST "start" starts."""
    scenario = _scenario_or_404(slug)
    plan = error = None
    if request.method == "POST":
        form = _start_form(request.POST, scenario)
        parameters = form.run_parameters() if form.is_valid() else None
    else:
        form = _start_form(None, scenario)
        parameters = {"use_cache": True}
    if parameters is not None:
        try:
            if request.method == "POST" and "start" in request.POST:
                run = run_services.run_start(scenario=scenario, owner=request.user, **parameters)
                messages.success(request, f"{run} is queued for a worker.")
                return redirect(reverse("runs:detail", args=[run.pk]))
            plan = run_services.run_plan_for(scenario=scenario, **{k: v for k, v in parameters.items() if k != "roles"})
        except (run_services.RunInputError, run_services.RunConflict, QuotaExceeded) as exc:
            error = str(exc)
    context = {
        "scenario": scenario,
        "actors": _actor_rows(scenario),
        "documents": scenario.background_documents.all(),
        "form": form,
        "scenario_roles": scenario.roles or {},
        "plan": plan,
        "list_prices": {"sentence": run_services.list_prices_sentence(plan.list_prices),
                        "rows": list(plan.list_prices.by_actor().items())} if plan and plan.list_prices else None,
        "error": error,
    }
    return render(request, "scenarios/scenario_detail.html", context)


@login_required
def scenario_versions(request: HttpRequest, slug: str) -> HttpResponse:
    """The scenario's versions, and what changed between two of them (?older=N&newer=M; by default the last two)."""
    scenario = _scenario_or_404(slug)
    services.scenario_record_version(scenario=scenario)  # one stored before versions existed gets its first now
    versions = selectors.scenario_versions(scenario=scenario)
    compared = selectors.scenario_version_pair(scenario=scenario, older=request.GET.get("older"),
                                               newer=request.GET.get("newer"))
    return render(request, "scenarios/scenario_versions.html", {"scenario": scenario, "versions": versions, **compared},
                  status=400 if compared["problem"] else 200)


@login_required
@require_POST
def scenario_duplicate(request: HttpRequest, slug: str) -> HttpResponse:
    """A copy of the scenario to start a new one from (its own history from version 1), for who may add scenarios."""
    scenario = _scenario_or_404(slug)
    if not request.user.has_perm("scenarios.add_scenario"):
        raise PermissionDenied("adding scenarios is not among your permissions")
    copy = services.scenario_duplicate(scenario=scenario)
    messages.success(request, f"“{copy.name}” is a copy of “{scenario.name}” to change as you like.")
    return redirect("scenarios:detail", slug=copy.slug)


def _may_edit(request: HttpRequest, scenario: Scenario | None) -> None:
    permission, what = ("change_scenario", "changing") if scenario else ("add_scenario", "adding")
    if not request.user.has_perm(f"scenarios.{permission}"):
        raise PermissionDenied(f"{what} scenarios is not among your permissions")


def _try(request: HttpRequest, scenario: Scenario) -> HttpResponse:
    """A run of one turn with the offline model (nothing to pay), opened on its live page."""
    try:
        run = run_services.run_start(scenario=scenario, owner=request.user, turns=1, provider="offline", use_cache=False)
    except (run_services.RunInputError, run_services.RunConflict, QuotaExceeded) as exc:
        messages.error(request, f"Could not try it: {exc}")
        return redirect("scenarios:detail", slug=scenario.slug)
    messages.success(request, f"{run}: one turn with the offline model, queued for a worker.")
    return redirect("runs:detail", pk=run.pk)


def _editor(request: HttpRequest, scenario: Scenario | None) -> HttpResponse:
    """The editor of a stored scenario, or of a new one (scenario None): its form or its YAML view, each POST
    turning the page into the folder's files, checking them, and saving, previewing or switching the view."""
    _may_edit(request, scenario)
    stored = editing.scenario_files(scenario=scenario) if scenario else dict(editing.NEW_SCENARIO_FILES)
    current = editing.scenario_current_version(scenario=scenario) if scenario else None
    if request.method != "POST":
        mode = "yaml" if request.GET.get("view") == "yaml" else "form"
        source = selectors.scenario_get(slug=request.GET["from"]) if not scenario and request.GET.get("from") else None
        if source is not None:  # a new scenario starting as a copy of another (the gallery's "start from it")
            stored = editing.scenario_template(scenario=source)
        blank = None if scenario or source else editing.Check(None, [], [])  # nothing typed is wrong yet
        return _editor_page(request, scenario, editing.Edit(stored, mode, "open", version=current), check=blank)
    try:
        edit = editing.editor_submit(request.POST, stored=stored)
    except editing.EditorInputError as exc:
        messages.error(request, str(exc))
        return _editor_page(request, scenario, editing.Edit(stored, "form", "open", version=current), status=400)
    check = editing.editor_check(edit.files)
    if edit.step in ("save", "save_try") and check.config is not None and not edit.problems:
        try:
            saved = (editing.scenario_save_files(scenario=scenario, files=edit.files, opened_at=edit.version)
                     if scenario else editing.scenario_create(files=edit.files))
        except editing.ScenarioChanged as exc:
            messages.error(request, f"Not saved: version {exc.current} of this scenario was saved since you opened "
                                    "it. Your text is below as you left it; the versions page shows what changed. "
                                    "Saving again makes yours the next version.")
            edit.version = exc.current
            return _editor_page(request, scenario, edit, check=check, status=409)
        except (ScenarioLoadError, ScenarioImportError, ScenarioSlugTaken) as exc:
            messages.error(request, f"Not saved: {exc}")
        else:
            if edit.step == "save_try":
                return _try(request, saved)
            messages.success(request, f"Saved “{saved.name}” as {'a new version' if scenario else 'a new scenario'}.")
            return redirect("scenarios:versions" if scenario else "scenarios:detail", slug=saved.slug)
    failed = edit.step in ("save", "save_try")
    return _editor_page(request, scenario, edit, check=check, status=400 if failed else 200)


def _editor_page(request: HttpRequest, scenario: Scenario | None, edit, *, check=None, status: int = 200):
    check = check if check is not None else editing.editor_check(edit.files)
    page = editor_page.editor_page(edit, check, preview=edit.step == "preview")
    return render(request, "scenarios/scenario_editor.html", {"scenario": scenario, "page": page,
                                                              "saving_failed": status >= 400}, status=status)


@login_required
def scenario_new(request: HttpRequest) -> HttpResponse:
    """A new scenario, from scratch, for who may add scenarios."""
    return _editor(request, None)


@login_required
def scenario_edit(request: HttpRequest, slug: str) -> HttpResponse:
    """The scenario's editor, for who may change scenarios: each save a version, as written (comments kept)."""
    return _editor(request, _scenario_or_404(slug))


@login_required
@require_POST
def scenario_check(request: HttpRequest) -> JsonResponse:
    """Live validation of an editor page as it is typed: its problems and warnings, where each goes, and the
    estimate; nothing is stored."""
    if not (request.user.has_perm("scenarios.add_scenario") or request.user.has_perm("scenarios.change_scenario")):
        raise PermissionDenied("editing scenarios is not among your permissions")
    try:
        edit = editing.editor_submit(request.POST, stored={})
    except editing.EditorInputError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(editor_page.editor_page(edit, editing.editor_check(edit.files)).as_json())


@login_required
@require_POST
def scenario_try(request: HttpRequest, slug: str) -> HttpResponse:
    """Try the scenario: a run of one turn with the offline model, opened on its live page."""
    return _try(request, _scenario_or_404(slug))


@login_required
def scenario_preview(request: HttpRequest, slug: str) -> HttpResponse:
    """What each actor and the world model read on turn 1, with its tokens against its model's context."""
    scenario = _scenario_or_404(slug)
    try:
        config = services.scenario_to_engine(scenario=scenario)
    except ScenarioLoadError as exc:
        return render(request, "scenarios/scenario_preview.html", {"scenario": scenario, "problems": list(exc.errors)},
                      status=400)
    return render(request, "scenarios/scenario_preview.html",
                  {"scenario": scenario, "previews": selectors.scenario_turn_one(config=config)})

