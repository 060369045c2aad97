"""Scenario "permissions": the permission matrix over every URL and role, CSRF on every write, the run
socket's origin check, the API-key grep and hostile model text on every page, played as one trial each.

The same checks are pytest tests (scenariolab_site/tests/test_permission_matrix.py, test_csrf_and_origins.py,
test_secrets.py, runs/tests/test_inert_output.py) and run in `make test` there, so the bounded suite plays
no trial of this scenario; `make reliability` plays them again here and reports what they covered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from reliability import Result

def run(trials: int, *, seed: int = 0) -> Result:
    from runs.tests import test_inert_output as inert
    from scenariolab_site.tests import test_csrf_and_origins as csrf
    from scenariolab_site.tests import test_permission_matrix as matrix
    from scenariolab_site.tests import test_secrets as secrets

    failures, passed, counts = [], 0, {}
    started = time.monotonic()
    for trial in range(trials):
        tag = f"-{seed}-{trial}-{uuid.uuid4().hex[:6]}"
        world = matrix.make_world(tag)
        found, _ = matrix.routes(world)
        counts["routes"] = len(found)
        checks: list[tuple[str, Callable[[], object]]] = [
            ("matrix", lambda: matrix.test_every_route_for_every_role(world)),
            ("admin actions", lambda: matrix.test_admin_actions_are_refused_to_everyone_but_staff(world)),
            ("CSRF with a session", lambda: csrf.test_a_session_without_its_csrf_token_changes_nothing(world)),
            ("bearer without CSRF", lambda: csrf.test_a_bearer_token_needs_no_csrf_token(world)),
            ("socket origins", lambda: _origins(csrf, tag)),
            ("API key grep", lambda: _secrets(secrets, counts)),
            ("inert model text", lambda: _inert(inert, counts)),
        ]
        problems = []
        for name, check in checks:
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - every failing check is reported, not the first only
                lines = str(exc).splitlines()
                # The message's heading and its first item ("unexpected outcomes:" alone says nothing).
                problems.append(f"{name}: {' '.join(lines[:2])[:300]}")
        if problems:
            failures.append(f"trial {trial + 1}: " + "; ".join(problems))
        else:
            passed += 1
    if not trials:
        return Result("permissions", 0, 0, "played in make test as pytest tests; in full by make reliability")
    figure = (f"{counts['routes']} URLs × {len(matrix.ROLES)} roles (GET and every write), every admin action, CSRF on every write, "
              f"{len(csrf.ORIGINS)} socket origins, the API key looked for in {counts.get('places', '?')} places, "
              f"hostile model text on {counts.get('pages', '?')} pages; {(time.monotonic() - started) / trials:.1f} s a trial")
    if failures:
        figure += "; FAILED " + " | ".join(failures)
    return Result("permissions", trials, passed, figure)


def _origins(csrf, tag: str) -> None:
    from runs.execution import executor
    from runs.tests.factories import make_run

    owner = User.objects.create_user(f"socket{tag}", password="pw")
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner).pk)
    client = Client()
    client.force_login(owner)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        for origin, accepted in csrf.ORIGINS:
            headers = [(b"host", b"localhost:8000"), cookie] + ([(b"origin", origin)] if origin else [])
            got = asyncio.run(csrf._connect(run.pk, headers))
            assert got is accepted, f"Origin {origin!r}: {'accepted' if got else 'refused'}"


def _secrets(secrets, counts: dict) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        leaked, counts["places"] = secrets.places_holding_the_key(monkeypatch)
    assert not leaked, f"the API key appears in: {leaked}"


def _inert(inert, counts: dict) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        problems, counts["pages"] = inert.executable_markup_from_model_text(monkeypatch)
    assert not problems, f"executable markup: {problems[:3]}"
