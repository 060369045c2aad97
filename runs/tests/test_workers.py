"""Runs executed by real `run_huey` worker processes: on the queue, claimed once, resumed after kill -9, handed
back to the queue by a worker told to stop."""

import os
import signal

import pytest

from engine import EventType
from engine.testing.fake_llm import FakeLLMServer
from runs import services
from runs.execution import executor
from runs.models import CostRecord, Decision, Run, RunEvent, RunStatus, Turn
from runs.tests.factories import make_run
from runs.tests.workers import environment, final_status, start_worker, stop, stop_with_sigterm, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.both_profiles]


def test_a_worker_process_plays_a_queued_run():
    worker = start_worker()
    try:
        run = make_run(turns=2)
        services.run_enqueue(run=run)
        status = wait_for(lambda: final_status(run), what="the worker to finish the run")
    finally:
        errors = stop(worker)
    assert status == RunStatus.COMPLETED, errors
    run.refresh_from_db()
    assert run.turn == 2 and run.worker.endswith(f":{worker.pid}")
    assert Decision.objects.filter(run=run).count() == 2 * len(run.actors)


def test_two_workers_given_the_same_run_play_it_once():
    workers = [start_worker(), start_worker()]
    try:
        run = make_run(turns=1)
        services.run_enqueue(run=run)
        services.run_enqueue(run=run)
        wait_for(lambda: final_status(run), what="the run to finish")
        from huey.contrib.djhuey import HUEY

        wait_for(lambda: HUEY.pending_count() == 0, what="both workers to take a task")
    finally:
        for worker in workers:
            stop(worker)
    assert RunEvent.objects.filter(run=run, type=EventType.SCENARIO_STARTED).count() == 1
    assert Decision.objects.filter(run=run).count() == len(run.actors)


def test_a_worker_killed_mid_call_is_resumed_with_nothing_lost_or_doubled(settings):
    """kill -9 while the worker waits on model calls; the resumed run completes, every turn once, and the
    ledger holds exactly the tokens the server billed (hung calls the dead client left were never billed)."""
    settings.RUN_STALE_SECONDS = 1
    server = FakeLLMServer(hang_seconds=60).start_in_thread()
    # Calls 1-14 answer, every later one hangs: the kill comes while the worker waits on them. (Not just one
    # round's worth: a turn's QA checks and the next turn's talks are in flight together, so requests may still
    # arrive after the first hangs, and an answered one would be billed in the moment before the kill.)
    server.set_faults([None] * 14 + ["hang"] * 60)
    llm = {"SCENARIOLAB_LLM_BASE_URL": server.base_url, "SCENARIOLAB_LLM_TIMEOUT": "60"}
    worker = None
    try:
        os.environ.update(llm)  # the run's plan is made here, with the same server
        run = make_run(turns=2)
        assert not run.offline
        worker = start_worker(**llm)
        services.run_enqueue(run=run)

        def hanging_and_recorded() -> bool:
            # Only hanging calls in flight (every other request answered), and every answer recorded: a
            # kill now cannot fall between an answer being billed and its ledger line being written.
            stats = server.stats
            hung = stats["faults"].get("hang", 0)
            only_hangs_in_flight = stats["requests"] == stats["completions"] + hung
            return hung > 0 and only_hangs_in_flight and CostRecord.objects.filter(run=run).count() == stats["completions"]

        wait_for(hanging_and_recorded, what="a hanging call with every answered call recorded")
        billed_before = server.stats["completions"]
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        stop(worker)
        # The dead worker may have sent only some of the round's calls: the hangs it did not take are not the
        # resumed worker's (on a loaded machine it waited out a 60 s hang).
        server.set_faults([])
        assert CostRecord.objects.filter(run=run).count() == billed_before, "every billed call is in the ledger"

        wait_for(lambda: services.selectors.run_is_crashed(Run.objects.get(pk=run.pk)), what="the run to show as crashed")
        services.run_resume(run=Run.objects.get(pk=run.pk))
        worker = start_worker(**llm)
        status = wait_for(lambda: final_status(run), what="the resumed run to finish")
        errors = stop(worker)
        billed = server.stats
    finally:
        if worker is not None:
            stop(worker)  # a failed wait must not leave a worker behind
        for key in llm:
            os.environ.pop(key, None)
        server.stop()

    assert status == RunStatus.COMPLETED, errors
    assert list(Turn.objects.filter(run=run).values_list("turn", flat=True)) == [0, 1, 2], "no turn twice"
    assert Decision.objects.filter(run=run).count() == 2 * len(run.actors), "no decision twice"
    paid = CostRecord.objects.filter(run=run, cached=False)
    assert sum(r.input_tokens for r in paid) == billed["prompt_tokens"]
    assert sum(r.output_tokens for r in paid) == billed["completion_tokens"]
    assert billed["abandoned"] >= 1


