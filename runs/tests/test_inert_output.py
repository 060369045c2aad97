"""Model text that tries to run (script, event handlers, javascript: links, entities that decode to markup)
is shown as text everywhere it is shown: run, seat, compare and batch pages, the admin's run page and its
inlines, the live fragments; the API answers JSON that no browser takes for HTML."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client

from batches.tests.factories import start_batch
from engine.testing.fake_llm import FakeLLMServer
from runs.execution import executor
from runs.models import RunStatus
from runs.tests.factories import make_run

pytestmark = pytest.mark.django_db(databases="__all__")

MARK = "pwned"
HOSTILE = (f' <script>window.{MARK}=1</script><img src="x" onerror="window.{MARK}=2">'
           f'<a href="javascript:window.{MARK}=3">click</a> &lt;script&gt;window.{MARK}=4&lt;/script&gt;'
           f' [link](javascript:window.{MARK}=5) <svg onload="window.{MARK}=6"></svg>')


class Executable(HTMLParser):
    """Collects what a browser would run: script elements other than the site's own files and inert JSON
    data, on* attributes, and javascript: (or data:/vbscript:) URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action", "formaction", "xlink:href") and value and \
                    value.strip().lower().replace("\t", "").startswith(("javascript:", "vbscript:", "data:text/html")):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag == "script":
            self._in_script = attributes

    def handle_data(self, data):
        if self._in_script is not None and MARK in data and self._in_script.get("type") != "application/json":
            self.found.append(f"<script>{data[:80]}")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None


def executable(html: str) -> list[str]:
    parser = Executable()
    parser.feed(html)
    return parser.found


def executable_markup_from_model_text(monkeypatch) -> tuple[list[str], int]:
    """Play runs against a server whose every answer is hostile; return what would execute on the pages
    (and JSON served as something else), and how many pages were read."""
    server = FakeLLMServer(text_suffix=HOSTILE).start_in_thread()
    try:
        monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", server.base_url)
        return _read_everything()
    finally:
        server.stop()


def _read_everything() -> tuple[list[str], int]:
    import uuid

    staff = User.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}", password="pw", is_staff=True, is_superuser=True)
    played = executor.run_execute(run_id=make_run(turns=1, owner=staff, use_cache=False).pk)
    seated = executor.run_execute(run_id=make_run(turns=1, owner=staff, use_cache=False, human_seats=("norvale",)).pk)
    assert played.status == RunStatus.COMPLETED and not played.offline
    assert seated.status == RunStatus.WAITING_FOR_HUMAN
    batch = start_batch(owner=staff)

    client = Client()
    client.force_login(staff)
    pages = [
        f"/runs/{played.pk}/", f"/runs/{played.pk}/calls/", f"/runs/{seated.pk}/", f"/runs/{seated.pk}/seats/norvale/",
        f"/runs/compare/?ids={played.pk}&ids={seated.pk}&turn=1", f"/batches/{batch.pk}/", f"/batches/{batch.pk}/live/",
        f"/admin/runs/run/{played.pk}/change/", f"/admin/runs/run/{seated.pk}/change/", "/admin/runs/run/", "/runs/",
    ]
    problems, shown = [], 0
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        html = response.content.decode()
        shown += MARK in html
        problems += [f"{url}: {found}" for found in executable(html)]
    assert shown >= 5, "the hostile text reached too few pages for the check to mean anything"

    for url in (f"/api/runs/{played.pk}/decisions", f"/api/runs/{played.pk}/communications", f"/api/runs/{played.pk}/turns",
                f"/api/runs/{played.pk}/events", f"/api/runs/{seated.pk}/seats/norvale", f"/api/runs/compare?ids={played.pk}&ids={seated.pk}"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        if not response["Content-Type"].startswith("application/json") or response.get("X-Content-Type-Options") != "nosniff":
            problems.append(f"{url}: served as {response['Content-Type']} without nosniff")
    return problems, len(pages)


def test_hostile_model_text_is_inert_everywhere(monkeypatch):
    problems, _ = executable_markup_from_model_text(monkeypatch)
    assert not problems, "executable markup from model text:\n" + "\n".join(problems)


def test_the_parser_sees_what_a_browser_would_run():
    found = executable(f'<p>ok</p><script>{MARK}()</script><img onerror="x"><a href=" JavaScript:x">y</a>'
                       f'<script type="application/json">{{"{MARK}": 1}}</script><script src="/static/js/run-live.js"></script>')
    assert len(found) == 3
