"""The workers' queue is fair between people: one user's big batch does not make another's run wait for more
than one run to end (real `run_huey` workers; the queue's priorities on SQLite and on Redis)."""

import pytest
from django.contrib.auth.models import User

from accounts.models import Quota
from batches import services
from batches.tests.factories import batch_config, plan_batch
from runs import services as run_services
from runs.models import Run, RunStatus
from runs.tests.workers import start_worker, stop, wait_for
from scenarios.selectors import scenario_get
from scenarios.services import scenario_import_library

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.both_profiles]


def test_another_users_run_starts_after_at_most_one_run_of_a_64_run_batch():
    scenario_import_library()
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    Quota.objects.create(user=alice, max_batch_parallel=64, max_runs_under_way=None)  # a big allowance
    batch = services.batch_start(plan=plan_batch(batch_config(runs_per_variation=32, max_parallel=64)), owner=alice)
    assert Run.objects.filter(batch_run__batch=batch, status=RunStatus.QUEUED).count() == 64, "all 64 queued"
    bobs = run_services.run_start(scenario=scenario_get(slug="ai-summit"), owner=bob, turns=1, provider="offline")
    worker = start_worker()  # one worker playing one run at a time: the queue's order decides everything
    try:
        wait_for(lambda: Run.objects.get(pk=bobs.pk).status == RunStatus.COMPLETED, timeout=90, what="bob's run to finish")
    finally:
        try:
            services.batch_cancel(batch=batch)  # the rest of the batch is not the point
        except services.BatchConflict:
            pass  # it ended already
        log = stop(worker)
    bobs.refresh_from_db()
    alices = Run.objects.filter(batch_run__batch=batch, finished_at__isnull=False, status=RunStatus.COMPLETED)
    ended_first = [run for run in alices if run.finished_at <= bobs.started_at]
    assert len(ended_first) <= 1, f"{len(ended_first)} of alice's runs ended before bob's started; {log[-500:]}"
