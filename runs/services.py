"""Runs: plan, create, queue, pause, resume, cancel, export. Executing one is `runs.execution.executor`.

Pause and cancel requests reach an executing process through the run's row, read with its heartbeat; a
RUNNING run whose heartbeat is stale has crashed and may be resumed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.db.models.functions import Now

from accounts.quotas import quota_check_room, quota_credit_limit, user_limits
from engine.estimate import CostEstimate, estimate_run_cost
from engine.llm.pricing import ListPrices
from engine.llm.routing import PROVIDER_CHOICES, ProviderChoice, RoutingError, provider_from_environment, with_model
from engine.scenario.folder import Scenario as EngineScenario
from engine.run_names import highest_run_number, run_folder_name
from runs import roles as roles_
from runs import selectors
from runs.errors import RunConflict, RunInputError
from runs.models import ModelCall, Run, RunStatus, RunTag, Turn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """What a run will be, decided before it exists: shown to people (estimate, provider) before they start."""

    config: EngineScenario
    choice: ProviderChoice
    estimate: CostEstimate
    max_turns: int
    credit_limit: float | None
    seed: int
    model: str
    provider: str
    use_cache: bool
    # For a run that calls no model (offline): what it would cost if its models were called, at list prices.
    list_prices: CostEstimate | None = None

    def estimate_summary(self) -> dict:
        """Provider and cost estimate as JSON, low to high: what the API and `estimate_scenario --json` show."""
        estimate = self.estimate

        def span(value) -> dict[str, float]:
            return {"low": value.low, "high": value.high}

        return {
            "provider": self.choice.description,
            "offline": self.choice.offline,
            "turns": self.max_turns,
            "min_turns": estimate.min_turns or self.max_turns,
            "cost": span(estimate.cost),
            "tokens": span(estimate.tokens),
            "calls": estimate.calls,
            "by_actor": {name: span(value) for name, value in estimate.by_actor().items()},
            "by_phase": {name: span(value) for name, value in estimate.by_phase().items()},
            "lines": [{"actor": line.actor, "phase": line.phase, "model": line.model, "calls": span(line.calls),
                       "input_tokens": span(line.input_tokens), "output_tokens": span(line.output_tokens),
                       "cost": span(line.cost)} for line in estimate.lines],
            "credit_limit": self.credit_limit,
            "description": estimate.describe(),
            "list_prices": None if self.list_prices is None else {
                "cost": span(self.list_prices.cost),
                "by_actor": {name: span(value) for name, value in self.list_prices.by_actor().items()},
                "description": list_prices_sentence(self.list_prices),
            },
        }


def run_plan(
    *,
    config: EngineScenario,
    turns: int | None = None,
    credit_limit: float | None = None,
    seed: int | None = None,
    model: str = "",
    provider: str = "",
    use_cache: bool = True,
) -> RunPlan:
    if turns is not None and not 1 <= turns <= 1000:
        raise RunInputError(f"turns must be between 1 and 1000, not {turns}")
    if credit_limit is not None and not (math.isfinite(credit_limit) and credit_limit > 0):
        raise RunInputError(f"the credit limit must be a positive number of USD, not {credit_limit}")
    if provider and provider not in PROVIDER_CHOICES:
        raise RunInputError(f"unknown provider {provider!r}: choose one of {', '.join(PROVIDER_CHOICES)}")
    if model:
        config = with_model(config, model)
    try:
        choice = provider_from_environment(config, provider=provider or None)
    except (RoutingError, ValueError) as exc:
        raise RunInputError(str(exc)) from None
    max_turns = turns or config.config.turns
    return RunPlan(
        config=config,
        choice=choice,
        estimate=estimate_run_cost(config, choice.provider, turns=max_turns),
        max_turns=max_turns,
        credit_limit=credit_limit if credit_limit is not None else config.config.credit_limit,
        seed=config.config.seed if seed is None else seed,
        model=model,
        provider=provider,
        use_cache=use_cache,
        list_prices=estimate_run_cost(config, ListPrices(), turns=max_turns) if choice.offline else None,
    )


def list_prices_sentence(estimate: CostEstimate) -> str:
    """What an offline run would cost with its models called, in one sentence (page, terminal and API alike)."""
    return (f"With these models called, at list prices: ${estimate.cost.low:.4f} to ${estimate.cost.high:.4f} "
            "(offline, the run itself is free)")


def _next_number(slug: str) -> int:
    """One more than any run of this scenario in the database or on disk, so no folder is reused."""
    highest = Run.objects.filter(scenario_slug=slug).aggregate(n=Max("number"))["n"] or 0
    return max(highest, highest_run_number(Path(settings.RUNS_OUTPUT_DIR) / slug)) + 1


def run_create(
    *, plan: RunPlan, slug: str, scenario=None, owner=None, human_seats: Sequence[str] = (),
    human_timeout_minutes: float | None = None, roles: Sequence[roles_.RoleGrant] = (), scenario_roles: bool = True,
) -> Run:
    """The run row, QUEUED, with the scenario frozen into it and the initial world stored as turn 0.
    `human_seats`: actors a person plays (their decisions wait for them); `human_timeout_minutes`: how long
    a seat may keep the run waiting before the model takes it (None: wait). `roles`: parts in the run besides
    the owner's, after those the scenario gives unless `scenario_roles` is off (a branch has its family's; a
    later part for the same user or group replaces an earlier); a player's seats are people's from the start."""
    config = plan.config
    grants = [*(roles_.scenario_grants(config) if scenario_roles else ()), *roles]
    roles_.check_grants([a.short_name for a in config.actors], grants)
    human_seats = list(dict.fromkeys([*human_seats, *roles_.player_seats(grants)]))
    _check_seats(config, human_seats, human_timeout_minutes)
    version = _scenario_version(scenario)
    for _ in range(5):  # two processes may pick the same number at once; the unique constraint decides
        number = _next_number(slug)
        try:
            with transaction.atomic():
                run = Run.objects.create(
                    scenario=scenario,
                    scenario_version=version,
                    scenario_name=config.name,
                    scenario_slug=slug,
                    number=number,
                    snapshot=config.model_dump(mode="json", exclude={"source", "warnings"}),
                    owner=owner,
                    max_turns=plan.max_turns,
                    credit_limit=plan.credit_limit,
                    seed=plan.seed,
                    model_override=plan.model,
                    provider_override=plan.provider,
                    use_cache=plan.use_cache,
                    provider=plan.choice.description,
                    offline=plan.choice.offline,
                    actors=[
                        {"short_name": a.short_name, "name": a.name, "model": a.llm_model,
                         "control": "human" if a.short_name in human_seats else a.control}
                        for a in config.actors
                    ],
                    human_timeout_minutes=human_timeout_minutes,
                    output_dir=str(Path(settings.RUNS_OUTPUT_DIR) / slug / run_folder_name(number)),
                )
                Turn.objects.create(run=run, turn=0, position=0, world_state=config.config.initial_world_state.strip())
                for grant in grants:
                    roles_.give_part(run, grant)
                return run
        except IntegrityError:
            continue
    raise RunConflict(f"could not number a new run of {slug}: too many runs starting at once, try again")


def _scenario_version(scenario) -> int | None:
    """The stored scenario's current version number (recorded now if it has none yet), or None."""
    if scenario is None:
        return None
    from scenarios.services import scenario_record_version

    version = scenario_record_version(scenario=scenario)
    return None if version is None else version.number


