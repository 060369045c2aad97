"""Run services: claiming, pause and resume, cancel, crashes, the credit limit, the zip of Markdown files."""

import asyncio
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from engine import EventType
from engine.testing.fake_llm import FakeLLMServer
from engine.visibility import FULL
from runs import downloads, selectors, services
from runs.execution import executor
from runs.models import CostRecord, Decision, Run, RunEvent, RunStatus
from runs.execution.store import compact_ledger, load_run_state
from runs.tests.factories import make_run

pytestmark = pytest.mark.django_db


def test_a_run_is_claimed_once():
    run = make_run(turns=1)
    assert executor.run_execute(run_id=run.pk).status == RunStatus.COMPLETED
    assert executor.run_execute(run_id=run.pk) is None, "a second executor finds it claimed"
    assert RunEvent.objects.filter(run=run, type=EventType.SCENARIO_STARTED).count() == 1


def test_pause_then_resume_reaches_the_state_of_an_uninterrupted_run():
    whole = make_run(turns=3, seed=3)
    executor.run_execute(run_id=whole.pk)

    paused = make_run(turns=3, seed=3)
    controls = executor.RunControls()

    def pause_after_turn_one(event):
        if event.type is EventType.TURN_COMPLETED and event.data["turn"] == 1:
            controls.interrupt()

    first = executor.run_execute(run_id=paused.pk, progress=pause_after_turn_one, controls=controls)
    assert first.status == RunStatus.PAUSED and first.turn < 3
    resumed = executor.run_execute(run_id=services.run_resume(run=first, enqueue=False).pk)

    assert resumed.status == RunStatus.COMPLETED and resumed.turn == 3
    a, b = load_run_state(Run.objects.get(pk=whole.pk)), load_run_state(resumed)
    assert [(d.turn, d.actor, d.action) for d in a.decisions] == [(d.turn, d.actor, d.action) for d in b.decisions]
    assert a.world_states == b.world_states
    assert RunEvent.objects.filter(run=resumed, type=EventType.SCENARIO_RESUMED).count() == 1
    seqs = list(RunEvent.objects.filter(run=resumed).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)), "numbering continues across the resume"
    assert Decision.objects.filter(run=resumed).count() == 3 * len(resumed.actors), "no decision twice"


def test_a_stale_heartbeat_shows_a_crash_that_can_be_resumed(settings):
    run = make_run(turns=1)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    run.refresh_from_db()
    assert not selectors.run_is_crashed(run)
    with pytest.raises(services.RunConflict):
        services.run_resume(run=run)  # a live run is not resumed under its worker's feet

    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS + 1))
    run.refresh_from_db()
    assert selectors.run_display_status(run) == "crashed"
    done = executor.run_execute(run_id=services.run_resume(run=run, enqueue=False).pk)
    assert done.status == RunStatus.COMPLETED


def test_cancel_stops_a_queued_run_and_a_cancelled_run_stays_cancelled():
    run = services.run_cancel(run=make_run(turns=1))
    assert run.status == RunStatus.CANCELLED
    assert executor.run_execute(run_id=run.pk) is None
    with pytest.raises(services.RunConflict, match="cancelled"):
        services.run_resume(run=run)


def test_a_completed_run_resumes_only_to_more_turns():
    run = executor.run_execute(run_id=make_run(turns=1).pk)
    with pytest.raises(services.RunConflict, match="more turns"):
        services.run_resume(run=run)
    more = executor.run_execute(run_id=services.run_resume(run=run, max_turns=2, enqueue=False).pk)
    assert more.status == RunStatus.COMPLETED and more.turn == 2


@pytest.mark.parametrize("limit", [0, -1, float("nan")])
def test_a_nonsense_credit_limit_is_refused_before_anything_is_stored(limit):
    with pytest.raises(services.RunInputError, match="credit limit"):
        make_run(credit_limit=limit)
    assert not Run.objects.exists()


def test_the_credit_limit_halts_a_priced_run_and_a_higher_limit_resumes_it(monkeypatch):
    server = FakeLLMServer().start_in_thread()
    try:
        monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", server.base_url)
        run = make_run(turns=2, credit_limit=0.002, use_cache=False)
        assert not run.offline
        halted = executor.run_execute(run_id=run.pk)
        assert halted.status == RunStatus.HALTED and "credit limit" in halted.halt_reason
        assert 0 < halted.total_cost <= 0.002

        resumed = executor.run_execute(run_id=services.run_resume(run=halted, credit_limit=5.0, enqueue=False).pk)
        billed = server.stats
    finally:
        server.stop()

    assert resumed.status == RunStatus.COMPLETED
    ledger = CostRecord.objects.filter(run=run)
    assert sum(r.input_tokens for r in ledger) == billed["prompt_tokens"]
    assert sum(r.output_tokens for r in ledger) == billed["completion_tokens"]
    assert resumed.total_cost == pytest.approx(sum(r.cost for r in ledger))


