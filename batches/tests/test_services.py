"""Batches through their services, runs played in this process: plan, schedule, budget, pause, resume, cancel."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db.models import Sum
from django.utils import timezone

from batches import planning, selectors, services
from batches.models import Batch, BatchRun, BatchStatus
from batches.tests.factories import batch_config, plan_batch, start_batch, play_queued
from engine.testing.fake_llm import FakeLLMServer
from runs.models import CostRecord, Run, RunStatus

# Transactions commit here (runs are handed out on commit); runs publish to the channel layer as they play.
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "channels"] if "channels" in django_settings.DATABASES else ["default"])


def play_all(handed: list, dispatch) -> None:
    """Play handed-out runs one by one, as workers would, until nothing more is handed out."""
    while handed:
        services.batch_run_execute(run_id=handed.pop(0).pk, dispatch=dispatch)


@pytest.fixture
def fake_llm(monkeypatch):
    """Runs that cost money: ai-summit's models priced, answered by the loopback fake server."""
    server = FakeLLMServer().start_in_thread()
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", server.base_url)
    yield server
    server.stop()


def test_a_plan_lists_variations_runs_and_costs():
    plan = plan_batch()
    assert [v.variation.description for v in plan.variations] == ["seed=1", "seed=11"]
    assert [(r.name, r.seed) for r in plan.runs] == [
        ("var-001-run-001", 1), ("var-002-run-001", 11), ("var-001-run-002", 2),
        ("var-002-run-002", 12), ("var-001-run-003", 3), ("var-002-run-003", 13)]
    assert plan.offline and plan.cost_high == 0 and plan.affordable_runs == 6
    summary = plan.summary()
    assert summary["total_runs"] == 6 and summary["variations"][1]["modifications"]["scenario_overrides"] == {"seed": 11}


def test_a_plan_refuses_what_does_not_fit_the_scenario():
    with pytest.raises(services.BatchInputError, match="no actor 'ghost'"):
        plan_batch(batch_config(variations=[{"type": "actor_model", "actor": "ghost", "values": ["m/x"]}]))
    with pytest.raises(services.BatchInputError, match="no scenario 'nowhere'"):
        planning.batch_base_scenario(name="nowhere")
    with pytest.raises(services.BatchInputError, match="runs_per_variation"):
        planning.batch_config_parse(text="experiment_name: x\nbase_scenario: ai-summit\nruns_per_variation: 0\n")
    with pytest.raises(services.BatchInputError, match="not valid YAML"):
        planning.batch_config_parse(text="experiment_name: [x\n")


def test_a_folder_is_a_base_scenario_for_the_terminal(settings):
    folder = settings.SCENARIO_LIBRARY_DIR / "ai-summit"
    base = planning.batch_base_scenario(name=str(folder), folders=True)
    assert base.stored is None and base.slug == "ai-summit"
    with pytest.raises(services.BatchInputError, match="a stored scenario's slug$"):
        planning.batch_base_scenario(name=str(folder))


def test_a_batch_starts_max_parallel_runs_then_one_more_as_each_ends_until_completed():
    handed, most_active = [], []

    def dispatch(run):
        most_active.append(Run.objects.filter(batch_run__isnull=False, status=RunStatus.QUEUED).count())
        handed.append(run)

    batch = start_batch(dispatch=dispatch)
    assert BatchRun.objects.filter(batch=batch).count() == 6
    assert [(r.seed, r.max_turns, r.credit_limit, r.offline) for r in handed] == [(1, 1, 2.0, True), (11, 1, 2.0, True)], "the scenario's own limit"
    play_all(handed, dispatch)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.COMPLETED and batch.finished_at is not None
    assert max(most_active) == 2
    runs = Run.objects.filter(batch_run__batch=batch)
    assert sorted(runs.values_list("seed", flat=True)) == [1, 2, 3, 11, 12, 13]
    assert set(runs.values_list("status", flat=True)) == {RunStatus.COMPLETED}
    progress = selectors.batch_progress(batch=batch)
    assert (progress.total, progress.ended, progress.active, progress.percent) == (6, 6, 0, 100)


def test_the_budget_never_starts_a_run_that_could_exceed_it(fake_llm):
    """Each run may spend its limit ($0.10); the budget ($0.25) counts ended runs at their cost and the rest
    at their limit. Every time runs are handed out, what is committed stays within the budget; the batch
    halts when the next run's limit no longer fits and nothing running could give money back."""
    budget, limit = 0.25, 0.10
    handed, committed_when_handed = [], []

    def dispatch(run):
        progress = selectors.batch_progress(batch=run.batch_run.batch)
        committed_when_handed.append(progress.committed)
        assert progress.committed <= progress.budget_limit + 1e-9, "a run was started that could take the batch past its budget"
        handed.append(run)

    batch = start_batch(batch_config(provider="", budget_limit=budget, cost_per_run_limit=limit), dispatch=dispatch)
    assert [r.credit_limit for r in handed] == [limit, limit]
    play_all(handed, dispatch)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.HALTED and batch.halt_reason.startswith("budget:")
    runs = list(Run.objects.filter(batch_run__batch=batch))
    costs = [CostRecord.objects.filter(run=run).aggregate(total=Sum("cost"))["total"] for run in runs]
    assert all(0 < cost <= limit for cost in costs), "each run stayed within its own limit"
    assert sum(costs) <= budget
    assert 2 < len(runs) < 6, "runs that ended cheaply made room for more, but not for all"
    # Halted exactly because the next run's limit did not fit what was left.
    assert sum(costs) + limit > budget
    assert len(committed_when_handed) == len(runs)

    # More budget: the batch goes on from where it stopped and finishes.
    services.batch_resume(batch=batch, budget_limit=1.0, dispatch=dispatch)
    play_all(handed, dispatch)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.COMPLETED
    assert Run.objects.filter(batch_run__batch=batch, status=RunStatus.COMPLETED).count() == 6