def _check_seats(config: EngineScenario, human_seats: Sequence[str], timeout: float | None) -> None:
    known = {a.short_name for a in config.actors}
    unknown = [seat for seat in human_seats if seat not in known]
    if unknown:
        raise RunInputError(f"no actor {', '.join(map(repr, unknown))} in {config.name}: human seats must be among {', '.join(sorted(known))}")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise RunInputError(f"the seat timeout must be a positive number of minutes, not {timeout}")


def run_announce_waiting(*, run_id: int) -> None:
    """Queue the notice that a run's seats started waiting (email, pages' headers: `runs.notifications`)."""
    from runs.tasks import announce_waiting_seats  # tasks import this module

    announce_waiting_seats(run_id)


def run_enqueue(*, run: Run) -> None:
    """A task for any worker to play the run, placed in the queue so that owners take turns."""
    from runs.tasks import execute_run  # tasks import this module

    execute_run(run.pk, priority=selectors.run_queue_priority(run))


def run_plan_for(*, scenario, human_seats: Sequence[str] = (), human_timeout_minutes: float | None = None, **params) -> RunPlan:
    """The plan of a run of a stored scenario; a scenario that no longer validates cannot be run. Seats are
    checked here too, so a start form shows a wrong seat before anything starts."""
    from engine.scenario.errors import ScenarioLoadError
    from scenarios.services import scenario_to_engine

    try:
        config = scenario_to_engine(scenario=scenario)
    except ScenarioLoadError as exc:
        raise RunConflict(f"scenario {scenario.slug} does not validate, so it cannot run: {exc}") from None
    _check_seats(config, human_seats, human_timeout_minutes)
    return run_plan(config=config, **params)


