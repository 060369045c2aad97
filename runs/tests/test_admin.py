"""The runs admin through the test client: start form with its estimate, read-only records, actions."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from runs.execution import executor
from runs.models import Run, RunStatus
from runs.tests.factories import make_run
from scenarios.services import scenario_import_library

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("admin", "admin@example.org", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def summit():
    return next(s for s in scenario_import_library() if s.slug == "ai-summit")


def test_the_start_form_shows_the_estimate_before_starting(client, staff, summit):
    page = client.get(reverse("admin:runs_run_add") + f"?scenario={summit.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Estimated cost for 5 turns" in html and "offline" in html
    assert not Run.objects.exists(), "showing the estimate starts nothing"

    started = client.post(reverse("admin:runs_run_add"), {"scenario": summit.pk, "turns": 2, "use_cache": "on", "start": "1"})
    run = Run.objects.get()
    assert started.status_code == 302 and started.url == reverse("admin:runs_run_change", args=[run.pk])
    assert run.status == RunStatus.QUEUED and run.owner == staff and run.max_turns == 2 and run.scenario == summit


def test_a_bad_credit_limit_is_a_form_error_and_starts_nothing(client, staff, summit):
    page = client.post(reverse("admin:runs_run_add"), {"scenario": summit.pk, "credit_limit": "-1", "start": "1"})
    assert page.status_code == 200 and "credit_limit" in page.context["form"].errors
    assert not Run.objects.exists()


def test_list_and_read_only_detail_show_status_progress_cost_and_records(client, staff):
    run = executor.run_execute(run_id=make_run(turns=1).pk)
    listing = client.get(reverse("admin:runs_run_changelist")).content.decode()
    assert "completed" in listing and "1/1" in listing and "offline (no model called)" in listing
    detail = client.get(reverse("admin:runs_run_change", args=[run.pk]))
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "norvale" in html and "decision" in html  # decisions and ledger inlines
    assert 'name="_save"' not in html, "read-only"


def test_actions_cancel_resume_and_download(client, staff):
    queued, paused = make_run(turns=1), executor.run_execute(run_id=make_run(turns=1).pk)
    Run.objects.filter(pk=paused.pk).update(status=RunStatus.PAUSED)
    changelist = reverse("admin:runs_run_changelist")

    client.post(changelist, {"action": "cancel_runs", "_selected_action": [queued.pk]})
    client.post(changelist, {"action": "resume_runs", "_selected_action": [paused.pk]})
    queued.refresh_from_db()
    paused.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED
    assert paused.status == RunStatus.QUEUED

    download = client.post(changelist, {"action": "download_markdown", "_selected_action": [paused.pk]})
    assert download["Content-Type"] == "application/zip" and download.content[:2] == b"PK"


def test_people_who_are_not_staff_are_sent_to_sign_in(client):
    client.force_login(User.objects.create_user("reader", password="pw"))
    assert client.get(reverse("admin:runs_run_changelist")).status_code == 302


def test_staff_who_may_only_view_runs_cannot_resume_or_cancel_them(client):
    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_run"))
    client.force_login(viewer)
    run = make_run(turns=1)
    listing = client.get(reverse("admin:runs_run_changelist")).content.decode()
    assert "download_markdown" in listing and "cancel_runs" not in listing and "resume_runs" not in listing
    client.post(reverse("admin:runs_run_changelist"), {"action": "cancel_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
