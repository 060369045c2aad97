"""Quotas: which limits apply to whom, and every way of starting something honours them with a clear 403/409 in
the one error shape (API), a message (pages) or exit 2 (the terminal acting for a user)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from ninja.testing import TestClient

from accounts.models import Quota
from accounts.quotas import UNLIMITED, Limits, user_limits
from batches.models import Batch
from runs import selectors as run_selectors
from runs import services as run_services
from runs.execution import executor
from runs.models import Run, RunStatus
from runs.tests.factories import make_run
from scenariolab_site.api import api
from scenarios.services import scenario_import_library

pytestmark = pytest.mark.django_db
client = TestClient(api)
BATCH = {
    "experiment_name": "Seed study", "base_scenario": "ai-summit", "turns": 1, "provider": "offline",
    "variations": [{"type": "scenario_parameter", "parameter": "seed", "values": [1, 11]}],
    "runs_per_variation": 3, "max_parallel": 2,
}


@pytest.fixture(autouse=True)
def library():
    scenario_import_library()


@pytest.fixture
def researcher():
    return User.objects.create_user("researcher", password="pw")


def assert_refused(response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and set(body) == {"code", "message", "fields"}, body
    for word in words:
        assert word in body["message"], body["message"]


# ---- who gets which limits -------------------------------------------------------------------------------------
def test_a_users_own_quota_wins_then_the_most_generous_group_then_the_sites_defaults(settings, researcher):
    settings.QUOTA_DEFAULTS = {**settings.QUOTA_DEFAULTS, "max_credit_limit": 10.0}
    assert user_limits(researcher).max_credit_limit == 10.0 and "default" in user_limits(researcher).source
    small, big = Group.objects.create(name="students"), Group.objects.create(name="faculty")
    researcher.groups.add(small, big)
    Quota.objects.create(group=small, max_credit_limit=2, max_runs_under_way=2, priority=0)
    Quota.objects.create(group=big, max_credit_limit=25, max_runs_under_way=None, priority=3)
    merged = user_limits(researcher)
    assert (merged.max_credit_limit, merged.max_runs_under_way, merged.priority) == (25, None, 3), "empty is no limit"
    Quota.objects.create(user=researcher, max_credit_limit=1)
    assert user_limits(researcher).max_credit_limit == 1 and user_limits(researcher).max_runs_under_way is None


def test_staff_are_unlimited_unless_a_quota_names_them(settings):
    staff = User.objects.create_user("chair", is_staff=True)
    assert user_limits(staff) == Limits(source="staff") and user_limits(None) == UNLIMITED
    Quota.objects.create(user=staff, max_credit_limit=3)
    assert user_limits(staff).max_credit_limit == 3
    settings.QUOTA_STAFF_UNLIMITED = False
    other = User.objects.create_user("other-staff", is_staff=True)
    assert user_limits(other).max_credit_limit == settings.QUOTA_DEFAULTS["max_credit_limit"]


# ---- runs ---------------------------------------------------------------------------------------------------------
def test_a_credit_limit_above_the_largest_is_refused_and_none_means_the_largest(researcher):
    Quota.objects.create(user=researcher, max_credit_limit=2)
    huge = client.post("/runs/", json={"scenario": "ai-summit", "turns": 1, "credit_limit": 1e300}, user=researcher)
    assert_refused(huge, 403, "quota_exceeded", "$2.00", "researcher's quota")
    assert not Run.objects.exists()
    fine = client.post("/runs/", json={"scenario": "ai-summit", "turns": 1}, user=researcher)
    assert fine.status_code == 201 and Run.objects.get().credit_limit == 2


def test_runs_under_way_at_once_are_limited_and_a_refusal_is_a_409(researcher):
    Quota.objects.create(user=researcher, max_runs_under_way=2)
    for _ in range(2):
        assert client.post("/runs/", json={"scenario": "ai-summit", "turns": 1}, user=researcher).status_code == 201
    third = client.post("/runs/", json={"scenario": "ai-summit", "turns": 1}, user=researcher)
    assert_refused(third, 409, "quota_busy", "2 run(s) queued, running or waiting for a person", "wait for one to end")
    first = Run.objects.order_by("pk").first()
    run_services.run_cancel(run=first)
    assert client.post("/runs/", json={"scenario": "ai-summit", "turns": 1}, user=researcher).status_code == 201
    assert run_selectors.runs_under_way(owner=researcher) == 2


def test_resuming_counts_as_starting(researcher):
    Quota.objects.create(user=researcher, max_runs_under_way=1, max_credit_limit=5)
    paused = executor.run_execute(run_id=make_run(turns=1, owner=researcher).pk)
    Run.objects.filter(pk=paused.pk).update(status=RunStatus.PAUSED)
    client.post("/runs/", json={"scenario": "ai-summit", "turns": 1}, user=researcher)
    assert_refused(client.post(f"/runs/{paused.pk}/resume", json={"end_turn": 3}, user=researcher), 409, "quota_busy")
    Run.objects.filter(status=RunStatus.QUEUED).update(status=RunStatus.CANCELLED)
    assert_refused(client.post(f"/runs/{paused.pk}/resume", json={"credit_limit": 50, "end_turn": 3}, user=researcher),
                   403, "quota_exceeded", "$50.00")
    assert client.post(f"/runs/{paused.pk}/resume", json={"credit_limit": 4, "end_turn": 3}, user=researcher).status_code == 200


def test_the_start_page_says_why_and_starts_nothing(researcher):
    Quota.objects.create(user=researcher, max_credit_limit=1)
    browser = Client()
    browser.force_login(researcher)
    page = browser.post("/scenarios/ai-summit/", {"turns": 1, "credit_limit": 5, "use_cache": "on", "start": "1"})
    assert page.status_code == 200 and "above $1.00, the largest" in page.content.decode()
    assert not Run.objects.exists()


def test_the_terminal_acting_for_a_user_honours_their_quota(researcher):
    Quota.objects.create(user=researcher, max_credit_limit=1)
    with pytest.raises(CommandError, match="above \\$1.00") as refused:
        call_command("run_scenario", "ai-summit", "--as", "researcher", "--credit-limit", "5", "--background")
    assert refused.value.returncode == 2 and not Run.objects.exists()
    call_command("run_scenario", "ai-summit", "--as", "researcher", "--turns", "1", "--background")
    assert Run.objects.get().owner == researcher and Run.objects.get().credit_limit == 1
    with pytest.raises(CommandError, match="no such user"):
        call_command("run_scenario", "ai-summit", "--as", "nobody", "--background")


# ---- batches ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    ({"runs_per_variation": 60}, ["120 runs (at most 100)"]),
    ({"max_parallel": 64}, ["max_parallel 64 (at most 4)"]),
    ({"budget_limit": 1e6}, ["a budget of $1,000,000.00 (at most $50.00)"]),
    ({"cost_per_run_limit": 40, "budget_limit": 45}, ["$40.00 is above $10.00"]),
])
def test_a_batch_larger_than_the_quota_is_refused_at_plan_and_start(researcher, change, words):
    Quota.objects.create(user=researcher, max_batch_runs=100, max_batch_parallel=4, max_batch_budget=50, max_credit_limit=10)
    for url in ("/batches/plan", "/batches/"):
        assert_refused(client.post(url, json={**BATCH, **change}, user=researcher), 403, "quota_exceeded", *words)
    assert not Batch.objects.exists() and not Run.objects.exists()


def test_a_batch_without_a_budget_gets_the_largest_and_its_runs_credit_limits_within_the_largest(researcher):
    Quota.objects.create(user=researcher, max_batch_budget=20, max_credit_limit=3, max_batch_parallel=4)
    response = client.post("/batches/", json=BATCH, user=researcher)
    assert response.status_code == 201, response.content
    batch = Batch.objects.get()
    assert batch.budget_limit == 20
    limits = [run.credit_limit for run in Run.objects.filter(batch_run__batch=batch)]
    assert limits and all(limit is not None and limit <= 3 for limit in limits), limits
    bigger = client.post(f"/batches/{batch.pk}/pause", user=researcher)
    assert bigger.status_code == 200
    assert_refused(client.post(f"/batches/{batch.pk}/resume", json={"budget_limit": 500}, user=researcher),
                   403, "quota_exceeded", "$500.00")


def test_a_batch_starts_no_more_runs_than_its_owner_may_have_under_way(researcher):
    Quota.objects.create(user=researcher, max_runs_under_way=1, max_batch_parallel=4)
    response = client.post("/batches/", json={**BATCH, "max_parallel": 4}, user=researcher)
    assert response.status_code == 201
    assert Run.objects.filter(owner=researcher, status=RunStatus.QUEUED).count() == 1


def test_a_higher_priority_puts_a_users_runs_first_in_the_queue(researcher):
    boss = User.objects.create_user("boss")
    Quota.objects.create(user=boss, priority=1)
    mine = [make_run(turns=1, owner=researcher) for _ in range(3)]
    theirs = [make_run(turns=1, owner=boss) for _ in range(3)]
    assert [run_selectors.run_queue_priority(run) for run in mine] == [0, -1, -2], "behind the owner's own runs"
    assert min(run_selectors.run_queue_priority(run) for run in theirs) > 0


def test_a_run_waiting_for_a_person_counts_as_under_way(researcher):
    """It goes back to the queue the moment the person decides: starting another in the meantime would let the
    user's runs under way pass the quota when the seats are answered."""
    Quota.objects.create(user=researcher, max_runs_under_way=1)
    waiting = executor.run_execute(run_id=make_run(turns=1, owner=researcher, human_seats=("norvale",)).pk)
    assert waiting.status == RunStatus.WAITING_FOR_HUMAN
    assert_refused(client.post("/runs/", json={"scenario": "ai-summit", "turns": 1}, user=researcher), 409, "quota_busy")


def test_a_resumed_batch_hands_its_paused_runs_back_only_within_the_owners_room(researcher):
    from batches import services as batch_services

    Quota.objects.create(user=researcher, max_runs_under_way=2, max_batch_parallel=2)
    batch = Batch.objects.get(pk=client.post("/batches/", json=BATCH, user=researcher).json()["id"])
    client.post(f"/batches/{batch.pk}/pause", user=researcher)
    Run.objects.filter(batch_run__batch=batch, status=RunStatus.QUEUED).update(status=RunStatus.PAUSED)  # paused mid-run
    assert client.post("/runs/", json={"scenario": "ai-summit", "turns": 1}, user=researcher).status_code == 201
    batch_services.batch_resume(batch=batch, by=researcher)
    assert run_selectors.runs_under_way(owner=researcher) == 2, "one place left: one paused run handed back"
    assert Run.objects.filter(batch_run__batch=batch, status=RunStatus.PAUSED).count() == 1