def run_start(
    *, scenario, owner=None, human_seats: Sequence[str] = (), human_timeout_minutes: float | None = None,
    roles: Sequence[roles_.RoleGrant] = (), **params
) -> Run:
    """Create a run of a stored scenario within `owner`'s quota, with `roles` (`run_create`), and hand it to a
    worker."""
    plan = run_plan_for(scenario=scenario, human_seats=human_seats, human_timeout_minutes=human_timeout_minutes, **params)
    return run_submit(plan=plan, slug=scenario.slug, scenario=scenario, owner=owner, credit_limit=params.get("credit_limit"),
                      human_seats=human_seats, human_timeout_minutes=human_timeout_minutes, roles=roles)


def run_submit(
    *, plan: RunPlan, slug: str, scenario=None, owner=None, credit_limit: float | None = None,
    human_seats: Sequence[str] = (), human_timeout_minutes: float | None = None, enqueue: bool = True,
    roles: Sequence[roles_.RoleGrant] = (),
) -> Run:
    """Create a planned run for `owner`, within their quota: QuotaRefused for a `credit_limit` (as they asked for
    it) above their largest, QuotaBusy when they have as many runs under way as they may; without a limit asked
    for, the plan's is capped at their largest. Queued for a worker unless `enqueue` is off (a terminal plays it)."""
    plan = replace(plan, credit_limit=quota_credit_limit(owner, requested=credit_limit, planned=plan.credit_limit))
    with transaction.atomic():
        _check_under_way(owner)
        run = run_create(plan=plan, slug=slug, scenario=scenario, owner=owner, human_seats=human_seats,
                         human_timeout_minutes=human_timeout_minutes, roles=roles)
        if enqueue:
            transaction.on_commit(lambda: run_enqueue(run=run))
    return run


def runs_room(*, owner) -> int | None:
    """How many more runs `owner` may have under way (None: no limit). Their row stays locked until the caller's
    transaction ends (it must be in one): whatever counts their runs under way and then starts one (a start, a
    resume, a batch handing out its runs) takes turns with the others, so two cannot take one last place."""
    if owner is None or not owner.is_authenticated:
        return None
    most = user_limits(owner).max_runs_under_way
    if most is None:
        return None
    get_user_model().objects.select_for_update().filter(pk=owner.pk).exists()
    return most - selectors.runs_under_way(owner=owner)


def _check_under_way(user) -> None:
    """QuotaBusy if `user` has as many runs under way as they may (inside the caller's transaction)."""
    quota_check_room(user, room=runs_room(owner=user))


# ---- control -----------------------------------------------------------------------------------------------
def _stale_before():
    """Heartbeats older than this (database time) belong to dead executors."""
    return Now() - timedelta(seconds=settings.RUN_STALE_SECONDS)