def _paid_equals_billed(run: Run, billed: dict) -> None:
    paid = CostRecord.objects.filter(run=run, cached=False)
    assert sum(r.input_tokens for r in paid) == billed["prompt_tokens"], "the ledger holds every token billed, once"
    assert sum(r.output_tokens for r in paid) == billed["completion_tokens"]


def test_sigterm_mid_turn_hands_the_run_to_the_next_worker_with_nothing_paid_twice():
    """systemctl stop / a deploy: the worker pauses its run between model calls (those in flight answered and
    booked, none started), stores it, queues it again and exits; the next worker completes it."""
    server = FakeLLMServer(latency=0.3).start_in_thread()
    llm = {"SCENARIOLAB_LLM_BASE_URL": server.base_url, "SCENARIOLAB_WORKER_STOP_SECONDS": "20"}
    worker = None
    try:
        with environment(**llm):
            run = make_run(turns=2)
            worker = start_worker(**llm)
            services.run_enqueue(run=run)
            wait_for(lambda: CostRecord.objects.filter(run=run, turn=1).count() >= 4, what="turn 1 under way")
            took, log = stop_with_sigterm(worker)
            run.refresh_from_db()
            assert run.status == RunStatus.QUEUED and not run.claim and run.turn < 2, (run.status, run.turn, log)
            paused = RunEvent.objects.filter(run=run, type=EventType.SCENARIO_PAUSED).get()
            assert paused.data["reason"] == executor.WORKER_STOPPING
            assert took < 5, f"a call lasts 0.3 s: the worker should be gone within a few, not {took:.1f} s"
            assert server.stats["abandoned"] == 0, "no call was cut off"
            _paid_equals_billed(run, server.stats)

            worker = start_worker(**llm)  # no resume by anyone: the stopped worker queued it
            status = wait_for(lambda: final_status(run), what="the next worker to finish the run")
            log = stop(worker)
            billed = server.stats
    finally:
        if worker is not None:
            stop(worker)
        server.stop()
    assert status == RunStatus.COMPLETED, log
    assert list(Turn.objects.filter(run=run).values_list("turn", flat=True)) == [0, 1, 2], "no turn twice"
    assert Decision.objects.filter(run=run).count() == 2 * len(run.actors), "no decision twice"
    assert not RunEvent.objects.filter(run=run, type__in=[EventType.SCENARIO_FAILED, EventType.TURN_FAILED]).exists()
    _paid_equals_billed(run, billed)


def test_a_call_still_in_flight_at_the_stop_bound_is_abandoned_and_the_run_queued_all_the_same():
    server = FakeLLMServer(hang_seconds=60).start_in_thread()
    server.set_faults([None] * 3 + ["hang"] * 30)
    llm = {"SCENARIOLAB_LLM_BASE_URL": server.base_url, "SCENARIOLAB_LLM_TIMEOUT": "60", "SCENARIOLAB_WORKER_STOP_SECONDS": "1"}
    worker = None
    try:
        with environment(**llm):
            run = make_run(turns=1)
            worker = start_worker(**llm)
            services.run_enqueue(run=run)
            wait_for(lambda: server.stats["faults"].get("hang", 0) > 0, what="a call that hangs")
            took, log = stop_with_sigterm(worker)
    finally:
        if worker is not None:
            stop(worker)
        server.stop()
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and not run.claim, (run.status, log)
    assert took < 1 + 10, f"the bound is 1 s (then its last events are stored): it took {took:.1f} s"
    _paid_equals_billed(run, server.stats)


def test_tasks_an_older_version_left_in_its_redis_list_are_played_after_the_upgrade():
    """Before the fair queue, Huey's queue on Redis was a list under SCENARIOLAB_HUEY_NAME; the priority queue has
    a key of its own, and a worker starting moves what the list still holds into it."""
    from django.conf import settings
    from huey import RedisHuey
    from huey.contrib.djhuey import HUEY

    from runs.tasks import execute_run

    if not settings.REDIS_URL:
        pytest.skip("a Redis queue only: make test-scale-out plays this on PostgreSQL + Redis")
    older = RedisHuey(name=settings.HUEY_NAME, url=settings.REDIS_URL)
    HUEY.storage.flush_queue()  # what earlier tests left queued (runs long gone) is not the point
    run = make_run(turns=1)
    older.storage.enqueue(HUEY.serialize_task(execute_run.s(run.pk)))  # what a web process of the older version queued
    assert HUEY.pending_count() == 0 and older.pending_count() == 1
    worker = start_worker()
    try:
        status = wait_for(lambda: final_status(run), what="the upgraded worker to play the older task")
    finally:
        log = stop(worker)
        older.storage.flush_queue()
    assert status == RunStatus.COMPLETED, log
    assert "moved 1 task(s) left in the queue of an older version" in log
