"""Batch pages: the list, a new batch from a YAML config (preview, then start), a batch's page with live progress
and statistics (it polls its `live/` fragment while the batch can still change), pause / resume / cancel."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.quotas import QuotaExceeded
from batches import exports, planning, selectors, services
from batches.forms import EXAMPLE, BatchConfigForm
from batches.models import Batch, BatchStatus

BATCHES_PER_PAGE = 50


def _visible_batch(request: HttpRequest, pk: int) -> Batch:
    """The batch, if this person may see it; someone else's is a 404, as runs."""
    batch = selectors.batch_get(batch_id=pk)
    if batch is None or not selectors.batch_visible_to(batch, request.user):
        raise Http404("no such batch")
    return batch


def live_context(batch: Batch) -> dict:
    progress = selectors.batch_progress(batch=batch)
    return {
        "batch": batch,
        "progress": progress,
        "statistics": selectors.batch_statistics(batch=batch),
        "open": batch.status in (BatchStatus.RUNNING, BatchStatus.PAUSED) or progress.active > 0,  # may still change
    }


@login_required
def batch_list(request: HttpRequest) -> HttpResponse:
    batches = selectors.with_progress(selectors.batches_for(request.user))
    page = Paginator(batches, BATCHES_PER_PAGE).get_page(request.GET.get("page"))
    rows = [{"batch": batch, "progress": selectors.batch_progress(batch=batch)} for batch in page.object_list]
    return render(request, "batches/batch_list.html", {"page": page, "rows": rows, "show_owner": request.user.is_staff})


@login_required
def batch_new(request: HttpRequest) -> HttpResponse:
    """Preview shows the plan (runs, estimate, time); Start starts it and opens its page."""
    from scenarios.selectors import scenario_list

    first = scenario_list().first()
    form = BatchConfigForm(request.POST or None, initial={"config": EXAMPLE.format(slug=first.slug if first else "ai-summit")})
    plan = None
    if request.method == "POST" and form.is_valid():
        try:  # previewed as it would start: within the person's quota
            form.plan = planning.batch_within_quota(plan=form.plan, owner=request.user)
        except (services.BatchInputError, QuotaExceeded) as exc:
            form.add_error(None, str(exc))
            return render(request, "batches/batch_new.html", {"form": form, "plan": None})
        if "start" in request.POST:
            try:
                batch = services.batch_start(plan=form.plan, owner=request.user)
            except (services.BatchInputError, QuotaExceeded) as exc:
                form.add_error(None, str(exc))
                return render(request, "batches/batch_new.html", {"form": form, "plan": form.plan})
            messages.success(request, f"Batch {batch.pk} started: {len(form.plan.runs)} runs, up to {batch.max_parallel} at once.")
            return redirect("batches:detail", pk=batch.pk)
        plan = form.plan
    return render(request, "batches/batch_new.html", {"form": form, "plan": plan})


@login_required
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "batches/batch_detail.html", live_context(_visible_batch(request, pk)))


@login_required
def batch_results_csv(request: HttpRequest, pk: int) -> HttpResponse:
    return exports.results_response(_visible_batch(request, pk), "csv")


@login_required
def batch_results_json(request: HttpRequest, pk: int) -> HttpResponse:
    return exports.results_response(_visible_batch(request, pk), "json")


@login_required
def batch_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The page's changing part alone: the page fetches it every few seconds while the batch is open."""
    return render(request, "batches/_batch_live.html", live_context(_visible_batch(request, pk)))


def _steer(request: HttpRequest, pk: int, action, done: str, **params) -> HttpResponse:
    batch = _visible_batch(request, pk)
    try:
        action(batch=batch, **params)
        messages.success(request, done)
    except (services.BatchConflict, services.BatchInputError, QuotaExceeded) as exc:
        messages.error(request, str(exc))
    return redirect(reverse("batches:detail", args=[batch.pk]))


@login_required
@require_POST
def batch_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _steer(request, pk, services.batch_pause, "Paused: no run starts, running runs pause at their next phase.")


@login_required
@require_POST
def batch_resume(request: HttpRequest, pk: int) -> HttpResponse:
    budget = request.POST.get("budget_limit", "").strip()
    try:
        params = {"budget_limit": float(budget)} if budget else {}
    except ValueError:
        messages.error(request, f"The budget must be a number of USD, not {budget!r}.")
        return redirect(reverse("batches:detail", args=[pk]))
    return _steer(request, pk, services.batch_resume, "Resumed.", by=request.user, **params)


@login_required
@require_POST
def batch_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _steer(request, pk, services.batch_cancel, "Cancelled: no run starts again, runs under way are cancelled.")
