"""An API key from the environment is used and never written down: not in any table, log line, page, API
answer, event, export, output file or error message, for a run that works and for one the server refuses."""

from __future__ import annotations

import contextlib
import io
import logging
import uuid
import zipfile
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.db import router
from django.test import Client

from engine.testing.fake_llm import FakeLLMServer
from runs.execution import executor
from runs.models import Run, RunStatus
from runs.tests.factories import make_run
from scenariolab_site.tests.test_permission_matrix import _walk

pytestmark = pytest.mark.django_db(databases="__all__")


def every_row() -> str:
    found = []
    for model in apps.get_models():
        rows = model._default_manager.using(router.db_for_read(model)).values_list()
        found.append(f"{model._meta.label}: {list(rows)!r}")
    return "\n".join(found)


def every_answer_about(run: Run, client: Client) -> dict[str, str]:
    """Each page and API GET that names a run (from the resolver), the admin's run page, unzipped exports."""
    answers = {}
    for route, _name, _pattern in _walk(__import__("django.urls", fromlist=["get_resolver"]).get_resolver().url_patterns):
        if "<" not in route or "seats" in route:
            continue
        if not (route.startswith("runs/<int:pk>/") or route.startswith("api/runs/<run_id>")):
            continue
        url = "/" + route.replace("<int:pk>", str(run.pk)).replace("<run_id>", str(run.pk))
        if "<" in url:
            continue  # names a record of the run besides it (a part, a call): its listing is read instead
        response = client.get(url)
        if response.status_code == 405:
            continue
        assert response.status_code == 200, (url, response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        answers[url] = body.decode(errors="replace")
        if body[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                for name in archive.namelist():
                    answers[f"{url}!{name}"] = archive.read(name).decode(errors="replace")
    for url in (f"/admin/runs/run/{run.pk}/change/", "/admin/runs/run/", f"/runs/compare/?ids={run.pk}&ids={run.pk}"):
        answers[url] = client.get(url).content.decode(errors="replace")
    return answers


def output_files() -> dict[str, str]:
    root = Path(settings.RUNS_OUTPUT_DIR)
    return {str(p): p.read_bytes().decode(errors="replace") for p in root.rglob("*") if p.is_file()}


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{self.format(record)} {record.args!r} {record.__dict__!r}")


def places_holding_the_key(monkeypatch) -> tuple[list[str], int]:
    """Play a run with a marker key and one whose key the server refuses; return where the key shows up,
    and in how many places it was looked for."""
    key = f"sk-secret-{uuid.uuid4().hex}"
    logs, root = _Everything(), logging.getLogger()
    level, quiet = root.level, [h for h in root.handlers if h.level == logging.NOTSET]
    for handler in quiet:  # the console keeps its level while every DEBUG record reaches `logs`
        handler.setLevel(level)
    root.setLevel(logging.DEBUG)
    root.addHandler(logs)
    out, err = io.StringIO(), io.StringIO()
    staff = User.objects.create_user(f"staff-{key[-6:]}", password="pw", is_staff=True, is_superuser=True)
    monkeypatch.setenv("SCENARIOLAB_LLM_API_KEY", key)
    good = FakeLLMServer(api_key=key).start_in_thread()
    wrong = FakeLLMServer(api_key="a-key-that-is-not-ours").start_in_thread()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", good.base_url)
            worked = executor.run_execute(run_id=make_run(turns=1, owner=staff, use_cache=False).pk)
            monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", wrong.base_url)
            refused = executor.run_execute(run_id=make_run(turns=1, owner=staff, use_cache=False).pk)
        billed = good.stats
    finally:
        good.stop()
        wrong.stop()
        root.removeHandler(logs)
        root.setLevel(level)
        for handler in quiet:
            handler.setLevel(logging.NOTSET)

    assert worked.status == RunStatus.COMPLETED and not worked.offline and billed["requests"] > 0, "the key was used"
    assert refused.status in (RunStatus.FAILED, RunStatus.PAUSED) and (refused.error or refused.halt_reason)

    client = Client()
    client.force_login(staff)
    places = {"database": every_row(), "log": "\n".join(logs.lines), "output": out.getvalue() + err.getvalue()}
    places |= {f"file {path}": text for path, text in output_files().items()}
    for run in (worked, refused):
        places |= {f"answer {url}": text for url, text in every_answer_about(run, client).items()}
        places[f"error of run {run.pk}"] = f"{run.error} {run.halt_reason}"
    assert len(places) > 30, "too few places looked at to mean anything"
    return [where for where, text in places.items() if key in text or key[3:] in text], len(places)


def test_the_api_key_is_never_written_down(monkeypatch):
    leaked, _ = places_holding_the_key(monkeypatch)
    assert not leaked, f"the API key appears in: {leaked}"
