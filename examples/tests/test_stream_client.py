"""examples/stream_client.py against daphne in a process of its own (on the test database): a finished run's
events, from a seq, to its end; a run not the token owner's refused."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from accounts.services import api_token_create
from bench.live_latency import free_port, wait_for_http
from runs.execution import executor
from runs.models import RunEvent
from runs.tests.factories import make_run
from runs.tests.workers import stop, worker_environment

CLIENT = Path(__file__).resolve().parents[1] / "stream_client.py"


@pytest.mark.django_db(transaction=True)
def test_the_example_follows_a_run_from_a_seq_to_its_end_and_refuses_a_run_not_its_owners():
    owner = User.objects.create_user("scripter", password="pw")
    stranger = User.objects.create_user("stranger", password="pw")
    run = executor.run_execute(run_id=make_run(turns=2, owner=owner).pk)
    started = RunEvent.objects.get(run=run, type="turn_started", data__turn=2).seq
    port = free_port()
    log = tempfile.TemporaryFile()  # a file, not a pipe nobody reads
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "scenariolab_site.asgi:application"], env=worker_environment(), stdout=log, stderr=subprocess.STDOUT)
    server.log = log
    url = f"http://127.0.0.1:{port}"

    def client(user, *args):
        token = api_token_create(owner=user, name="stream")[1]
        return subprocess.run([sys.executable, str(CLIENT), str(run.pk), "--url", url, "--token", token, *args],
                              capture_output=True, text=True, timeout=60)

    try:
        wait_for_http(f"{url}/accounts/login/", process=server, every=0.1)
        done = client(owner, "--after", str(started - 1))
        refused = client(stranger)
    finally:
        stop(server)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Turn 2…" and "Turn 1…" not in lines, "from the seq asked for, nothing before it"
    assert "  turn 2 done, $0.0000 so far" in lines and lines[-1] == "completed: completed"
    assert refused.returncode == 2 and "no such run, or not yours" in refused.stderr
