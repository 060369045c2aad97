"""examples/api_client.py against a live server and a real worker, with the offline provider."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from accounts.services import api_token_create
from runs.models import Run, RunStatus
from runs.tests.workers import start_worker, stop, worker_environment
from scenarios.services import scenario_import_library

CLIENT = Path(__file__).resolve().parents[1] / "api_client.py"


@pytest.mark.django_db(transaction=True)
def test_the_example_client_starts_a_run_follows_it_and_prints_its_costs(live_server):
    owner = User.objects.create_user("scripter", password="pw")
    token = api_token_create(owner=owner, name="example")[1]
    scenario_import_library()
    worker = start_worker()
    try:
        done = subprocess.run(
            [sys.executable, str(CLIENT), "--url", live_server.url, "--token", token, "--turns", "2", "--poll", "0.2"],
            env=worker_environment(), capture_output=True, text=True, timeout=180,
        )
    finally:
        log = stop(worker)
    assert done.returncode == 0, done.stdout + done.stderr + log
    run = Run.objects.get()
    assert run.status == RunStatus.COMPLETED and run.owner == owner
    out = done.stdout
    assert f"Run {run.pk} started" in out and "Turn 1…" in out and "turn 2 done" in out
    assert f"Run {run.pk} completed after 2 of 2 turns." in out
    assert f"over {run.calls} calls" in out and "offline provider" in out and "by phase:" in out