def test_the_markdown_zip_holds_every_view_of_the_run():
    run = executor.run_execute(run_id=make_run(turns=2).pk)
    archive = zipfile.ZipFile(io.BytesIO(downloads.run_markdown_zip(run=run, viewpoint=FULL)))
    names = {name.split("/", 1)[1] for name in archive.namelist()}
    assert {"world-state-000.md", "world-state-002.md", "summary.md", "state.json"} <= names
    assert {f"{a['short_name']}-001.md" for a in run.actors} <= names
    assert "offline provider" in archive.read(f"ai-summit-run-{run.number:03d}/summary.md").decode()


def test_a_run_planned_offline_stays_offline_in_a_process_that_has_a_server(monkeypatch):
    run = make_run(turns=1)
    assert run.offline
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    done = executor.run_execute(run_id=run.pk)
    assert done.status == RunStatus.COMPLETED
    assert set(CostRecord.objects.filter(run=run).values_list("provider", flat=True)) == {"offline"}


def test_a_worker_without_the_planned_server_fails_the_run_with_the_reason(monkeypatch):
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    run = make_run(turns=1)
    monkeypatch.delenv("SCENARIOLAB_LLM_BASE_URL")
    done = executor.run_execute(run_id=run.pk)
    assert done.status == RunStatus.FAILED
    assert "no API key or base URL" in done.error and "resume" in done.error
    assert not CostRecord.objects.filter(run=run).exists()
    assert services.run_resume(run=done, enqueue=False).status == RunStatus.QUEUED


def test_a_phase_cancelled_with_cost_events_in_line_loses_no_ledger_line_and_no_event():
    """Ctrl-C lands while several actors' calls have returned and their cost events wait to be stored."""
    run = make_run(turns=1)
    controls = executor.RunControls()

    def interrupt_at_first_decision_cost(event):
        if event.type is EventType.COST_INCURRED and event.data["phase"] == "decision":
            controls.interrupt()

    paused = executor.run_execute(run_id=run.pk, progress=interrupt_at_first_decision_cost, controls=controls)
    saved = json.loads((Path(paused.output_dir) / "state.json").read_text())

    assert paused.status == RunStatus.PAUSED
    ledger = list(CostRecord.objects.filter(run=run))
    assert len(ledger) == len(saved["costs"]) == paused.calls
    assert [r.position for r in ledger] == list(range(len(ledger)))
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)), "no numbered event is lost"
    assert RunEvent.objects.filter(run=run, type=EventType.COST_INCURRED).count() == len(ledger)


def test_an_executor_that_lost_its_claim_stops_and_writes_nothing_more(settings):
    """It looked crashed and the run was handed to another process: the old executor must not go on."""
    settings.RUN_HEARTBEAT_SECONDS = 0.02
    run = make_run(turns=3)
    taken = []

    async def taken_over_after_turn_one(event):
        if event.type is EventType.TURN_COMPLETED and event.data["turn"] == 1 and not taken:
            taken.append(await Run.objects.filter(pk=run.pk).aupdate(claim="another-process"))
            await asyncio.sleep(0.2)  # the next heartbeat notices

    executor.run_execute(run_id=run.pk, progress=taken_over_after_turn_one)
    run.refresh_from_db()
    assert taken and run.claim == "another-process"
    assert run.turn <= 1 and run.status == RunStatus.RUNNING, "the old executor saved nothing after losing the claim"


def test_the_ledger_is_renumbered_when_a_line_went_missing_before_a_crash():
    run = executor.run_execute(run_id=make_run(turns=1).pk)
    CostRecord.objects.filter(run=run, position=3).delete()  # a recorder write that failed, then a crash
    assert compact_ledger(run.pk) == run.calls - 1
    assert list(CostRecord.objects.filter(run=run).values_list("position", flat=True)) == list(range(run.calls - 1))


def test_an_end_turn_already_played_is_refused():
    run = executor.run_execute(run_id=make_run(turns=2).pk)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.PAUSED)
    run.refresh_from_db()
    with pytest.raises(services.RunInputError, match="end turn must be after"):
        services.run_resume(run=run, max_turns=2)


def test_a_queued_run_whose_task_was_lost_can_be_queued_again():
    run = make_run(turns=1)
    assert services.run_resume(run=run, enqueue=False).status == RunStatus.QUEUED
    assert executor.run_execute(run_id=run.pk).status == RunStatus.COMPLETED