def test_under_a_budget_without_a_per_run_limit_each_run_is_limited_to_its_estimate(fake_llm):
    handed = []
    plan = plan_batch(batch_config(provider="", budget_limit=5.0, runs_per_variation=1))
    worst = plan.variations[0].run.estimate.cost.high
    assert plan.variations[0].reserve == worst > 0
    services.batch_start(plan=plan, dispatch=handed.append)
    assert [run.credit_limit for run in handed] == [worst, worst]


def test_pause_holds_queued_runs_resume_hands_them_out_again_cancel_stops_everything():
    handed = []
    batch = start_batch(dispatch=handed.append)
    first, second = handed
    services.batch_pause(batch=batch)
    assert services.batch_run_execute(run_id=first.pk, dispatch=handed.append) is None, "a paused batch plays nothing"
    assert Run.objects.get(pk=first.pk).status == RunStatus.QUEUED and len(handed) == 2
    with pytest.raises(services.BatchConflict, match="only a running batch"):
        services.batch_pause(batch=batch)

    handed.clear()
    services.batch_resume(batch=batch, dispatch=handed.append)
    assert [run.pk for run in handed] == [first.pk, second.pk], "queued runs handed out again, nothing new"
    services.batch_run_execute(run_id=first.pk, dispatch=handed.append)
    assert Run.objects.get(pk=first.pk).status == RunStatus.COMPLETED

    services.batch_cancel(batch=batch)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.CANCELLED
    statuses = dict(Run.objects.filter(batch_run__batch=batch).values_list("pk", "status"))
    assert statuses[first.pk] == RunStatus.COMPLETED and statuses[second.pk] == RunStatus.CANCELLED
    assert services.batch_schedule(batch_id=batch.pk, dispatch=handed.append) == []
    with pytest.raises(services.BatchConflict, match="already cancelled"):
        services.batch_cancel(batch=batch)
    with pytest.raises(services.BatchConflict, match="only a paused or halted batch"):
        services.batch_resume(batch=batch)


def test_resuming_a_paused_batch_resumes_the_runs_it_paused():
    handed = []
    batch = start_batch(dispatch=handed.append)
    run = handed[0]
    Run.objects.filter(pk=run.pk).update(status=RunStatus.PAUSED, halt_reason="paused on request")
    Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.PAUSED)
    handed.clear()
    services.batch_resume(batch=batch, max_parallel=3, dispatch=handed.append)
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    assert run.pk in [r.pk for r in handed]
    assert len(handed) == 3, "the paused run, the queued one, and one more: three at once now"


def test_keep_going_resumes_crashed_runs_and_follows_runs_ended_elsewhere(settings):
    handed = []
    batch = start_batch(dispatch=handed.append)
    crashed, other = handed
    long_ago = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS + 60)
    Run.objects.filter(pk=crashed.pk).update(status=RunStatus.RUNNING, heartbeat_at=long_ago)
    # The other run was cancelled from its own page: no batch task saw it end.
    Run.objects.filter(pk=other.pk).update(status=RunStatus.CANCELLED)
    handed.clear()
    services.batches_keep_going(dispatch=handed.append)
    assert Run.objects.get(pk=crashed.pk).status == RunStatus.QUEUED
    assert [r.pk for r in handed][0] == crashed.pk and len(handed) == 2, "the crashed run again, and a new one in the free slot"
    batch.refresh_from_db()
    assert batch.status == BatchStatus.RUNNING


def test_a_batch_run_cannot_be_given_more_budget_or_a_second_life_outside_its_batch():
    """The budget holds only if a run never spends more than the share its batch handed it."""
    from runs import services as run_services

    batch = start_batch(batch_config(runs_per_variation=1, max_parallel=1))
    play_queued(batch)
    ended = Run.objects.filter(batch_run__batch=batch).first()
    assert ended.status == RunStatus.COMPLETED
    for changes in ({}, {"credit_limit": 5.0}, {"max_turns": 3}):
        with pytest.raises(run_services.RunConflict, match="belongs to batch"):
            run_services.run_resume(run=ended, **changes)
    Run.objects.filter(pk=ended.pk).update(status=RunStatus.PAUSED)
    with pytest.raises(run_services.RunConflict, match="belongs to batch"):
        run_services.run_resume(run=Run.objects.get(pk=ended.pk), credit_limit=5.0)
    resumed = run_services.run_resume(run=Run.objects.get(pk=ended.pk), enqueue=False)  # as it was: allowed
    assert resumed.status == RunStatus.QUEUED and resumed.credit_limit == ended.credit_limit
