"""The runs API through ninja's TestClient: every endpoint, the permission matrix, every error code."""

import io
import zipfile

import pytest
from django.contrib.auth.models import User
from ninja.testing import TestClient

from runs.execution import executor
from runs.models import Run, RunEvent, RunStatus
from runs.tests.factories import make_run
from scenarios.services import scenario_import_library
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db
client = TestClient(api)


@pytest.fixture
def people():
    return {
        "owner": User.objects.create_user("owner", password="pw"),
        "other": User.objects.create_user("other", password="pw"),
        "staff": User.objects.create_user("staff", password="pw", is_staff=True),
    }


@pytest.fixture
def played(people):
    """A completed two-turn run of the owner's."""
    return executor.run_execute(run_id=make_run(turns=2, owner=people["owner"]).pk)


def as_(people, who):
    return {} if who == "anonymous" else {"user": people[who]}


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"] and isinstance(body["fields"], list)
    return body


READS = ["", "/turns", "/decisions", "/communications", "/costs", "/metrics", "/validations", "/events", "/export"]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("other", 404), ("owner", 200), ("staff", 200)])
def test_who_may_read_a_run(people, played, path, who, status):
    response = client.get(f"/runs/{played.pk}{path}", **as_(people, who))
    assert response.status_code == status
    if status != 200:
        assert_error(response, status, {401: "unauthenticated", 404: "not_found"}[status])


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("other", 404)])
def test_strangers_cannot_steer_a_run(people, played, action, who, status):
    response = client.post(f"/runs/{played.pk}/{action}", json={}, **as_(people, who))
    assert_error(response, status, {401: "unauthenticated", 404: "not_found"}[status])
    assert Run.objects.get(pk=played.pk).status == RunStatus.COMPLETED


def test_start_a_run_and_read_it_back(people):
    scenario_import_library()
    response = client.post("/runs/", json={"scenario": "ai-summit", "turns": 2, "seed": 4}, user=people["owner"])
    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    assert body["status"] == "queued" and run.owner == people["owner"] and run.max_turns == 2 and run.seed == 4
    assert body["offline"] is True and body["page"].endswith(f"/runs/{run.pk}/")

    executor.run_execute(run_id=run.pk)
    got = client.get(f"/runs/{run.pk}", user=people["owner"]).json()
    assert got["status"] == "completed" and got["turn"] == 2 and got["calls"] > 0
    assert got["last_seq"] == RunEvent.objects.filter(run=run).count()


def test_the_v2_execute_route_starts_a_run_followed_under_api_runs(people):
    scenario_import_library()
    response = client.post("/scenarios/ai-summit/execute", json={"max_turns": 1, "credit_limit": 5.0}, user=people["owner"])
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert run.max_turns == 1 and run.credit_limit == 5.0 and run.owner == people["owner"]
    assert client.post("/scenarios/ai-summit/execute", user=people["owner"]).status_code == 201, "no body: the defaults"
    followed = client.get(f"/runs/{run.pk}", user=people["owner"])
    assert followed.status_code == 200 and followed.json()["status"] == "queued"


@pytest.mark.parametrize(
    ("who", "path", "payload", "status", "code"),
    [
        ("anonymous", "/scenarios/ai-summit/execute", {}, 401, "unauthenticated"),
        ("owner", "/scenarios/no-such/execute", {}, 404, "not_found"),
        ("owner", "/scenarios/ai-summit/execute", {"turns": 2, "max_turns": 3}, 422, "invalid_request"),
        ("owner", "/scenarios/ai-summit/execute", {"max_turns": 0}, 422, "invalid_request"),
    ],
)
def test_the_execute_route_refuses_with_the_error_shape(people, who, path, payload, status, code):
    scenario_import_library()
    assert_error(client.post(path, json=payload, **as_(people, who)), status, code)
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"scenario": "no-such"}, 404, "not_found"),
        ({"scenario": "ai-summit", "turns": 0}, 422, "invalid_request"),
        ({"scenario": "ai-summit", "credit_limit": -1}, 422, "invalid_request"),
        ({"scenario": "ai-summit", "provider": "ollama"}, 400, "bad_request"),
        ({}, 422, "invalid_request"),
    ],
)
def test_start_refuses_bad_input_with_the_error_shape(people, payload, status, code):
    scenario_import_library()
    body = assert_error(client.post("/runs/", json=payload, user=people["owner"]), status, code)
    if status == 422:
        assert body["fields"] and body["fields"][0]["loc"]
    assert not Run.objects.exists()


def test_a_scenario_that_no_longer_validates_cannot_start(people):
    summit = next(s for s in scenario_import_library() if s.slug == "ai-summit")
    summit.actors.update(llm_model="")  # an edit that breaks the scenario
    type(summit).objects.filter(pk=summit.pk).update(turns=0)
    assert_error(client.post("/runs/", json={"scenario": "ai-summit"}, user=people["owner"]), 409, "conflict")


