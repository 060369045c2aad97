"""Admin for scenarios: edit with actor and document inlines, JSON checked by the engine; run, copy, validate,
export and import (zip) them.

Export of several scenarios gives one zip holding a `<slug>.zip` per scenario, each importable as it is.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse

from engine.scenario import ScenarioLoadError
from scenarios.models import Actor, BackgroundDocument, Scenario
from scenarios.services import (
    ScenarioImportError,
    ScenarioSlugTaken,
    StoredScenarioError,
    json_field_problems,
    scenario_duplicate,
    scenario_export_zip,
    scenario_import_zip,
    scenario_record_version,
    scenario_validate,
)


def _json_errors(form: forms.ModelForm, field: str, problems: list[str]) -> None:
    """Raise the engine's problems as this field's errors, each naming the field and the key inside it."""
    if problems:
        label = form.fields[field].label or field
        raise forms.ValidationError([f"{label}: {problem}" for problem in problems])


class ScenarioForm(forms.ModelForm):
    class Meta:
        model = Scenario
        fields = "__all__"

    def _checked(self, field: str, *, empty: Any = None) -> Any:
        value = self.cleaned_data.get(field)
        if value is None:
            value = empty  # an emptied box: the column's own empty value, not SQL NULL where NULL is refused
        _json_errors(self, field, json_field_problems(field=field, value=value))
        return value

    def clean_communication(self) -> Any:
        return self._checked("communication", empty={})

    def clean_features(self) -> Any:
        return self._checked("features", empty={})

    def clean_metrics(self) -> Any:
        return self._checked("metrics")

    def clean_validation_rules(self) -> Any:
        return self._checked("validation_rules")

    def clean_exogenous_events(self) -> Any:
        return self._checked("exogenous_events")

    def clean_roles(self) -> Any:
        return self._checked("roles", empty={})

    def clean_extra(self) -> Any:
        return self._checked("extra", empty={})


class ActorForm(forms.ModelForm):
    class Meta:
        model = Actor
        fields = "__all__"

    def _text_list(self, field: str) -> Any:
        value = self.cleaned_data.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise forms.ValidationError(f'{self.fields[field].label}: expected a list of text, e.g. ["one", "two"]')
        return value

    def clean_goals(self) -> Any:
        return self._text_list("goals")

    def clean_constraints(self) -> Any:
        return self._text_list("constraints")

    def clean_information_access(self) -> Any:
        value = self.cleaned_data.get("information_access")
        if value is not None and not isinstance(value, dict):
            raise forms.ValidationError('Information access: expected a mapping, e.g. {"private": ["..."]}')
        return value

    def clean_expertise(self) -> Any:
        value = self.cleaned_data.get("expertise")
        if value is not None and not isinstance(value, (str, dict, list)):
            raise forms.ValidationError("Expertise: expected text, a mapping or a list")
        return value

    def clean_extra(self) -> Any:
        value = self.cleaned_data.get("extra")
        value = {} if value is None else value
        _json_errors(self, "extra", json_field_problems(field="actor_extra", value=value))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # An actor added here is written to actors/<short name>.yaml unless given another file stem.
        if not cleaned.get("file_stem") and cleaned.get("short_name"):
            cleaned["file_stem"] = cleaned["short_name"]
        return cleaned


class ActorInline(admin.StackedInline):
    model = Actor
    form = ActorForm
    extra = 0
    classes = ["collapse"]
    fields = [
        ("name", "short_name", "position"),
        ("llm_model", "control", "file_stem"),
        "description",
        "system_prompt",
        ("goals", "constraints"),
        "information_access",
        ("expertise", "decision_making_style"),
        "extra",
    ]


class BackgroundDocumentInline(admin.StackedInline):
    model = BackgroundDocument
    extra = 0
    classes = ["collapse"]
    fields = [("name", "position"), "text"]


class ImportForm(forms.Form):
    archive = forms.FileField(help_text="A zip of a scenario folder (scenario.yaml at its top or in one folder).")
    slug = forms.SlugField(required=False, max_length=100,
                           help_text="Empty: the folder's name in the zip, else the zip's file name.")
    update = forms.BooleanField(required=False, label="Replace a scenario with the same slug")


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    form = ScenarioForm
    inlines = [ActorInline, BackgroundDocumentInline]
    list_display = ["name", "slug", "turns", "actor_count", "world_state_model", "updated_at"]
    list_filter = ["turns", "world_state_model", "created_at", "updated_at"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    actions = ["run_scenario", "duplicate_scenarios", "validate_scenarios", "export_scenarios"]
    fieldsets = [
        (None, {"fields": [("name", "slug"), "description", "system_prompt", "initial_world_state"]}),
        ("Play", {"fields": [("turns", "turn_duration"), ("world_state_model", "context_window_size"),
                             ("credit_limit", "seed"), "end_condition"]}),
        ("Features", {"fields": ["communication", "features"]}),
        ("Roles on a shared site", {"classes": ["collapse"], "fields": ["roles"]}),
        ("Metrics, QA and outside events", {"classes": ["collapse"],
                                            "fields": ["metrics", "validation_rules", "exogenous_events"]}),
        ("Other", {"classes": ["collapse"], "fields": ["extra", ("created_at", "updated_at")]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Scenario]:
        return super().get_queryset(request).annotate(actor_count=Count("actors"))

    @admin.display(description="actors", ordering="actor_count")
    def actor_count(self, obj: Scenario) -> int:
        return obj.actor_count

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        scenario_record_version(scenario=form.instance)  # every save that changes a file is a version
        # Each part was checked on its own; whether the whole runs (e.g. it has actors) is only known now.
        problems = scenario_validate(scenario=form.instance)
        if problems:
            self.message_user(request, f"Saved, but “{form.instance}” cannot run yet: " + "; ".join(problems),
                              messages.WARNING)

    # ---- actions ------------------------------------------------------------------------------------------
    @admin.action(description="Run the selected scenario")
    def run_scenario(self, request: HttpRequest, queryset: QuerySet[Scenario]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one scenario to run.", messages.ERROR)
            return None
        try:
            url = reverse("admin:runs_run_add")
        except NoReverseMatch:
            self.message_user(request, "Runs cannot be started here yet (the runs admin is not installed).",
                              messages.ERROR)
            return None
        return HttpResponseRedirect(f"{url}?scenario={queryset.get().pk}")

    @admin.action(description="Duplicate the selected scenarios", permissions=["add"])
    def duplicate_scenarios(self, request: HttpRequest, queryset: QuerySet[Scenario]) -> None:
        copies = [scenario_duplicate(scenario=scenario) for scenario in queryset]
        self.message_user(request, "Copied as " + ", ".join(copy.slug for copy in copies) + ".", messages.SUCCESS)

    @admin.action(description="Validate the selected scenarios")
    def validate_scenarios(self, request: HttpRequest, queryset: QuerySet[Scenario]) -> None:
        for scenario in queryset:
            problems = scenario_validate(scenario=scenario)
            if problems:
                self.message_user(request, f"“{scenario}” has {len(problems)} problem(s): " + "; ".join(problems),
                                  messages.ERROR)
            else:
                self.message_user(request, f"“{scenario}” is valid.", messages.SUCCESS)

    @admin.action(description="Export the selected scenarios (zip)")
    def export_scenarios(self, request: HttpRequest, queryset: QuerySet[Scenario]) -> HttpResponse | None:
        archives, failed = {}, False
        for scenario in queryset:
            try:
                archives[scenario.slug] = scenario_export_zip(scenario=scenario)
            except StoredScenarioError as exc:
                failed = True
                self.message_user(request, f"“{scenario}” cannot be exported: " + "; ".join(map(str, exc.errors)),
                                  messages.ERROR)
        if failed or not archives:
            return None
        if len(archives) == 1:
            slug, content = archives.popitem()
            filename = f"{slug}.zip"
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as outer:  # inner zips are packed
                for slug, inner in archives.items():
                    outer.writestr(f"{slug}.zip", inner)
            content, filename = buffer.getvalue(), "scenarios.zip"
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    # ---- import -------------------------------------------------------------------------------------------
    def get_urls(self) -> list[Any]:
        custom = [path("import/", self.admin_site.admin_view(self.import_view), name="scenarios_scenario_import")]
        return custom + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                scenario = scenario_import_zip(upload=form.cleaned_data["archive"],
                                               slug=form.cleaned_data["slug"] or None,
                                               update=form.cleaned_data["update"])
            except ScenarioSlugTaken as exc:
                form.add_error("slug", str(exc))
            except ScenarioImportError as exc:
                form.add_error("archive", str(exc))
            except ScenarioLoadError as exc:
                count = len(exc.errors)
                form.add_error("archive", f"The scenario in the zip has {count} problem{'s' if count != 1 else ''}:")
                for error in exc.errors:
                    form.add_error("archive", str(error))
            else:
                self.message_user(request, f"Imported “{scenario}” as {scenario.slug}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:scenarios_scenario_change", args=[scenario.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import a scenario",
            "form": form,
        }
        return TemplateResponse(request, "admin/scenarios/scenario/import.html", context)