def run_resume(*, run: Run, credit_limit: float | None = None, max_turns: int | None = None, enqueue: bool = True,
               by=None) -> Run:
    """Queue a paused, halted, failed, completed (to more turns) or crashed run to continue from its last
    stored state, its ledger intact. `enqueue=False` leaves it for the caller to execute in-process. A run
    still queued is handed to the queue again (a lost task; a second task finds it claimed and does nothing).
    `by`: the person asking, whose quota the new credit limit and the run going back under way must fit (a run
    of its own whose limit is above their largest now, set before a quota, goes on at their largest)."""
    if credit_limit is not None and not (math.isfinite(credit_limit) and credit_limit > 0):
        raise RunInputError(f"the credit limit must be a positive number of USD, not {credit_limit}")
    if by is not None:
        allowed = quota_credit_limit(by, requested=credit_limit, planned=run.credit_limit)
        if credit_limit is None and allowed != run.credit_limit and getattr(run, "batch_run", None) is None:
            credit_limit = allowed  # a batch's run keeps the share of its budget it was given
    with transaction.atomic():
        if by is not None and run.status not in selectors.UNDER_WAY:  # not under way yet
            _check_under_way(by)
        return _resume(run, credit_limit=credit_limit, max_turns=max_turns, enqueue=enqueue)


def _resume(run: Run, *, credit_limit: float | None, max_turns: int | None, enqueue: bool) -> Run:
    _check_batch_budget(run, credit_limit=credit_limit, max_turns=max_turns)
    new_turns = max_turns if max_turns is not None else run.max_turns
    if max_turns is not None and max_turns <= run.turn:
        raise RunInputError(f"run {run.pk} has played {run.turn} turns: the end turn must be after that, not {max_turns}")
    if run.status == RunStatus.COMPLETED and new_turns <= run.turn:
        raise RunConflict(f"run {run.pk} has played all {run.max_turns} turns: resume it with more turns")
    changes = {"status": RunStatus.QUEUED, "max_turns": new_turns}
    if credit_limit is not None:
        changes["credit_limit"] = credit_limit
    if run.status == RunStatus.QUEUED:
        updated = Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(**changes)
    else:
        # The conditions are checked by the UPDATE itself, on database time: a run whose worker beats
        # again at this moment is no longer crashed, and is not taken from it.
        # A run at rest only once its executor has let go (claim released; for a waiting run, waiting_since
        # set with it), or its heartbeat went stale (it died letting go): see _let_go and runs.seats.
        let_go = Q(claim="") | Q(heartbeat_at__lt=_stale_before()) | Q(heartbeat_at__isnull=True)
        resumable = Q(let_go, status__in=[s.value for s in selectors.RESUMABLE if s != RunStatus.WAITING_FOR_HUMAN]) | Q(
            status=RunStatus.WAITING_FOR_HUMAN, waiting_since__isnull=False) | Q(
            status=RunStatus.RUNNING, heartbeat_at__lt=_stale_before()
        ) | Q(status=RunStatus.RUNNING, heartbeat_at__isnull=True)
        updated = Run.objects.filter(resumable, pk=run.pk).update(claim="", **changes)
    if not updated:
        run.refresh_from_db()
        status = selectors.run_display_status(run)
        if run.claim and run.status in [s.value for s in selectors.RESUMABLE]:
            raise RunConflict(f"run {run.pk} is {status} and still storing its last events; try again in a moment")
        raise RunConflict(f"run {run.pk} is {status}: only a paused, halted, failed, completed or crashed run can be resumed")
    run.refresh_from_db()
    if enqueue:
        transaction.on_commit(lambda: run_enqueue(run=run))
    return run


