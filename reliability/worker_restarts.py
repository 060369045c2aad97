"""Scenario "worker restarts": workers are stopped with SIGTERM again and again while they play runs, as a deploy's
rolling restart or `systemctl restart` does, and a new worker takes each one's place.

A trial is one run of the bundled summit (TURNS turns) against the loopback fake LLM server (CALL_SECONDS a
call); all the trials' runs are queued at once on WORKERS workers of THREADS threads. Every RESTART_SECONDS
(drawn around it from the seed) one worker, the one longest up, gets SIGTERM; the next one starts at once.
Nobody resumes anything: a stopped worker must hand its runs back to the queue itself.

A run's trial holds when it completed and played once (each turn and decision once, seqs 1..N, no turn failed).
Every trial fails when a stopped worker took longer than STOP_LIMIT seconds to exit, left a run running (it would
have looked crashed), cut a model call off (the server saw one abandoned), or the ledger of the round differs
from what the server billed (a call paid twice, or paid and not booked).
"""

from __future__ import annotations

import os
import random
import signal
import time

from django.db.models import Sum

from engine import EventType
from engine.testing.fake_llm import FakeLLMServer
from reliability import Result
from reliability.checks import turns_and_decisions_once
from runs import services
from runs.models import CostRecord, Run, RunEvent, RunStatus
from runs.tests.factories import make_run
from runs.tests.workers import final_status, start_worker, stop, wait_for

NAME = "worker restarts"
TURNS = 3
CALL_SECONDS = 0.1
WORKERS = 2
RESTART_SECONDS = 1.5  # between two SIGTERMs, on average
STOP_LIMIT = 10.0  # seconds from SIGTERM to exit: a call lasts CALL_SECONDS, storing the last events a moment


def run(trials: int, *, seed: int = 0) -> Result:
    if not trials:
        return Result(NAME, 0, 0, "played in make test as runs/tests/test_workers.py's SIGTERM tests; in full by make reliability")
    rng = random.Random(seed)
    server = FakeLLMServer(latency=CALL_SECONDS).start_in_thread()
    env = {"SCENARIOLAB_LLM_BASE_URL": server.base_url, "SCENARIOLAB_WORKER_STOP_SECONDS": "20"}
    os.environ.update({"SCENARIOLAB_LLM_BASE_URL": server.base_url})  # the runs are planned against it
    workers, stops, problems, started = [], [], [], time.monotonic()
    try:
        runs = [make_run(turns=TURNS) for _ in range(trials)]
        workers = [start_worker(**env) for _ in range(min(WORKERS, trials))]
        for one in runs:
            services.run_enqueue(run=one)
        # The first stop once the runs are under way, then one every RESTART_SECONDS or so.
        wait_for(lambda: CostRecord.objects.filter(run__in=runs).count() >= 3, what="the runs to be under way")
        deadline = time.monotonic() + 60 + 30 * trials
        while not all(final_status(one) for one in runs) and time.monotonic() < deadline:
            if stops:
                time.sleep(rng.uniform(0.5, 1.5) * RESTART_SECONDS)
            if all(final_status(one) for one in runs):
                break
            oldest = workers.pop(0)
            at = time.monotonic()
            oldest.send_signal(signal.SIGTERM)
            try:
                oldest.wait(STOP_LIMIT + 30)
            finally:
                took = time.monotonic() - at
                log = stop(oldest)
            stops.append(took)
            if took > STOP_LIMIT:
                problems.append(f"a worker took {took:.1f} s to stop (limit {STOP_LIMIT:.0f} s)")
            left = Run.objects.filter(status=RunStatus.RUNNING, worker__endswith=f":{oldest.pid}")
            if left.exists():
                problems.append(f"a stopped worker left run {left.first().pk} running; {log[-300:]}")
            workers.append(start_worker(**env))
        wait_for(lambda: all(final_status(one) for one in runs), timeout=120, what="every run to end")
        billed = server.stats
    finally:
        logs = [stop(worker) for worker in workers]
        os.environ.pop("SCENARIOLAB_LLM_BASE_URL", None)
        server.stop()
    if not stops:
        problems.append("the runs ended before any worker was stopped")
    if billed["abandoned"]:
        problems.append(f"{billed['abandoned']} model call(s) cut off by a stopping worker")
    paid = CostRecord.objects.filter(run__in=runs, cached=False).aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    if (paid["i"] or 0, paid["o"] or 0) != (billed["prompt_tokens"], billed["completion_tokens"]):
        problems.append(f"ledger {paid['i']}+{paid['o']} tokens, server billed {billed['prompt_tokens']}+{billed['completion_tokens']}")
    held = 0
    for one in runs:
        one.refresh_from_db()
        problem = _held(one)
        if problem:
            problems.append(f"run {one.pk}: {problem}")
        else:
            held += 1
    if problems:
        every_trial_fails = held + len(problems) > trials  # a problem of the round, not of one run
        return Result(NAME, trials, 0 if every_trial_fails else held, problems[0])
    handed_back = RunEvent.objects.filter(run__in=runs, type=EventType.SCENARIO_PAUSED).count()
    return Result(NAME, trials, held,
                  f"{trials} run(s) completed through {len(stops)} SIGTERM restart(s) ({handed_back} hand-back(s)), "
                  f"slowest stop {max(stops):.1f} s, ledger = billed, {time.monotonic() - started:.0f} s"
                  + ("" if not any("Traceback" in log for log in logs) else "; a worker logged a traceback"))


def _held(one: Run) -> str:
    if one.status != RunStatus.COMPLETED:
        return f"{one.status} ({one.halt_reason or one.error})"
    played = turns_and_decisions_once(one, TURNS)
    if played:
        return played
    if RunEvent.objects.filter(run=one, type__in=[EventType.SCENARIO_FAILED, EventType.TURN_FAILED]).exists():
        return "a turn failed on the way"
    seqs = list(RunEvent.objects.filter(run=one).order_by("seq").values_list("seq", flat=True))
    if seqs != list(range(1, len(seqs) + 1)):
        return "its events' seqs have gaps or repeats"
    return ""
