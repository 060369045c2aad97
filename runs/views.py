"""Run pages and endpoints: the run list, the run page (its context from `runs.live`), controls, downloads,
runs compared side by side."""

from __future__ import annotations


from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.quotas import QuotaExceeded
from runs.downloads import markdown_zip_response, state_json_response
from runs.rules import Seat
from runs import branching, listing, notifications, record_selectors, seats, selectors, services
from runs.comparison import MAX_RUNS as MAX_COMPARED
from runs.comparison import ComparisonError, RunNotFound, diff_lines, run_comparison
from runs.forms import CallFilterForm, RunBranchForm, RunNotesForm, RunTableForm, SeatDecisionForm
from runs.roles import grant_to
from runs.live import page_names, polled_messages, run_page_context
from runs.models import Run, RunStatus
from runs.reading import reader_of
from runs.report import report_html
from runs.search import MAX_HITS, run_search

RUNS_PER_PAGE = 50
# The seat page's fields after the replies, in the order a decision is thought through.
SEAT_FIELDS = (
    ("long_term_goals", "Long-term goals", "What your side wants from the whole scenario, one a line.", 3),
    ("short_term_priorities", "Priorities this turn", "What you push for now, one a line.", 3),
    ("reasoning", "Reasoning", "Why: how you read the situation and the others' moves. Other players do not see it (the facilitators do).", 4),
    ("action", "Action", "What you do this turn, concretely, in your own voice: everyone sees it.", 4),
)
# A notice about a run's status ("queued to resume"): the run page removes it once the status moves on.
RUN_STATUS = "run-status"
CALLS_PER_PAGE = 20


def _visible_run(request: HttpRequest, pk: int, *, steer: bool = False) -> Run:
    """The run, if this person may see it (and steer it, with `steer`: else 403). A run they have no part in is
    a 404, not a 403: its existence is private."""
    run = selectors.run_get(run_id=pk)
    if run is None or not request.user.has_perm("runs.see_run", run):
        raise Http404("no such run")
    if steer and not request.user.has_perm("runs.steer_run", run):
        raise PermissionDenied("only the run's owner, a facilitator or staff may do this")
    return run


def _detail_url(run: Run) -> str:
    return reverse("runs:detail", args=[run.pk])


def _list_row(run: Run) -> dict:
    percent = round(100 * run.turn / run.max_turns) if run.max_turns else 0
    return {
        "run": run, "status": selectors.run_display_status(run), "progress": selectors.run_progress(run),
        "percent": min(100, percent),
    }


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    """The run table: filtered, sorted, paged; "compare these" compares the runs of the page shown."""
    scenarios = sorted(selectors.runs_readable(request.user).order_by().values_list("scenario_slug", "scenario_name").distinct(),
                       key=lambda s: s[1])
    form = RunTableForm(request.GET, scenarios=scenarios, tags=listing.tags_in_use(request.user), owners=request.user.is_staff)
    form.is_valid()
    runs = listing.runs_listed(user=request.user, filters=form.filters())
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    shown = [run.pk for run in page.object_list][:MAX_COMPARED]
    context = {"page": page, "rows": [_list_row(run) for run in page.object_list], "show_owner": request.user.is_staff,
               "form": form, "query": query.urlencode(), "filtered": any(v for k, v in request.GET.items() if k != "page"),
               "compare_shown": f"{reverse('runs:compare')}?" + "&".join(f"ids={pk}" for pk in shown) if len(shown) > 1 else ""}
    return render(request, "runs/run_list.html", context)


@login_required
@require_POST
def run_notes(request: HttpRequest, pk: int) -> HttpResponse:
    """Tags (comma-separated) and notes, from the run page."""
    run = _visible_run(request, pk, steer=True)
    form = RunNotesForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()))
        return redirect(_detail_url(run))
    try:
        services.run_annotate(run=run, tags=form.cleaned_data["tags"].split(","), notes=form.cleaned_data["notes"])
        messages.success(request, f"{run}: tags and notes saved.")
    except services.RunInputError as exc:
        messages.error(request, str(exc))
    return redirect(_detail_url(run))


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk)
    context = run_page_context(run=run, reader=reader_of(run, request.user))
    # The feed shown for one actor or one turn (`?actor=`, `?turn=`); the page's script does the same live.
    actor, turn = request.GET.get("actor", ""), request.GET.get("turn", "")
    context["filter_actor"] = actor if actor in context["names"] else ""
    context["filter_turn"] = int(turn) if turn.isascii() and turn.isdigit() and len(turn) < 5 and 1 <= int(turn) <= run.max_turns else None
    context["turn_numbers"] = range(1, run.max_turns + 1)
    return render(request, "runs/run_detail.html", context)


