"""Oversized request bodies and uploads are refused with a clear 4xx (in the API's error shape on /api/) and
store nothing: a JSON body past DATA_UPLOAD_MAX_MEMORY_SIZE, a scenario zip past 10 MB (sent or unpacked), a
zipped V1 run directory past its limit, a batch config past its limit or expanding past it (alias bombs)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.services import api_token_create
from batches.models import Batch
from batches.planning import BatchInputError, batch_config_parse
from engine.scenario.tests.hostile import ALIAS_BOMB
from runs import v1_import
from runs.models import Run
from runs.v1_import import V1ImportError, run_import_v1_zip
from scenarios.models import Actor, Scenario
from scenarios.services import MAX_ZIP_UNPACKED_BYTES, scenario_import_library

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = User.objects.create_user("big", password="pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def bearer(staff):
    return {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(owner=staff, name='big')[1]}"}


def stored() -> tuple[int, int, int, int]:
    return Scenario.objects.count(), Actor.objects.count(), Run.objects.count(), Batch.objects.count()


def error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "fields"} and body["message"], body
    return body


@pytest.mark.parametrize("path", ["/api/scenarios/", "/api/runs/", "/api/batches/", "/api/batches/plan",
                                  "/api/runs/1/resume", "/api/runs/1/branch"])
def test_a_json_body_past_the_limit_is_413_in_the_error_shape(client, bearer, path):
    before = stored()
    body = json.dumps({"name": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    body = error_shape(client.post(path, body, content_type="application/json", **bearer), 413)
    assert body["code"] == "request_too_large" and f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes" in body["message"]
    assert stored() == before


def test_the_413_is_in_the_published_schema(client):
    schema = client.get("/api/openapi.json").json()
    assert all("413" in operation["responses"] for item in schema["paths"].values() for operation in item.values())


def test_a_scenario_zip_past_the_limit_is_refused_before_it_is_read(client, bearer):
    before = stored()
    upload = SimpleUploadedFile("big.zip", b"x" * (MAX_ZIP_UNPACKED_BYTES + 1), content_type="application/zip")
    body = error_shape(client.post("/api/scenarios/import", {"upload": upload}, **bearer), 400)
    assert "limit is 10 MB" in body["message"] and body["fields"][0]["loc"] == ["upload"]
    assert stored() == before


def test_a_scenario_zip_unpacking_past_the_limit_is_refused(client, bearer):
    before = stored()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("harbour/scenario.yaml", "name: x\n")
        archive.writestr("harbour/background/zeros.md", b"\0" * (MAX_ZIP_UNPACKED_BYTES + 1))
    assert len(buffer.getvalue()) < 100_000  # small to send, big once unpacked
    upload = SimpleUploadedFile("bomb.zip", buffer.getvalue(), content_type="application/zip")
    body = error_shape(client.post("/api/scenarios/import", {"upload": upload}, **bearer), 400)
    assert "unpacks to more than 10 MB" in body["message"]
    assert stored() == before


def test_a_v1_run_zip_past_the_limit_is_refused_sent_or_unpacked(client, staff, monkeypatch):
    monkeypatch.setattr(v1_import, "MAX_ZIP_UNPACKED_BYTES", 1024 * 1024)  # 200 MB is slow to make in a test
    before = stored()
    with pytest.raises(V1ImportError, match="at most 1 MB"):
        run_import_v1_zip(upload=b"x" * (1024 * 1024 + 1))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("run-001/scenario-state.json", "{}")
        archive.writestr("run-001/world-state-001.md", b" " * (1024 * 1024 + 1))
    with pytest.raises(V1ImportError, match="unpacks to more than 1 MB"):
        run_import_v1_zip(upload=buffer.getvalue())
    # The admin's page says so next to the field.
    upload = SimpleUploadedFile("run.zip", b"x" * (1024 * 1024 + 1), content_type="application/zip")
    response = client.post("/admin/runs/run/import-v1/", {"archive": upload})
    assert response.status_code == 200 and b"at most 1 MB" in response.content
    assert stored() == before


def test_a_batch_config_past_the_limit_or_expanding_past_it_is_refused(client, staff):
    scenario_import_library()
    before = stored()
    with pytest.raises(BatchInputError, match="larger than 1 MiB"):
        batch_config_parse(text="experiment_name: x\n" + "#" * 1024 * 1024)
    bomb = ALIAS_BOMB.replace("name: *i", "experiment_name: x\nbase_scenario: ai-summit\nsave_individual_runs: *i")
    with pytest.raises(BatchInputError, match="expands to more than 100,000 values"):
        batch_config_parse(text=bomb)
    for config, words in [("experiment_name: x\n" + "#" * 100_001, b"at most 100000 characters"),
                          (bomb, b"expands to more than 100,000 values"),
                          ("experiment_name: x\nbase_scenario: ai-summit\nturns: !!int abc\n", b"could not be read")]:
        response = client.post("/batches/new/", {"config": config, "start": "1"})
        assert response.status_code == 200 and words in response.content, response.content[:500]
    assert stored() == before
