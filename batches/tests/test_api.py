"""The batches API through ninja's TestClient: plan, start, read, statistics, steer; permissions and errors."""

import pytest
from django.contrib.auth.models import User
from ninja.testing import TestClient

from batches.models import Batch
from batches.tests.factories import play_queued
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db
client = TestClient(api)
CONFIG = {
    "experiment_name": "Seed study", "base_scenario": "ai-summit", "turns": 1, "provider": "offline",
    "variations": [{"type": "scenario_parameter", "parameter": "seed", "values": [1, 11]}],
    "runs_per_variation": 3, "max_parallel": 2,
}


@pytest.fixture
def people():
    return {
        "owner": User.objects.create_user("owner", password="pw"),
        "other": User.objects.create_user("other", password="pw"),
        "staff": User.objects.create_user("staff", password="pw", is_staff=True),
    }


@pytest.fixture
def started(people):
    response = client.post("/batches/", json=CONFIG, user=people["owner"])
    assert response.status_code == 201, response.content
    return Batch.objects.get(pk=response.json()["id"])


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["code"] == code


def test_a_plan_is_a_dry_run(people):
    response = client.post("/batches/plan", json=CONFIG, user=people["owner"])
    assert response.status_code == 200, response.content
    plan = response.json()
    assert (plan["total_runs"], plan["affordable_runs"], plan["offline"], plan["cost"]) == (6, 6, True, {"low": 0.0, "high": 0.0})
    assert [r["name"] for r in plan["runs"]][:2] == ["var-001-run-001", "var-002-run-001"]
    assert plan["variations"][1]["modifications"]["scenario_overrides"] == {"seed": 11}
    assert not Batch.objects.exists()


def test_starting_a_batch_queues_max_parallel_runs(started):
    body = client.get(f"/batches/{started.pk}", user=started.owner).json()
    assert body["status"] == "running" and body["total_runs"] == 6
    assert body["counts"] == {"queued": 2, "pending": 4}
    assert [(r["name"], r["status"], r["seed"]) for r in body["runs"][:3]] == [
        ("var-001-run-001", "queued", 1), ("var-002-run-001", "queued", 11), ("var-001-run-002", "pending", 2)]
    assert body["page"].endswith(f"/batches/{started.pk}/")


def test_statistics_per_variation_after_the_runs_played(started):
    play_queued(started)
    body = client.get(f"/batches/{started.pk}", user=started.owner).json()
    assert (body["status"], body["counts"], body["percent"]) == ("completed", {"completed": 6}, 100)
    stats = client.get(f"/batches/{started.pk}/statistics", user=started.owner).json()["variations"]
    assert [(s["variation_id"], s["description"], s["runs"], s["success_rate"], s["cost_per_run"]) for s in stats] == [
        (1, "seed=1", 3, 1.0, 0.0), (2, "seed=11", 3, 1.0, 0.0)]
    summary = stats[0]["metrics"]["bracketed_paragraphs"]
    assert summary["count"] == 3 and summary["ci95_low"] <= summary["mean"] <= summary["ci95_high"]


def test_pause_resume_and_cancel(started):
    owner = started.owner
    assert client.post(f"/batches/{started.pk}/pause", user=owner).json()["status"] == "paused"
    assert_error(client.post(f"/batches/{started.pk}/pause", user=owner), 409, "conflict")
    resumed = client.post(f"/batches/{started.pk}/resume", json={"budget_limit": 5, "max_parallel": 3}, user=owner).json()
    assert (resumed["status"], resumed["budget_limit"], resumed["max_parallel"]) == ("running", 5.0, 3)
    assert resumed["counts"]["queued"] == 3
    cancelled = client.post(f"/batches/{started.pk}/cancel", user=owner).json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"] == {"cancelled": 3, "pending": 3}
    assert_error(client.post(f"/batches/{started.pk}/resume", user=owner), 409, "conflict")


@pytest.mark.parametrize(("who", "read", "steer"), [("other", 404, 404), ("staff", 200, 200)])
def test_only_the_owner_and_staff_see_and_steer_a_batch(people, started, who, read, steer):
    assert client.get(f"/batches/{started.pk}", user=people[who]).status_code == read
    assert client.get(f"/batches/{started.pk}/statistics", user=people[who]).status_code == read
    assert client.post(f"/batches/{started.pk}/pause", user=people[who]).status_code == steer
    listed = client.get("/batches/", user=people[who]).json()
    assert listed["count"] == (1 if who == "staff" else 0)


def test_anonymous_callers_get_401(started):
    assert_error(client.get(f"/batches/{started.pk}"), 401, "unauthenticated")
    assert_error(client.post("/batches/", json=CONFIG), 401, "unauthenticated")


@pytest.mark.parametrize(("change", "status", "code", "message"), [
    ({"base_scenario": "nowhere"}, 400, "bad_request", "no scenario 'nowhere'"),
    ({"variations": [{"type": "actor_model", "actor": "ghost", "values": ["m/x"]}]}, 400, "bad_request", "no actor 'ghost'"),
    ({"variations": [{"type": "actor_model", "values": ["m/x"]}]}, 400, "bad_request", "needs `actor:`"),
    ({"seeds": [1]}, 400, "bad_request", "one seed per run"),
    ({"runs_per_variation": 0}, 422, "invalid_request", "schema"),
    ({"provider": "acme"}, 400, "bad_request", "unknown provider"),
    ({"runs_per_variaton": 2}, 400, "bad_request", "runs_per_variaton: unknown key; did you mean 'runs_per_variation'?"),
    ({"variations": [{"type": "scenario_parameter", "paramter": "seed", "values": [1, 2]}]}, 400, "bad_request",
     "variations.0.paramter: unknown key; did you mean 'parameter'?"),
    ({"variations": [{"type": "scenario_parameter", "parameter": "context_window_sise", "values": [1, 2]}]}, 400,
     "bad_request", "no key 'context_window_sise'; did you mean 'context_window_size'?"),
    ({"variations": [{"type": "actor_model", "actor": "norvale", "values": ["m/x", "m/x"]}]}, 400, "bad_request",
     "play the same scenario"),
])
def test_wrong_configs_are_refused_with_the_key_named(people, change, status, code, message):
    response = client.post("/batches/", json={**CONFIG, **change}, user=people["owner"])
    assert_error(response, status, code)
    assert message in response.json()["message"]
    assert not Batch.objects.exists()


def test_free_runs_hold_nothing_of_the_budget(people):
    plan = client.post("/batches/plan", json={**CONFIG, "budget_limit": 1, "cost_per_run_limit": 1}, user=people["owner"]).json()
    assert plan["affordable_runs"] == 6, "offline runs cannot spend: all fit, whatever their credit limit"