@login_required
def run_calls(request: HttpRequest, pk: int) -> HttpResponse:
    """The run's model calls, filtered: what each was sent and answered (the full view's)."""
    run = _visible_run(request, pk)
    if not reader_of(run, request.user).viewpoint.sees_calls:
        raise PermissionDenied("the model calls hold every actor's secrets: only the full view of the run shows them")
    names = page_names(run)
    form = CallFilterForm(request.GET, actors=names)
    form.is_valid()
    filters = form.filters()  # those it could read: a filter it could not is said on the page, not applied
    page = Paginator(record_selectors.run_calls(run, **filters), CALLS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "runs/calls.html", {"run": run, "form": form, "page": page, "names": names,
                                               "filtered": bool(filters), "query": query.urlencode(),
                                               "traced": settings.CALL_TRACES, "retention_days": settings.CALL_TRACE_DAYS})


@login_required
def run_live_events(request: HttpRequest, pk: int) -> HttpResponse:
    """The page's messages of the stored events after `?after=SEQ`, and the status: what the run page polls
    when it cannot hold a socket."""
    run = _visible_run(request, pk)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    response = HttpResponse(polled_messages(run=run, after=after, reader=reader_of(run, request.user), user=request.user),
                            content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def _optional_number(request: HttpRequest, name: str, kind: type) -> float | int | None:
    value = request.POST.get(name, "").strip()
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise services.RunInputError(f"{name.replace('_', ' ')} must be a number, not {value!r}") from None


@login_required
@require_POST
def run_pause(request: HttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk, steer=True)
    try:
        services.run_pause(run=run)
        messages.success(request, f"{run}: pausing at the next phase boundary.", extra_tags=RUN_STATUS)
    except services.RunConflict as exc:
        messages.error(request, str(exc))
    return redirect(_detail_url(run))


@login_required
@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    """Optional `credit_limit` (USD) and `end_turn` (play up to and including this turn)."""
    run = _visible_run(request, pk, steer=True)
    try:
        credit_limit = _optional_number(request, "credit_limit", float)
        end_turn = _optional_number(request, "end_turn", int)
        services.run_resume(run=run, credit_limit=credit_limit, max_turns=end_turn, by=request.user)
        messages.success(request, f"{run}: queued to resume.", extra_tags=RUN_STATUS)
    except (services.RunConflict, services.RunInputError, QuotaExceeded) as exc:
        messages.error(request, str(exc))
    return redirect(_detail_url(run))


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk, steer=True)
    try:
        run = services.run_cancel(run=run)
        # An idle run stops at once; an executing one stops when its worker next reads the request.
        messages.success(request, f"{run}: cancelled." if run.status == RunStatus.CANCELLED else f"{run}: cancel requested.",
                         extra_tags=RUN_STATUS)
    except services.RunConflict as exc:
        messages.error(request, str(exc))
    return redirect(_detail_url(run))


@login_required
def run_markdown_zip(request: HttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk)
    return markdown_zip_response(run, reader_of(run, request.user).viewpoint)


