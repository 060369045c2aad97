"""The batch admin: the start page (preview, start), the read-only batch with its runs, the actions."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from batches.models import Batch, BatchStatus
from batches.tests.test_views import CONFIG

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    client = Client()
    client.force_login(User.objects.create_superuser("boss", password="pw"))
    return client


def test_start_a_batch_in_the_admin_and_steer_it(admin_client):
    assert admin_client.get("/admin/batches/batch/add/").status_code == 200
    preview = admin_client.post("/admin/batches/batch/add/", {"config": CONFIG, "preview": ""})
    assert preview.status_code == 200 and b"Before you start" in preview.content and not Batch.objects.exists()
    started = admin_client.post("/admin/batches/batch/add/", {"config": CONFIG, "start": ""})
    batch = Batch.objects.get()
    assert started.status_code == 302 and started["Location"] == f"/admin/batches/batch/{batch.pk}/change/"
    detail = admin_client.get(started["Location"])
    assert detail.status_code == 200 and b"var-001-run-001" in detail.content and b"not started" in detail.content
    changelist = admin_client.get("/admin/batches/batch/")
    assert changelist.status_code == 200 and b"Page study" in changelist.content
    admin_client.post("/admin/batches/batch/", {"action": "pause_batches", "_selected_action": [batch.pk]})
    batch.refresh_from_db()
    assert batch.status == BatchStatus.PAUSED
    admin_client.post("/admin/batches/batch/", {"action": "cancel_batches", "_selected_action": [batch.pk]})
    batch.refresh_from_db()
    assert batch.status == BatchStatus.CANCELLED


def test_a_wrong_config_is_an_error_on_the_admin_form(admin_client):
    response = admin_client.post("/admin/batches/batch/add/", {"config": "experiment_name: x\n", "start": ""})
    assert response.status_code == 200 and b"base_scenario" in response.content and not Batch.objects.exists()