def _check_batch_budget(run: Run, *, credit_limit: float | None, max_turns: int | None) -> None:
    """A run of a batch holds a share of the batch's budget (its credit limit) only while it is under way:
    it may go on as it was (paused, crashed, waiting for a seat), but a new limit, more turns, or a second
    life after it ended would spend what the batch has handed to other runs. Those go through the batch."""
    batch_run = getattr(run, "batch_run", None)  # set by the batches app, when it is installed
    if batch_run is None:
        return
    under_way = run.status in (RunStatus.PAUSED, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_FOR_HUMAN)
    if credit_limit is not None or max_turns is not None or not under_way:
        raise RunConflict(f"run {run.pk} belongs to batch {batch_run.batch_id}, whose budget it shares: resume or "
                          "extend the batch instead (a new limit, more turns or a finished run's restart could pass it)")


def run_pause(*, run: Run) -> Run:
    """Ask the executing process to stop at the next phase boundary (it reads the request with its heartbeat)."""
    live = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, heartbeat_at__gte=_stale_before())
    if not live.update(pause_requested=True):
        run.refresh_from_db()
        raise RunConflict(f"run {run.pk} is {selectors.run_display_status(run)}: only a running run can be paused")
    run.refresh_from_db()
    return run


def run_cancel(*, run: Run) -> Run:
    """A run that is not executing stops now; an executing one is asked to (its worker sees it at the next
    heartbeat). The status conditions are in the UPDATEs, so a worker claiming the run meanwhile is asked."""
    idle = Q(status__in=[RunStatus.QUEUED, RunStatus.PAUSED, RunStatus.HALTED, RunStatus.FAILED, RunStatus.WAITING_FOR_HUMAN]) | Q(
        status=RunStatus.RUNNING, heartbeat_at__lt=_stale_before()
    )
    stopped = Run.objects.filter(idle, pk=run.pk).update(
        status=RunStatus.CANCELLED, claim="", finished_at=Now(), halt_reason="cancelled on request"
    )
    if not stopped and not Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(cancel_requested=True):
        run.refresh_from_db()
        raise RunConflict(f"run {run.pk} is already {run.status}")
    run.refresh_from_db()
    return run


def calls_prune(*, days: int | None = None) -> int:
    """Delete the call traces of runs that finished more than `days` days ago (default: the site's
    CALL_TRACE_DAYS; 0 keeps them as long as their run). Their ledger lines and events stay. Returns how many
    traces were deleted."""
    days = settings.CALL_TRACE_DAYS if days is None else days
    if days <= 0:
        return 0
    old = ModelCall.objects.filter(run__finished_at__lt=Now() - timedelta(days=days))
    deleted, _ = old.delete()
    if deleted:
        logger.info("deleted %s call traces of runs finished more than %s days ago", deleted, days)
    return deleted


MAX_TAGS, TAG_LENGTH, NOTES_LENGTH = 20, 64, 20_000


def run_annotate(*, run: Run, tags: Sequence[str] | None = None, notes: str | None = None) -> Run:
    """Set a run's tags (all of them: the list replaces the old one) and its notes; None leaves either as it is.
    A tag is 1-64 characters of one line, a run has at most 20; the notes at most 20,000 characters."""
    if tags is not None:
        names = list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
        if len(names) > MAX_TAGS:
            raise RunInputError(f"tags: {len(names)} given, at most {MAX_TAGS} a run")
        for name in names:
            if len(name) > TAG_LENGTH or any(ord(c) < 32 for c in name):
                raise RunInputError(f"tags: {name[:40]!r} is not a tag: one line of at most {TAG_LENGTH} characters")
    if notes is not None and (len(notes) > NOTES_LENGTH or "\x00" in notes):
        raise RunInputError(f"notes: at most {NOTES_LENGTH} characters, with no NUL")
    with transaction.atomic():
        if tags is not None:
            run.tags.exclude(name__in=names).delete()
            have = set(run.tags.values_list("name", flat=True))
            RunTag.objects.bulk_create([RunTag(run=run, name=name) for name in names if name not in have])
        if notes is not None:
            run.notes = notes
            run.save(update_fields=["notes"])
    return run
