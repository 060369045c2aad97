"""The batch pages: list, new (preview and start), the batch page and its live fragment, steering, privacy."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from batches.models import Batch, BatchStatus
from batches.tests.factories import play_queued, start_batch

pytestmark = pytest.mark.django_db
CONFIG = """experiment_name: Page study
base_scenario: ai-summit
variations:
  - {type: scenario_parameter, parameter: seed, values: [1, 11]}
runs_per_variation: 2
max_parallel: 1
turns: 1
provider: offline
"""


@pytest.fixture
def owner():
    return User.objects.create_user("owner", password="pw")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_new_batch_page_previews_then_starts(owner):
    client = signed_in(owner)
    page = client.get("/batches/new/")
    assert page.status_code == 200 and b"base_scenario" in page.content
    preview = client.post("/batches/new/", {"config": CONFIG, "preview": ""})
    assert preview.status_code == 200
    assert b"Plan: Page study" in preview.content and b"seed=11" in preview.content and not Batch.objects.exists()
    started = client.post("/batches/new/", {"config": CONFIG, "start": ""})
    batch = Batch.objects.get()
    assert started.status_code == 302 and started["Location"] == f"/batches/{batch.pk}/"
    assert batch.owner == owner and batch.status == BatchStatus.RUNNING


def test_a_wrong_config_is_shown_on_the_form(owner):
    response = signed_in(owner).post("/batches/new/", {"config": CONFIG.replace("runs_per_variation: 2", "runs_per_variation: 0"), "start": ""})
    assert response.status_code == 200 and b"runs_per_variation" in response.content and not Batch.objects.exists()


@pytest.mark.parametrize(("typo", "message"), [
    (("runs_per_variation: 2", "runs_per_variaton: 2"), "runs_per_variaton: unknown key; did you mean &#x27;runs_per_variation&#x27;?"),
    (("parameter: seed, values: [1, 11]", "parameter: context_window_sise, values: [1, 2]"),
     "no key &#x27;context_window_sise&#x27;; did you mean &#x27;context_window_size&#x27;?"),
    (("values: [1, 11]", "values: [11, 11]"), "play the same scenario"),
])
def test_a_typo_in_a_config_is_named_on_the_preview_and_starts_nothing(owner, typo, message):
    response = signed_in(owner).post("/batches/new/", {"config": CONFIG.replace(*typo), "preview": ""})
    assert response.status_code == 200 and message in response.content.decode() and not Batch.objects.exists()


def test_the_batch_page_shows_progress_statistics_and_runs(owner):
    batch = start_batch(owner=owner)
    client = signed_in(owner)
    page = client.get(f"/batches/{batch.pk}/")
    assert page.status_code == 200
    assert b'data-open="true"' in page.content and b"0 of 6 runs ended" in page.content and b"var-002-run-003" in page.content
    play_queued(batch)
    live = client.get(f"/batches/{batch.pk}/live/")
    assert live.status_code == 200 and b'data-open="false"' in live.content
    assert b"6 of 6 runs ended" in live.content and b"bracketed_paragraphs" in live.content and b"95 % CI" in live.content
    assert b"100.0 %" in live.content, "the success rate"
    listed = client.get("/batches/")
    assert b"Seed study" in listed.content and b"6/6" in listed.content


def test_pause_resume_cancel_from_the_page(owner):
    batch = start_batch(owner=owner)
    client = signed_in(owner)
    for action, status in [("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")]:
        response = client.post(f"/batches/{batch.pk}/{action}/")
        assert response.status_code == 302
        batch.refresh_from_db()
        assert batch.status == status
    again = client.post(f"/batches/{batch.pk}/cancel/", follow=True)
    assert b"already cancelled" in again.content


def test_someone_elses_batch_is_not_found(owner):
    batch = start_batch(owner=owner)
    stranger = signed_in(User.objects.create_user("stranger", password="pw"))
    for path in ("", "live/"):
        assert stranger.get(f"/batches/{batch.pk}/{path}").status_code == 404
    assert stranger.post(f"/batches/{batch.pk}/pause/").status_code == 404
    assert b"Seed study" not in stranger.get("/batches/").content
    assert Client().get(f"/batches/{batch.pk}/").status_code == 302, "signed-out visitors are sent to sign in"
