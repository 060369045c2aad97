"""`manage.py run_scenario`: a real process, its output, its exit codes, Ctrl-C and --resume."""

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from engine.testing.fake_llm import FakeLLMServer
from runs.models import CostRecord, Decision, Run, RunStatus
from runs.tests.workers import MANAGE, worker_environment

pytestmark = pytest.mark.django_db(transaction=True)


def run_scenario(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(MANAGE), "run_scenario", *args],
        env=worker_environment(**env), capture_output=True, text=True, timeout=120,
    )


def test_the_bundled_summit_runs_offline_end_to_end():
    done = run_scenario("ai-summit", "--turns", "2")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Provider: offline" in out and "Estimated cost" in out
    assert "Turn 1…" in out and "turn 2 done" in out
    run = Run.objects.get()
    assert run.status == RunStatus.COMPLETED and run.offline and run.scenario.slug == "ai-summit"
    assert f"Run {run.pk} completed after 2 of 2 turns." in out
    # The page's address is written out, not reversed (no URL configuration loaded): it must be the real one.
    assert f"Run page: {settings.SITE_URL}{reverse('runs:detail', args=[run.pk])}\n" in out
    assert f"Markdown files: {run.output_dir}/" in out
    assert CostRecord.objects.filter(run=run).count() == run.calls > 0
    assert (Path(run.output_dir) / "summary.md").is_file()


def test_json_summary_on_stdout_and_progress_on_stderr():
    done = run_scenario("ai-summit", "--max-turns", "1", "--json", "--seed", "5")  # the V2 document's --turns
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed" and summary["turn"] == 1 and summary["offline"] is True
    assert set(summary["costs"]) == {"by_actor", "by_phase", "by_turn"}
    assert "Turn 1…" in done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no-such-scenario"], "No scenario 'no-such-scenario'"),
        (["ai-summit", "--credit-limit", "-1"], "credit limit must be a positive number"),
        (["--resume", "999"], "No run 999"),
        (["ai-summit", "--turns", "0"], "turns must be between 1 and 1000"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args, expected):
    done = run_scenario(*args)
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_broken_folder_names_the_file_and_exits_2(tmp_path):
    (tmp_path / "scenario.yaml").write_text("name: [unclosed\n")
    done = run_scenario(str(tmp_path))
    assert done.returncode == 2 and "scenario.yaml" in done.stderr and "Traceback" not in done.stderr


def test_halted_at_the_credit_limit_exits_3_and_resumes_with_a_higher_limit():
    server = FakeLLMServer().start_in_thread()
    try:
        llm = {"SCENARIOLAB_LLM_BASE_URL": server.base_url}
        halted = run_scenario("ai-summit", "--turns", "2", "--credit-limit", "0.002", **llm)
        run = Run.objects.get()
        assert halted.returncode == 3, halted.stdout + halted.stderr
        assert run.status == RunStatus.HALTED and "credit limit" in halted.stdout
        assert f"--resume {run.pk} --credit-limit" in halted.stdout

        resumed = run_scenario("--resume", str(run.pk), "--credit-limit", "10", **llm)
    finally:
        server.stop()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.turn == 2 and run.credit_limit == 10


def test_ctrl_c_pauses_cleanly_and_says_how_to_resume():
    server = FakeLLMServer(latency=0.3).start_in_thread()
    try:
        env = worker_environment(SCENARIOLAB_LLM_BASE_URL=server.base_url)
        errors = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe nobody reads while we read stdout
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), "run_scenario", "ai-summit", "--turns", "3"],
            env=env, stdout=subprocess.PIPE, stderr=errors, text=True,
        )
        for line in process.stdout:
            if line.startswith("Turn 2"):
                process.send_signal(signal.SIGINT)
                break
        out, _ = process.communicate(timeout=60)
        errors.seek(0)
        err = errors.read()
    finally:
        server.stop()
    run = Run.objects.get()
    assert process.returncode == 130, out + err
    assert "Interrupted" in out and f"run_scenario --resume {run.pk}" in out and "Traceback" not in err
    assert run.status == RunStatus.PAUSED and run.turn == 1
    assert CostRecord.objects.filter(run=run).count() == run.calls > 0


def test_a_v1_folder_runs_and_a_definition_folder_is_named_after_its_parent(tmp_path):
    from engine.testing.v1_folders import write_v1_scenario

    folder = write_v1_scenario(tmp_path / "river", name="definition")  # V1 kept some scenarios in <name>/definition/
    done = run_scenario(str(folder), "--turns", "1", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed" and summary["turn"] == 1
    assert summary["scenario"] == "river"
    assert Run.objects.get(pk=summary["run"]).scenario_slug == "river"


def test_human_seat_without_a_terminal_waits_and_exits_5():
    done = run_scenario("ai-summit", "--turns", "1", "--human", "norvale")
    assert done.returncode == 5, done.stderr
    assert "Waiting for a person" in done.stdout
    run = Run.objects.get()
    assert run.status == RunStatus.WAITING_FOR_HUMAN


def test_human_seat_at_the_terminal_is_asked_at_the_prompt():
    import os
    import pty
    import select

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, str(MANAGE), "run_scenario", "ai-summit", "--turns", "1", "--human", "norvale"],
                               stdin=slave, stdout=slave, stderr=slave, env=worker_environment(), close_fds=True)
    os.close(slave)
    answers = {"Your reply": "We can work with that.", "Long-term goals": "A treaty; An institute",
               "Priorities": "Win the vote", "Reasoning": "The room is split.", "Action": "We table the text."}
    seen, deadline = "", time.monotonic() + 90
    try:
        while process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096).decode(errors="replace")
            except OSError:
                break
            seen += chunk
            for prompt, answer in answers.items():
                if chunk.rstrip().endswith(":") and prompt in chunk.splitlines()[-1]:
                    os.write(master, (answer + "\n").encode())
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, seen[-3000:]
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    assert "Your seat: Republic of Norvale" in seen or "Your seat:" in seen
    decision = Decision.objects.get(actor="norvale")
    assert decision.provider == "human" and decision.action == "We table the text."
    assert decision.long_term_goals == ["A treaty", "An institute"]
