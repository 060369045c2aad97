"""Admin for batches: a list with status, progress and spending; a start page (YAML config, preview, start);
read-only detail with its runs; pause, resume and cancel."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from accounts.quotas import QuotaExceeded
from batches import selectors, services
from batches.forms import EXAMPLE, BatchConfigForm
from batches.models import Batch, BatchRun


class BatchRunInline(admin.TabularInline):
    model = BatchRun
    extra = 0
    can_delete = False
    fields = ("position", "name", "variation", "number", "seed", "run_link", "run_status", "run_cost")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="run")
    def run_link(self, row: BatchRun) -> str:
        if row.run_id is None:
            return "not started"
        return format_html('<a href="{}">run {}</a>', reverse("admin:runs_run_change", args=[row.run_id]), row.run_id)

    @admin.display(description="status")
    def run_status(self, row: BatchRun) -> str:
        return row.run.status if row.run else "pending"

    @admin.display(description="cost (USD)")
    def run_cost(self, row: BatchRun) -> str:
        return f"{row.run.total_cost:.4f}" if row.run else "—"


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("id", "experiment_name", "scenario_name", "status", "runs_ended", "spent", "budget_limit", "owner", "created_at")
    list_filter = ("status", "scenario_slug", "created_at")
    search_fields = ("experiment_name", "description", "scenario_name", "halt_reason")
    list_select_related = ("owner",)
    inlines = [BatchRunInline]
    actions = ["pause_batches", "resume_batches", "cancel_batches"]
    exclude = ("snapshot",)

    def get_queryset(self, request):
        # The list's progress columns read each batch's runs: prefetched, one query for the page.
        return selectors.with_progress(super().get_queryset(request))

    def add_view(self, request, form_url="", extra_context=None):
        """Not a model form: the batch config as YAML, previewed (the dry run), then started on the workers."""
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        from scenarios.selectors import scenario_list

        first = scenario_list().first()
        form = BatchConfigForm(request.POST or None, initial={"config": EXAMPLE.format(slug=first.slug if first else "ai-summit")})
        plan = None
        if request.method == "POST" and form.is_valid():
            plan = form.plan
            if "start" in request.POST:
                try:
                    batch = services.batch_start(plan=form.plan, owner=request.user)
                except (services.BatchInputError, QuotaExceeded) as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(request, f"{batch} started: {len(form.plan.runs)} runs.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:batches_batch_change", args=[batch.pk]))
        context = {**self.admin_site.each_context(request), "title": "Start a batch", "form": form, "plan": plan,
                   "opts": self.model._meta}
        return TemplateResponse(request, "batches/admin_start.html", context)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a batch's config is what was asked: read-only (steer it with the actions)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Batch._meta.fields if f.name != "snapshot"] + ["page"]

    @admin.display(description="page")
    def page(self, batch: Batch) -> str:
        return format_html('<a href="{}">progress and statistics</a>', reverse("batches:detail", args=[batch.pk]))

    @admin.display(description="runs ended")
    def runs_ended(self, batch: Batch) -> str:
        progress = selectors.batch_progress(batch=batch)
        return f"{progress.ended}/{progress.total}"

    @admin.display(description="spent (USD)")
    def spent(self, batch: Batch) -> str:
        return f"{selectors.batch_progress(batch=batch).spent:.4f}"

    def has_control_permission(self, request) -> bool:
        """Resuming spends money and cancelling stops someone's work: it takes the change permission."""
        return request.user.has_perm("batches.change_batch")

    def _each(self, request, queryset, action, done: str) -> None:
        for batch in queryset:
            try:
                action(batch=batch)
                self.message_user(request, f"{batch}: {done}.", messages.SUCCESS)
            except (services.BatchConflict, services.BatchInputError) as exc:
                self.message_user(request, f"{batch}: {exc}", messages.ERROR)

    @admin.action(description="Pause the selected batches", permissions=["control"])
    def pause_batches(self, request, queryset) -> None:
        self._each(request, queryset, services.batch_pause, "paused")

    @admin.action(description="Resume the selected batches", permissions=["control"])
    def resume_batches(self, request, queryset) -> None:
        self._each(request, queryset, services.batch_resume, "resumed")

    @admin.action(description="Cancel the selected batches", permissions=["control"])
    def cancel_batches(self, request, queryset) -> None:
        self._each(request, queryset, services.batch_cancel, "cancelled")
