"""The scenarios API through ninja's TestClient: every endpoint, who may call it, every error it can give."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from ninja.testing import TestClient

from engine.scenario import Scenario as EngineScenario
from scenarios.archives import shown
from scenarios.models import Scenario
from scenarios.selectors import scenario_get
from scenarios.services import scenario_import_library, scenario_to_engine
from scenarios.tests.factories import UNPACKABLE, make_scenario, make_zip, make_zip_with, scenario_files
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db
client = TestClient(api)
COMPARED = {"source", "warnings"}


@pytest.fixture
def people():
    editor = User.objects.create_user("editor", password="pw")
    editor.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="scenarios", codename__in=["add_scenario", "change_scenario"]))
    return {
        "reader": User.objects.create_user("reader", password="pw"),
        "adder": _with_perms(User.objects.create_user("adder", password="pw"), "add_scenario"),
        "editor": User.objects.get(pk=editor.pk),  # reloaded: permissions are cached on the instance
        "admin": User.objects.create_superuser("admin", password="pw"),
    }


def _with_perms(user: User, *codenames: str) -> User:
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="scenarios", codename__in=codenames))
    return User.objects.get(pk=user.pk)


def as_(people, who):
    return {} if who == "anonymous" else {"user": people[who]}


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"] and isinstance(body["fields"], list), body
    for field in body["fields"]:
        assert isinstance(field["loc"], list) and isinstance(field["message"], str)
    return body


def engine_dump(slug: str) -> dict:
    return scenario_to_engine(scenario=scenario_get(slug=slug)).model_dump(mode="json", exclude=COMPARED)


def body_of(stored: str, **changes) -> dict:
    """A stored scenario as the create/update body (what GET returns as `engine`), with top-level changes."""
    return {**engine_dump(stored), **changes}


def upload(content: bytes, name: str = "harbour.zip") -> dict:
    return {"FILES": {"upload": SimpleUploadedFile(name, content, content_type="application/zip")}}


@pytest.fixture
def summit():
    scenario_import_library()
    return Scenario.objects.get(slug="ai-summit")


# ---- who may call what ----------------------------------------------------------------------------------------
READS = [("get", "/scenarios/"), ("get", "/scenarios/{slug}"), ("get", "/scenarios/{slug}/export"),
         ("get", "/scenarios/{slug}/estimate"), ("post", "/scenarios/{slug}/validate")]


@pytest.mark.parametrize(("method", "path"), READS)
@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("reader", 200), ("admin", 200)])
def test_reading_needs_a_signed_in_caller(people, method, path, who, status):
    scenario = make_scenario()
    response = getattr(client, method)(path.format(slug=scenario.slug), **as_(people, who))
    if status == 401:
        assert_error(response, 401, "unauthenticated")
    else:
        assert response.status_code == 200, response.content


@override_settings(PUBLIC_READ=True)
def test_public_read_mode_lets_anyone_read_but_not_write():
    scenario = make_scenario()
    assert client.get("/scenarios/").status_code == 200
    assert client.get(f"/scenarios/{scenario.slug}").status_code == 200
    assert_error(client.put(f"/scenarios/{scenario.slug}", json=body_of(scenario.slug)), 401, "unauthenticated")


WRITES = [("post", "/scenarios/", "json"), ("put", "/scenarios/{slug}", "json"), ("post", "/scenarios/import", "zip")]


@pytest.mark.parametrize(("method", "path", "kind"), WRITES)
@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("reader", 403)])
def test_writing_needs_the_model_permission(people, method, path, kind, who, status):
    scenario = make_scenario()
    payload = ({"json": body_of(scenario.slug, slug="fresh")} if kind == "json" else upload(make_zip(scenario_files())))
    response = getattr(client, method)(path.format(slug=scenario.slug), **payload, **as_(people, who))
    assert_error(response, status, {401: "unauthenticated", 403: "forbidden"}[status])
    assert not Scenario.objects.filter(slug__in=["fresh", "harbour"]).exists()


def test_adding_is_not_changing(people):
    """Permission to add does not give permission to replace an existing scenario."""
    scenario = make_scenario()
    assert_error(client.put(f"/scenarios/{scenario.slug}", json=body_of(scenario.slug), user=people["adder"]),
                 403, "forbidden")
    zipped = make_zip(scenario_files())
    assert client.post("/scenarios/import", **upload(zipped), user=people["adder"]).status_code == 201
    response = client.post("/scenarios/import", **upload(zipped), data={"update": "true"}, user=people["adder"])
    assert_error(response, 403, "forbidden")


# ---- list and get ----------------------------------------------------------------------------------------------
def test_list_is_paginated_with_actor_counts(people):
    for name, actors in (("Charlie", 1), ("Alpha", 3), ("Bravo", 2)):
        make_scenario(name=name, actors=actors)
    response = client.get("/scenarios/?limit=2", user=people["reader"])
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [(item["name"], item["actor_count"]) for item in body["items"]] == [("Alpha", 3), ("Bravo", 2)]
    assert set(body["items"][0]) == {"slug", "name", "description", "turns", "actor_count"}
    rest = client.get("/scenarios/?limit=2&offset=2", user=people["reader"]).json()
    assert [item["name"] for item in rest["items"]] == ["Charlie"]


@pytest.mark.parametrize(("query", "name"), [("limit=0", "limit"), ("limit=201", "limit"), ("offset=-1", "offset"),
                                             (f"offset={2**70}", "offset")])
def test_list_refuses_a_bad_limit_or_offset(people, query, name):
    body = assert_error(client.get(f"/scenarios/?{query}", user=people["reader"]), 422, "invalid_request")
    assert body["fields"][0]["loc"][-1] == name


def test_get_gives_actors_and_the_engine_configuration(people, summit):
    response = client.get("/scenarios/ai-summit", user=people["reader"])
    assert response.status_code == 200
    body = response.json()
    assert body["slug"] == "ai-summit" and body["problems"] == []
    first = summit.actors.first()
    assert body["actors"][0] == {"name": first.name, "short_name": first.short_name, "model": first.llm_model,
                                 "control": first.control, "goals": first.goals, "constraints": first.constraints}
    assert len(body["actors"]) == summit.actors.count()
    assert body["engine"] == engine_dump("ai-summit")
    assert set(body["engine"]) == {"config", "actors", "metrics", "validation", "exogenous_events", "background"}


def test_get_of_a_scenario_that_does_not_validate_names_the_problems(people):
    scenario = make_scenario()
    Scenario.objects.filter(pk=scenario.pk).update(turns=0)
    body = client.get(f"/scenarios/{scenario.slug}", user=people["reader"]).json()
    assert body["engine"] is None
    assert any(p["file"] == "scenario.yaml" and p["key"] == "turns" for p in body["problems"]), body["problems"]


def test_get_of_an_unknown_slug_is_404(people):
    assert_error(client.get("/scenarios/nowhere", user=people["reader"]), 404, "not_found")


# ---- create and update from JSON -------------------------------------------------------------------------------
def test_create_stores_the_engine_scenario_it_is_given(people, summit):
    sent = body_of("ai-summit", slug="summit-copy")
    response = client.post("/scenarios/", json=sent, user=people["editor"])
    assert response.status_code == 201, response.content
    assert response.json()["slug"] == "summit-copy"
    assert engine_dump("summit-copy") == engine_dump("ai-summit")


def test_create_without_a_slug_takes_the_name(people, summit):
    sent = body_of("ai-summit")
    sent["config"] = {**sent["config"], "name": "Summit Rehearsal"}
    assert client.post("/scenarios/", json=sent, user=people["adder"]).json()["slug"] == "summit-rehearsal"


def test_create_with_a_taken_slug_is_409(people):
    scenario = make_scenario()
    before = engine_dump(scenario.slug)
    sent = body_of(scenario.slug, slug=scenario.slug)
    sent["config"] = {**sent["config"], "name": "Something else"}
    body = assert_error(client.post("/scenarios/", json=sent, user=people["editor"]), 409, "conflict")
    assert body["fields"] == [{"loc": ["slug"], "message": "taken"}]
    assert engine_dump(scenario.slug) == before


def test_create_with_bad_metrics_points_into_metrics(people):
    scenario = make_scenario()
    sent = body_of(scenario.slug, slug="bad-metrics",
                   metrics={"metrics": [{"name": "tension", "extraction": {"type": "telepathy"}}]})
    body = assert_error(client.post("/scenarios/", json=sent, user=people["editor"]), 422, "invalid_scenario")
    assert [f["loc"] for f in body["fields"]] == [["metrics", "metrics", 0, "extraction", "type"]]
    assert "telepathy" in body["fields"][0]["message"]
    assert not Scenario.objects.filter(slug="bad-metrics").exists()


def test_create_with_bad_v1_metrics_has_no_union_tag_in_the_loc(people):
    scenario = make_scenario()
    sent = body_of(scenario.slug, slug="bad-v1", metrics={"metrics": {"boats": {"extraction_method": "guess"}}})
    body = assert_error(client.post("/scenarios/", json=sent, user=people["editor"]), 422, "invalid_scenario")
    assert body["fields"][0]["loc"] == ["metrics", "metrics", "boats", "extraction_method"]


def test_create_lists_every_problem_with_its_location(people):
    scenario = make_scenario()
    sent = body_of(scenario.slug, slug="broken", colour="red")
    sent["config"] = {**sent["config"], "turns": "many"}
    sent["actors"] = [{**sent["actors"][0], "short_name": "no spaces"}, {**sent["actors"][1]}]
    del sent["actors"][1]["name"]
    body = assert_error(client.post("/scenarios/", json=sent, user=people["editor"]), 422, "invalid_scenario")
    locs = [f["loc"] for f in body["fields"]]
    assert ["colour"] in locs
    assert ["config", "turns"] in locs
    assert ["actors", 0, "short_name"] in locs
    assert ["actors", 1, "name"] in locs
    assert not Scenario.objects.filter(slug="broken").exists()


def test_create_refuses_two_actors_with_one_short_name(people):
    scenario = make_scenario()
    sent = body_of(scenario.slug, slug="twins")
    sent["actors"] = [sent["actors"][0], {**sent["actors"][1], "short_name": sent["actors"][0]["short_name"]}]
    body = assert_error(client.post("/scenarios/", json=sent, user=people["editor"]), 422, "invalid_scenario")
    assert body["fields"][0]["loc"] == ["actors", 1, "short_name"]


def test_create_refuses_an_actor_list_that_does_not_match_the_actors(people):
    scenario = make_scenario()
    sent = body_of(scenario.slug, slug="mismatch")
    sent["config"] = {**sent["config"], "actors": ["town-1"]}
    body = assert_error(client.post("/scenarios/", json=sent, user=people["editor"]), 422, "invalid_scenario")
    assert body["fields"][0]["loc"] == ["config", "actors"]


@pytest.mark.parametrize("slug", ["has space", "x" * 101, 7])
def test_create_refuses_a_bad_slug(people, slug):
    scenario = make_scenario()
    body = assert_error(client.post("/scenarios/", json=body_of(scenario.slug, slug=slug), user=people["editor"]),
                        422, "invalid_request")
    assert body["fields"][0]["loc"] == ["slug"]


def test_create_refuses_nul_characters_which_postgresql_cannot_store(people):
    scenario = make_scenario()
    sent = body_of(scenario.slug, slug="nul")
    sent["config"] = {**sent["config"], "description": "a\x00b", "odd\x00key": 1}
    body = assert_error(client.post("/scenarios/", json=sent, user=people["editor"]), 422, "invalid_scenario")
    assert sorted(f["loc"] for f in body["fields"]) == [["config", "description"], ["config", "odd\x00key"]]
    assert_error(client.get("/scenarios/a%00b", user=people["reader"]), 404, "not_found")


def test_create_refuses_a_body_that_is_not_an_object(people):
    assert_error(client.post("/scenarios/", json=[1, 2], user=people["editor"]), 422, "invalid_request")


def test_update_replaces_the_scenario(people):
    scenario = make_scenario(actors=3)
    sent = body_of(scenario.slug)
    sent["config"] = {**sent["config"], "turns": 7, "actors": sent["config"]["actors"][:2]}
    sent["actors"] = sent["actors"][:2]
    response = client.put(f"/scenarios/{scenario.slug}", json=sent, user=people["editor"])
    assert response.status_code == 200, response.content
    assert response.json()["turns"] == 7 and len(response.json()["actors"]) == 2
    assert engine_dump(scenario.slug) == {key: value for key, value in sent.items() if key != "slug"}


def test_update_errors(people):
    scenario = make_scenario()
    before = engine_dump(scenario.slug)
    editor = people["editor"]
    assert_error(client.put("/scenarios/nowhere", json=body_of(scenario.slug), user=editor), 404, "not_found")
    body = assert_error(client.put(f"/scenarios/{scenario.slug}", json=body_of(scenario.slug, slug="renamed"),
                                   user=editor), 422, "invalid_scenario")
    assert body["fields"][0]["loc"] == ["slug"]
    bad = body_of(scenario.slug)
    bad["actors"] = [{**bad["actors"][0], "control": "robot"}]
    bad["config"] = {**bad["config"], "actors": []}
    body = assert_error(client.put(f"/scenarios/{scenario.slug}", json=bad, user=editor), 422, "invalid_scenario")
    assert body["fields"][0]["loc"] == ["actors", 0, "control"]
    assert engine_dump(scenario.slug) == before


# ---- import and export -----------------------------------------------------------------------------------------
def test_export_then_import_gives_an_equal_scenario(people, summit):
    response = client.get("/scenarios/ai-summit/export", user=people["reader"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert 'filename="ai-summit.zip"' in response["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "ai-summit/scenario.yaml" in names

    imported = client.post("/scenarios/import", **upload(response.content, "ai-summit.zip"),
                           data={"slug": "summit-again"}, user=people["editor"])
    assert imported.status_code == 201, imported.content
    assert imported.json()["slug"] == "summit-again"
    assert engine_dump("summit-again") == engine_dump("ai-summit")


def test_import_takes_the_folder_name_and_updates_only_when_asked(people):
    zipped = make_zip(scenario_files())
    created = client.post("/scenarios/import", **upload(zipped), user=people["editor"])
    assert created.status_code == 201 and created.json()["slug"] == "harbour"
    assert created.json()["engine"]["config"]["harbour_master"] == "Ingrid"  # unknown keys kept

    body = assert_error(client.post("/scenarios/import", **upload(zipped), user=people["editor"]), 409, "conflict")
    assert body["fields"][0]["loc"] == ["slug"]

    changed = make_zip(scenario_files(**{"scenario.yaml": scenario_files()["scenario.yaml"].replace("turns: 4", "turns: 9")}))
    updated = client.post("/scenarios/import", **upload(changed), data={"update": "true"}, user=people["editor"])
    assert updated.status_code == 200, updated.content
    assert updated.json()["turns"] == 9


def test_import_refuses_a_bad_slug(people):
    body = assert_error(client.post("/scenarios/import", **upload(make_zip(scenario_files())), data={"slug": "a b"},
                                    user=people["editor"]), 422, "invalid_request")
    assert body["fields"][0]["loc"] == ["slug"]


@pytest.mark.parametrize("content", [b"not a zip at all", make_zip({"notes.txt": "hello"}, prefix="")])
def test_import_of_an_unusable_archive_is_400(people, content):
    body = assert_error(client.post("/scenarios/import", **upload(content), user=people["editor"]), 400, "bad_request")
    assert body["fields"][0]["loc"] == ["upload"]
    assert not Scenario.objects.exists()


@pytest.mark.parametrize(("members", "entry", "words"), list(UNPACKABLE.values()), ids=list(UNPACKABLE))
def test_import_of_a_member_that_cannot_be_unpacked_is_400_naming_it(people, members, entry, words):
    make_scenario(slug="harbour", name="Stored before")
    before = engine_dump("harbour")
    body = assert_error(client.post("/scenarios/import", **upload(make_zip_with(members)), data={"update": "true"},
                                    user=people["editor"]), 400, "bad_request")
    assert f"{shown(entry)} {words}" in body["message"]
    assert body["fields"] == [{"loc": ["upload"], "message": body["message"]}]
    assert engine_dump("harbour") == before and Scenario.objects.count() == 1


def test_import_of_a_broken_folder_is_422_with_file_key_and_line(people):
    broken = scenario_files(**{"scenario.yaml": scenario_files()["scenario.yaml"].replace("turns: 4", "turns: lots")})
    body = assert_error(client.post("/scenarios/import", **upload(make_zip(broken)), user=people["editor"]),
                        422, "invalid_scenario")
    assert body["fields"][0]["loc"] == ["scenario.yaml", "turns", 5]
    assert not Scenario.objects.exists()


def test_import_refuses_a_large_upload_before_reading_it(people, monkeypatch):
    class Unreadable(SimpleUploadedFile):
        def read(self, *args):
            raise AssertionError("the upload was read")

    monkeypatch.setattr("scenarios.api.MAX_UPLOAD_BYTES", 100)
    big = Unreadable("big.zip", b"x" * 101, content_type="application/zip")
    body = assert_error(client.post("/scenarios/import", FILES={"upload": big}, user=people["editor"]),
                        400, "bad_request")
    assert "limit" in body["message"]


def test_import_without_a_file_is_422(people):
    assert_error(client.post("/scenarios/import", user=people["editor"]), 422, "invalid_request")


def test_export_errors(people):
    assert_error(client.get("/scenarios/nowhere/export", user=people["reader"]), 404, "not_found")
    scenario = make_scenario()
    Scenario.objects.filter(pk=scenario.pk).update(initial_world_state="")
    body = assert_error(client.get(f"/scenarios/{scenario.slug}/export", user=people["reader"]), 422, "invalid_scenario")
    assert body["fields"][0]["loc"][:2] == ["scenario.yaml", "initial_world_state"]


# ---- validate and estimate -------------------------------------------------------------------------------------
def test_validate_says_valid_or_lists_the_problems(people):
    scenario = make_scenario()
    response = client.post(f"/scenarios/{scenario.slug}/validate", user=people["reader"])
    assert response.status_code == 200 and response.json() == {"valid": True, "problems": []}

    scenario.actors.filter(position=1).update(control="robot")
    response = client.post(f"/scenarios/{scenario.slug}/validate", user=people["reader"])
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert body["problems"] == [{"file": "actors/town-2.yaml", "key": "control", "line": None,
                                 "message": body["problems"][0]["message"]}]
    assert "robot" in body["problems"][0]["message"]
    assert_error(client.post("/scenarios/nowhere/validate", user=people["reader"]), 404, "not_found")


def test_estimate_offline(people, summit):
    response = client.get("/scenarios/ai-summit/estimate?turns=2&credit_limit=3", user=people["reader"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["offline"] is True and "offline" in body["provider"].lower()
    assert body["turns"] == 2 and body["credit_limit"] == 3
    assert body["calls"] > 0 and 0 < body["tokens"]["low"] <= body["tokens"]["high"]
    assert body["cost"]["low"] <= body["cost"]["high"]
    assert set(body["by_actor"]) >= {actor.short_name for actor in summit.actors.all()}
    assert {"decision", "world_update"} <= set(body["by_phase"])
    assert abs(sum(r["high"] for r in body["by_phase"].values()) - body["cost"]["high"]) < 1e-9
    default = client.get("/scenarios/ai-summit/estimate", user=people["reader"]).json()
    assert default["turns"] == summit.turns and default["credit_limit"] == summit.credit_limit
    assert default["calls"] > body["calls"] or summit.turns <= 2


def test_estimate_errors(people):
    reader = people["reader"]
    scenario = make_scenario()
    for query in ("turns=0", "turns=1001", "turns=two"):
        body = assert_error(client.get(f"/scenarios/{scenario.slug}/estimate?{query}", user=reader), 422, "invalid_request")
        assert body["fields"][0]["loc"][-1] == "turns"
    for query in ("provider=carrier-pigeon", "credit_limit=-1"):
        assert_error(client.get(f"/scenarios/{scenario.slug}/estimate?{query}", user=reader), 400, "bad_request")
    assert_error(client.get("/scenarios/nowhere/estimate", user=reader), 404, "not_found")
    Scenario.objects.filter(pk=scenario.pk).update(turns=0)
    assert_error(client.get(f"/scenarios/{scenario.slug}/estimate", user=reader), 409, "conflict")


# ---- the documentation -----------------------------------------------------------------------------------------
def test_openapi_documents_every_route_and_its_errors():
    paths = api.get_openapi_schema()["paths"]
    operations = {operation["operationId"]: set(map(int, operation["responses"]))
                  for path, item in paths.items() if path.startswith("/api/scenarios/") for operation in item.values()}
    declared = {
        "scenarios_list": {200, 401, 422},
        "scenarios_get": {200, 401, 404},
        "scenarios_create": {201, 401, 403, 409, 422},
        "scenarios_update": {200, 401, 403, 404, 422},
        "scenarios_import": {200, 201, 400, 401, 403, 409, 422},
        "scenarios_export": {200, 401, 404, 422},
        "scenarios_validate": {200, 401, 403, 404},
        "scenarios_estimate": {200, 400, 401, 404, 409, 422},
        "scenarios_execute": {201, 400, 401, 403, 404, 409, 422},
    }
    assert set(operations) == set(declared)
    for operation, statuses in declared.items():  # the API adds 400/401/413/422 to every operation
        assert operations[operation] - {400, 401, 413, 422} == statuses - {400, 401, 413, 422}, operation
    body = paths["/api/scenarios/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"slug", "config", "actors", "metrics"} <= set(body["properties"])
    assert body["additionalProperties"] is False
    EngineScenario.model_json_schema()  # the body's schema is built from it