def test_records_costs_and_events(people, played):
    owner = {"user": people["owner"]}
    assert [t["turn"] for t in client.get(f"/runs/{played.pk}/turns", **owner).json()] == [0, 1, 2]
    decisions = client.get(f"/runs/{played.pk}/decisions?turn=2", **owner).json()
    assert {d["actor"] for d in decisions} == {a["short_name"] for a in played.actors}
    assert client.get(f"/runs/{played.pk}/communications", **owner).json()
    costs = client.get(f"/runs/{played.pk}/costs", **owner).json()
    assert len(costs["records"]) == costs["calls"] == played.calls
    assert set(costs["by_phase"]) >= {"decision", "world_update"} and set(costs["by_turn"]) == {"1", "2"}
    assert client.get(f"/runs/{played.pk}/metrics", **owner).json()
    assert client.get(f"/runs/{played.pk}/validations", **owner).json()

    seen, after = [], 0
    while True:
        page = client.get(f"/runs/{played.pk}/events?after={after}&limit=25", **owner).json()
        seen += [e["seq"] for e in page["events"]]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seen == list(range(1, RunEvent.objects.filter(run=played).count() + 1))

    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/runs/{played.pk}/export", **owner).content))
    assert any(name.endswith("summary.md") for name in archive.namelist())


def test_list_filters_and_pages(people, played):
    other_run = make_run(turns=1, owner=people["other"])
    mine = client.get("/runs/", user=people["owner"]).json()
    assert [r["id"] for r in mine["items"]] == [played.pk] and mine["count"] == 1
    everything = client.get("/runs/?limit=1", user=people["staff"]).json()
    assert everything["count"] == 2 and len(everything["items"]) == 1
    assert [r["id"] for r in client.get("/runs/?status=queued", user=people["staff"]).json()["items"]] == [other_run.pk]
    assert [r["id"] for r in client.get("/runs/?owner=owner", user=people["staff"]).json()["items"]] == [played.pk]
    assert client.get("/runs/?scenario=nothing", user=people["staff"]).json()["count"] == 0
    assert_error(client.get("/runs/?limit=0", user=people["staff"]), 422, "invalid_request")
    assert_error(client.get("/runs/"), 401, "unauthenticated")


def test_steering_conflicts_are_409_and_a_resume_takes_a_new_credit_limit(people, played):
    owner = {"user": people["owner"]}
    assert_error(client.post(f"/runs/{played.pk}/resume", json={}, **owner), 409, "conflict")
    assert_error(client.post(f"/runs/{played.pk}/pause", **owner), 409, "conflict")
    assert_error(client.post(f"/runs/{played.pk}/cancel", **owner), 409, "conflict")
    assert_error(client.post(f"/runs/{played.pk}/resume", json={"end_turn": 1}, **owner), 400, "bad_request")
    resumed = client.post(f"/runs/{played.pk}/resume", json={"end_turn": 3, "credit_limit": 4.5}, **owner)
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued" and resumed.json()["credit_limit"] == 4.5
    cancelled = client.post(f"/runs/{played.pk}/cancel", user=people["staff"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_public_read_mode_lets_anyone_read_but_not_steer(settings, people, played):
    settings.PUBLIC_READ = True
    assert client.get(f"/runs/{played.pk}").status_code == 200
    assert client.get(f"/runs/{played.pk}", user=people["other"]).status_code == 200
    assert_error(client.post(f"/runs/{played.pk}/cancel", user=people["other"]), 403, "forbidden")
    assert_error(client.post(f"/runs/{played.pk}/cancel"), 401, "unauthenticated")


def test_without_credentials_a_write_is_401_even_where_csrf_is_enforced(people, played):
    """A revoked token on a POST must read "sign in", not "CSRF failed": the session check stays out of it."""
    from django.test import Client

    from accounts.services import api_token_create, api_token_revoke

    browserish = Client(enforce_csrf_checks=True)
    token, raw = api_token_create(owner=people["owner"], name="old")
    api_token_revoke(token=token)
    for headers in ({}, {"HTTP_AUTHORIZATION": f"Bearer {raw}"}):
        response = browserish.post(f"/api/runs/{played.pk}/cancel", **headers)
        assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    browserish.force_login(people["owner"])
    assert browserish.post(f"/api/runs/{played.pk}/cancel").status_code == 403, "a session still needs its CSRF token"


@pytest.mark.parametrize(
    "query", ["offset=9223372036854775808", "owner=a%00b", "scenario=a%00b", "status=a%00b"]
)
def test_hostile_list_queries_are_422_not_server_errors(people, query):
    assert_error(client.get(f"/runs/?{query}", user=people["staff"]), 422, "invalid_request")


@pytest.mark.parametrize("payload", [{"scenario": "ai-summit", "seed": 2**63}, {"scenario": "a\x00b"}, {"scenario": "ai-summit", "model": "a\x00b"}])
def test_hostile_start_bodies_are_422_not_server_errors(people, payload):
    body = assert_error(client.post("/runs/", json=payload, user=people["owner"]), 422, "invalid_request")
    assert body["fields"]


def test_the_status_filter_knows_crashed_runs(people):
    from datetime import timedelta

    from django.utils import timezone

    run = make_run(turns=1, owner=people["owner"])
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1))
    staff = {"user": people["staff"]}
    assert [r["id"] for r in client.get("/runs/?status=crashed", **staff).json()["items"]] == [run.pk]
    assert client.get("/runs/?status=running", **staff).json()["count"] == 0
