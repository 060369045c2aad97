"""Admin for runs: a list with status, progress, cost and provider; read-only detail; resume and cancel."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponse

from runs import selectors, services
from runs.models import CostRecord, Decision, Run, Turn


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


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "scenario_name", "number", "status_shown", "progress", "cost", "provider_shown", "owner", "created_at")
    list_filter = ("status", "offline", "scenario_slug", "created_at")
    search_fields = ("scenario_name", "scenario_slug", "provider", "halt_reason", "error")
    list_select_related = ("owner",)
    inlines = [TurnInline, DecisionInline, CostRecordInline]
    actions = ["resume_runs", "cancel_runs", "download_markdown"]
    exclude = ("snapshot",)

    def has_add_permission(self, request) -> bool:
        return False  # runs start from a scenario (its Run action) or the terminal, with an estimate first

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a run's records are what happened: read-only

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Run._meta.fields if f.name != "snapshot"]

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

    @admin.action(description="Resume the selected runs on a worker", permissions=["view"])
    def resume_runs(self, request, queryset) -> None:
        for run in queryset:
            try:
                services.run_resume(run=run)
                self.message_user(request, f"{run}: queued to resume.", messages.SUCCESS)
            except (services.RunConflict, services.RunInputError) as exc:
                self.message_user(request, f"{run}: {exc}", messages.ERROR)

    @admin.action(description="Cancel the selected runs", permissions=["view"])
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
        response = HttpResponse(services.run_markdown_zip(run=run), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{run.scenario_slug}-run-{run.number:03d}.zip"'
        return response
