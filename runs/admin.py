"""Admin for runs: a list with status, progress, cost and provider; read-only detail; resume and cancel; V1 imports."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.quotas import QuotaExceeded
from engine.visibility import FULL
from runs.downloads import markdown_zip_response
from runs import branching, record_selectors, roles, selectors, services
from runs import seats as seat_services
from runs.forms import RunBranchForm, RunStartForm
from runs.models import CostRecord, Decision, Run, RunRole, RunTag, Turn
from runs.v1_import import V1ImportError, V1RunAlreadyImported, V1ScenarioNotFound, run_import_v1_zip
from scenarios.models import Scenario


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class TurnInline(ReadOnlyInline):
    model = Turn
    fields = ("turn", "world_state", "recorded_at")
    readonly_fields = fields


class DecisionInline(ReadOnlyInline):
    model = Decision
    fields = ("turn", "actor", "action", "model", "provider")
    readonly_fields = fields


class CostRecordInline(ReadOnlyInline):
    model = CostRecord
    fields = ("seq", "turn", "phase", "actor", "task", "model", "provider", "input_tokens", "output_tokens", "cost", "cached")
    readonly_fields = fields


class V1ImportForm(forms.Form):
    archive = forms.FileField(help_text="A zip of a run directory written by V1's run_scenario.py (the folder holding scenario-state.json).")
    scenario = forms.ModelChoiceField(
        Scenario.objects.order_by("name"), required=False,
        help_text="The scenario the run was played with. Empty: the scenario folder in the zip, else the stored scenario of the run's name.",
    )
    again = forms.BooleanField(required=False, label="Import it again if it was imported before")


class RunTagInline(admin.TabularInline):
    model = RunTag
    extra = 1
    fields = ("name",)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "scenario_name", "number", "status_shown", "progress", "cost", "provider_shown", "owner", "created_at")
    list_filter = ("status", "offline", "scenario_slug", "tags__name", "created_at")
    search_fields = ("scenario_name", "scenario_slug", "provider", "halt_reason", "error", "notes", "tags__name")
    list_select_related = ("owner",)
    inlines = [RunTagInline, TurnInline, DecisionInline, CostRecordInline]
    actions = ["resume_runs", "cancel_runs", "download_markdown"]
    exclude = ("snapshot",)

    def add_view(self, request, form_url="", extra_context=None):
        """Not a model form: a start form that shows the cost estimate, then starts the run on a worker."""
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        # Arriving from a scenario's Run action: show its estimate with the scenario's defaults at once.
        data = request.POST or ({"scenario": request.GET["scenario"], "use_cache": "on"} if "scenario" in request.GET else None)
        form = RunStartForm(data, initial={"use_cache": True})
        plan = error = None
        if form.is_valid():
            scenario = form.cleaned_data["scenario"]
            try:
                if "start" in request.POST:
                    run = services.run_start(scenario=scenario, owner=request.user, **form.run_parameters())
                    self.message_user(request, f"{run} is queued for a worker.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))
                plan = services.run_plan_for(scenario=scenario, **form.run_parameters())
            except (services.RunInputError, services.RunConflict, QuotaExceeded) as exc:
                error = str(exc)
        context = {
            **self.admin_site.each_context(request), "title": "Start a run", "form": form, "plan": plan,
            "error": error, "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/runs/run/start.html", context)

    def get_urls(self):
        custom = [path("import-v1/", self.admin_site.admin_view(self.import_v1_view), name="runs_run_import_v1"),
                  path("<int:pk>/branch/", self.admin_site.admin_view(self.branch_view), name="runs_run_branch")]
        return custom + super().get_urls()

    def import_v1_view(self, request):
        """A zipped V1 run directory stored as a run of the caller's."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = V1ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                run = run_import_v1_zip(upload=form.cleaned_data["archive"], scenario=form.cleaned_data["scenario"],
                                        owner=request.user, again=form.cleaned_data["again"])
            except V1ScenarioNotFound as exc:
                form.add_error("scenario", f"{exc}: choose it here.")
            except V1RunAlreadyImported as exc:
                form.add_error("again", str(exc))
            except V1ImportError as exc:
                form.add_error("archive", str(exc))
            else:
                self.message_user(request, f"Imported {run}: {run.status} after {run.turn} of {run.max_turns} turns.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Import a V1 run", "form": form}
        return TemplateResponse(request, "admin/runs/run/import_v1.html", context)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a run's records are what happened: read-only

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The live panel: the same socket and script as the run page, from the same snapshot seq.
        run = Run.objects.filter(pk=object_id).first()
        if run is not None:
            seq = record_selectors.snapshot_seq(run)
            extra_context = {**(extra_context or {}), "live": {
                "after_seq": seq, "costs": selectors.cost_breakdown_at(run, seq), "status": selectors.run_display_status(run),
            }}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_readonly_fields(self, request, obj=None):
        # Tags (inline) and notes are the researchers' own: the rest is the run's record.
        return [f.name for f in Run._meta.fields if f.name not in ("snapshot", "notes")] + ["lineage"]

    @admin.display(description="status")
    def status_shown(self, run: Run) -> str:
        return selectors.run_display_status(run)

    @admin.display(description="turns")
    def progress(self, run: Run) -> str:
        return selectors.run_progress(run)

    @admin.display(description="cost (USD)", ordering="total_cost")
    def cost(self, run: Run) -> str:
        limit = f" / {run.credit_limit:.2f}" if run.credit_limit else ""
        return f"{run.total_cost:.4f}{limit}"

    @admin.display(description="provider")
    def provider_shown(self, run: Run) -> str:
        return "offline (no model called)" if run.offline else run.provider

    def has_control_permission(self, request) -> bool:
        """Resuming spends money and cancelling stops someone's work: it takes the change permission."""
        return request.user.has_perm("runs.change_run")

    @admin.action(description="Resume the selected runs on a worker", permissions=["control"])
    def resume_runs(self, request, queryset) -> None:
        for run in queryset:
            try:
                services.run_resume(run=run, by=request.user)
                self.message_user(request, f"{run}: queued to resume.", messages.SUCCESS)
            except (services.RunConflict, services.RunInputError, QuotaExceeded) as exc:
                self.message_user(request, f"{run}: {exc}", messages.ERROR)

    @admin.action(description="Cancel the selected runs", permissions=["control"])
    def cancel_runs(self, request, queryset) -> None:
        for run in queryset:
            try:
                services.run_cancel(run=run)
                self.message_user(request, f"{run}: cancel requested.", messages.SUCCESS)
            except services.RunConflict as exc:
                self.message_user(request, f"{run}: {exc}", messages.ERROR)

    @admin.action(description="Download the Markdown files (zip)", permissions=["view"])
    def download_markdown(self, request, queryset):
        run = queryset.first()
        return markdown_zip_response(run, FULL)  # staff read every run in full

    # ---- branching: a Branch page per run, linked from its lineage field --------------------------------------
    @admin.display(description="branches")
    def lineage(self, run: Run) -> str:
        parts = []
        if run.parent_id is not None:
            changes = "; ".join(selectors.intervention_changes(run.intervention)) or "no changes"
            parts.append(format_html("branched from <a href=\"{}\">run {}</a> at turn {} ({})",
                                     reverse("admin:runs_run_change", args=[run.parent_id]), run.parent_id, run.branch_turn, changes))
        branches = list(run.branches.order_by("pk").values_list("pk", "branch_turn"))
        if branches:
            parts.append(format_html_join(", ", "<a href=\"{}\">run {}</a> (turn {})",
                                          ((reverse("admin:runs_run_change", args=[pk]), pk, turn) for pk, turn in branches)))
        if run.turn >= 1:
            parts.append(format_html("<a class=\"button\" href=\"{}\">Branch this run</a>", reverse("admin:runs_run_branch", args=[run.pk])))
        return format_html_join(mark_safe("<br>"), "{}", ((part,) for part in parts)) if parts else "—"

    def branch_view(self, request, pk: int):
        """A new run of the caller's from a completed turn of this one, with the branch form's changes."""
        run = Run.objects.filter(pk=pk).first()
        if run is None:
            raise Http404("no such run")
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RunBranchForm(request.POST or None, run=run)
        if request.method == "POST" and form.is_valid():
            try:
                child = branching.run_branch(run=run, at_turn=form.cleaned_data["at_turn"], intervention=form.intervention(),
                                             owner=request.user, start=form.cleaned_data["start"])
            except (services.RunInputError, services.RunConflict, QuotaExceeded) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"{child}: branched from {run} at turn {child.branch_turn} ({child.status}).", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:runs_run_change", args=[child.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": f"Branch {run}",
                   "form": form, "original": run}
        return TemplateResponse(request, "admin/runs/run/branch.html", context)


class RunRoleForm(forms.ModelForm):
    class Meta:
        model = RunRole
        fields = ("run", "user", "group", "role", "seats", "view")

    def clean(self):
        data = super().clean()
        run = data.get("run")
        if run is not None:
            role = data.get("role", "")
            grant = roles.RoleGrant(role, user=data.get("user"), group=data.get("group"), seats=tuple(data.get("seats") or ()),
                                    view=data.get("view") if role == RunRole.Role.OBSERVER else None)
            problems = roles.role_problems([a["short_name"] for a in run.actors], grant)
            if problems:
                raise forms.ValidationError(problems)
        return data


@admin.register(RunRole)
class RunRoleAdmin(admin.ModelAdmin):
    """Parts in runs besides the owner's: a facilitator, a player of seats, an observer; to a user or a group."""

    form = RunRoleForm
    list_display = ("run", "user", "group", "role", "seats", "view", "granted_at")
    list_filter = ("role", "view")
    search_fields = ("user__username", "group__name", "run__scenario_slug")
    raw_id_fields = ("run", "user")

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        seat_services.seats_to_people(obj)  # a player's seats are played by people from the next decision