@login_required
def run_search_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Messages, decisions and worlds of the run holding `?q=`, linked to where they are on the run page."""
    run = _visible_run(request, pk)
    query = request.GET.get("q", "")[:200].replace("\x00", "")
    hits = run_search(run=run, viewpoint=reader_of(run, request.user).viewpoint, query=query)
    return render(request, "runs/search.html", {"run": run, "query": query, "hits": hits, "names": page_names(run),
                                                "limit": MAX_HITS})


@login_required
def run_report(request: HttpRequest, pk: int) -> HttpResponse:
    """The after-action report: one HTML file that opens offline and prints (as the reader may know the run)."""
    run = _visible_run(request, pk)
    response = HttpResponse(report_html(run=run, reader=reader_of(run, request.user)), content_type="text/html; charset=utf-8")
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="{run.file_stem}-report.html"'
    return response


@login_required
def run_state_json(request: HttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk)
    return state_json_response(run, reader_of(run, request.user).viewpoint)


# ---- comparison (runs.comparison): two or more runs side by side ---------------------------------------------
def _whole_numbers(values: list[str], name: str) -> list[int]:
    numbers = []
    for value in filter(str.strip, values):
        try:
            numbers.append(int(value))
        except ValueError:
            raise ComparisonError(f"{name}: {value[:40]!r} is not a whole number.", field=name) from None
    return numbers


@login_required
def run_compare(request: HttpRequest) -> HttpResponse:
    """`?ids=1&ids=2[&turn=N]`: the runs' costs, metrics over turns, decisions at turn N, final-world diffs.
    A run this person may not see is "no run", as on its own page."""
    try:
        ids = _whole_numbers(request.GET.getlist("ids"), "ids")
        turns = _whole_numbers(request.GET.getlist("turn")[:1], "turn")
        comparison = run_comparison(run_ids=ids, turn=turns[0] if turns else None,
                                    among=selectors.runs_for(request.user),
                                    viewpoint_of=lambda run: reader_of(run, request.user).viewpoint)
    except ComparisonError as exc:
        status = 404 if isinstance(exc, RunNotFound) else 400
        return render(request, "runs/compare.html", {"problem": str(exc), "max_runs": MAX_COMPARED}, status=status)
    context = {
        "comparison": comparison,
        "runs": comparison.runs,
        "cost_tables": [("actor", comparison.cost_rows("actor")), ("phase", comparison.cost_rows("phase"))],
        "charts": comparison.metric_charts(),
        "turns": range(1, comparison.last_turn + 1),
        "world_diffs": [(world, diff_lines(world.diff)) for world in comparison.world_diffs],
    }
    return render(request, "runs/compare.html", context)


# ---- branching -------------------------------------------------------------------------------------------------
@login_required
@require_POST
def run_branch(request: HttpRequest, pk: int) -> HttpResponse:
    """A new run from a completed turn of this one, with the changes of the branch form; opens the branch."""
    run = _visible_run(request, pk, steer=True)
    form = RunBranchForm(request.POST, run=run)
    if not form.is_valid():
        problems = "; ".join(f"{name.replace('_', ' ')}: {' '.join(errors)}" for name, errors in form.errors.items())
        messages.error(request, f"{run}: could not branch ({problems}).")
        return redirect(_detail_url(run))
    try:
        child = branching.run_branch(run=run, at_turn=form.cleaned_data["at_turn"], intervention=form.intervention(),
                                     owner=request.user, start=form.cleaned_data["start"])
    except (services.RunConflict, services.RunInputError, QuotaExceeded) as exc:
        messages.error(request, f"{run}: could not branch: {exc}")
        return redirect(_detail_url(run))
    started = "queued for a worker" if child.status == RunStatus.QUEUED else "paused, ready to start"
    messages.success(request, f"{child}: branched from {run} at turn {child.branch_turn}, {started}.", extra_tags=RUN_STATUS)
    return redirect(_detail_url(child))


# ---- human seats (runs.seats): the seat's page, taking a seat and handing it back ------------------------------
@login_required
def seat_detail(request: HttpRequest, pk: int, actor: str) -> HttpResponse:
    """What the model would have read in this seat, and the form for the person's decision."""
    run = _visible_run(request, pk)
    if not request.user.has_perm("runs.decide_for_seat", Seat(run, actor)):
        raise PermissionDenied(f"the seat {actor} is not yours to play")
    try:
        view = seats.seat_view_for(run=run, actor=actor)
    except (services.RunConflict, services.RunInputError) as exc:
        messages.info(request, str(exc))
        return redirect(_detail_url(run))
    form = SeatDecisionForm(request.POST if request.method == "POST" else None, proposals=view.proposals)
    problems: dict[str, str] = {}
    if request.method == "POST":
        if form.is_valid():
            try:
                seats.seat_decide(run=run, actor=actor, by=request.user, **form.decision())
                messages.success(request, f"Your decision for {view.actor_name} is recorded; the run goes on.")
                return redirect(_detail_url(run))
            except seats.SeatDecisionError as exc:
                problems = exc.problems
            except (services.RunConflict, services.RunInputError) as exc:
                messages.error(request, str(exc))
                return redirect(_detail_url(run))
        else:
            problems = {name.replace("reply-", "replies.", 1): " ".join(errors) for name, errors in form.errors.items()}
    names = {a["short_name"]: a["name"] for a in run.actors}
    # What the form starts from: what was sent back (a refused decision), else where the actor stands.
    filled = request.POST if request.method == "POST" else {
        "long_term_goals": "\n".join(view.long_term_goals), "short_term_priorities": "\n".join(view.short_term_priorities)}
    fields = [{"name": name, "label": label, "hint": hint, "rows": rows, "value": filled.get(name, ""),
               "problem": problems.get(name, "")} for name, label, hint, rows in SEAT_FIELDS]
    context = {"run": run, "view": view, "names": names, "problems": problems, "fields": fields,
               "proposals": [{"message": p, "sender": names.get(p.sender, p.sender), "field": f"reply-{p.id}",
                              "value": request.POST.get(f"reply-{p.id}", ""), "problem": problems.get(f"replies.{p.id}", "")}
                             for p in view.proposals]}
    return render(request, "runs/seat.html", context, status=400 if problems else 200)


@login_required
@require_POST
def seat_control(request: HttpRequest, pk: int, actor: str) -> HttpResponse:
    """`control=human` takes the seat over, `control=ai` hands it back to the model."""
    run = _visible_run(request, pk, steer=True)
    control = request.POST.get("control", "")
    try:
        seats.seat_set_control(run=run, actor=actor, control=control,
                               reason=f"{'taken over' if control == 'human' else 'handed back'} by {request.user.get_username()}")
        messages.success(request, f"{actor}: {'your seat from the next decision' if control == 'human' else 'played by the model again'}.")
    except (services.RunConflict, services.RunInputError) as exc:
        messages.error(request, str(exc))
    return redirect(_detail_url(run))


@login_required
@require_POST
def seat_nudge(request: HttpRequest, pk: int, actor: str) -> HttpResponse:
    """Tell the people of a waiting seat again (email and their pages' headers)."""
    run = _visible_run(request, pk, steer=True)
    try:
        told = seats.seat_nudge(run=run, actor=actor)
    except services.RunInputError as exc:
        messages.error(request, str(exc))
        return redirect(_detail_url(run))
    if told:
        messages.success(request, f"{actor}: reminded {', '.join(told)}.")
    else:
        messages.info(request, f"{actor}: the run is not waiting for this seat, so nobody was reminded.")
    return redirect(_detail_url(run))


@login_required
@require_POST
def seat_assign(request: HttpRequest, pk: int, actor: str) -> HttpResponse:
    """`person` (a username or group:<name>) plays the seat from the next decision."""
    run = _visible_run(request, pk, steer=True)
    person = request.POST.get("person", "").strip()
    try:
        seats.seat_assign(run=run, actor=actor, to=grant_to(person, "player", seats=[actor]))
        messages.success(request, f"{actor}: played by {person} from the next decision.")
    except (services.RunConflict, services.RunInputError) as exc:
        messages.error(request, f"{actor}: {exc}")
    return redirect(_detail_url(run))


@login_required
def my_seats(request: HttpRequest) -> HttpResponse:
    """Every seat waiting for the signed-in person, across runs: how long it has waited, its deadline."""
    return render(request, "runs/my_seats.html", {"seats": notifications.seats_waiting_for(request.user)})


# ---- people with a part in the run (runs.roles) -----------------------------------------------------------------
@login_required
@require_POST
def role_grant(request: HttpRequest, pk: int) -> HttpResponse:
    """Give `person` (a username or group:<name>) a part: `role`, a player's `seats`, an observer's `view`."""
    run = _visible_run(request, pk, steer=True)
    person = request.POST.get("person", "").strip()
    chosen = [seat.strip() for seat in request.POST.get("seats", "").split(",") if seat.strip()]
    try:
        grant = grant_to(person, request.POST.get("role", ""), seats=chosen, view=request.POST.get("view") or None)
        part = seats.run_role_grant(run=run, grant=grant)
        messages.success(request, f"{person}: {part.role} of this run.")
    except (services.RunConflict, services.RunInputError) as exc:
        messages.error(request, f"{person or 'nobody'}: {exc}")
    return redirect(_detail_url(run))


@login_required
@require_POST
def role_withdraw(request: HttpRequest, pk: int, role_id: int) -> HttpResponse:
    run = _visible_run(request, pk, steer=True)
    part = selectors.run_role(run=run, role_id=role_id)
    if part is None:
        raise Http404("no such part")
    seats.run_role_withdraw(part=part)
    messages.success(request, f"{part}: taken back.")
    return redirect(_detail_url(run))
