"""Scenario "worker killed": a real `run_huey` worker is killed with SIGKILL at a chosen point of a run, the
run is resumed by a new worker, and it must complete with every turn and decision once and a ledger that
holds exactly the tokens the fake LLM server billed.

Every model call "hangs" for a short time before it answers (the fake server's hang fault as latency): a
hanging call whose client dies is abandoned unbilled, as llama.cpp and vLLM abort it, so a kill at any
moment leaves nothing billed but unrecorded, except in the instant between an answer being billed and its
ledger line being written. So each kill is taken with the server's answers held (`hold_answers`), once every
answered call is recorded; the killed worker's calls are abandoned before the answers are let go. The points,
in turn:
- during an LLM call: calls are in flight, every earlier answer recorded;
- between a call and its record: the k-th call's ledger line is stored, its turn's records are not;
- inside a turn's commit: the turn's turn_completed event is stored, the turn's save has not committed.
"""

from __future__ import annotations

import os
import random
import signal
import time

from django.db.models import Max, Sum
from django.test import override_settings

from engine import EventType
from engine.testing.fake_llm import FakeLLMServer
from reliability import Result
from reliability.checks import turns_and_decisions_once
from runs import selectors, services
from runs.models import CostRecord, Run, RunEvent, RunStatus
from runs.tests.factories import make_run
from runs.tests.workers import final_status, start_worker, stop, wait_for

POINTS = ("during an LLM call", "between a call and its record", "inside a turn's commit")
TURNS = 1
CALL_SECONDS = 0.05  # each call's latency: a kill decided on a check lands long before the next answer is billed


def run(trials: int, *, seed: int = 0) -> Result:
    rng = random.Random(seed)
    passed, failures, kills_at = 0, [], {point: 0 for point in POINTS}
    started = time.monotonic()
    for trial in range(trials):
        point = POINTS[trial % len(POINTS)]
        try:
            problem = _trial(point, rng)
        except AssertionError as exc:
            problem = str(exc)
        if problem:
            failures.append(f"trial {trial + 1} ({point}): {problem}")
        else:
            passed += 1
            kills_at[point] += 1
    seconds = time.monotonic() - started
    figure = ", ".join(f"{n} {point}" for point, n in kills_at.items()) + f"; {seconds / max(trials, 1):.1f} s a kill"
    if failures:
        figure += "; FAILED " + "; ".join(failures)
    return Result("worker killed", trials, passed, figure)


def _trial(point: str, rng: random.Random) -> str:
    """One kill and resume; the problem found, or "" when everything held."""
    server = FakeLLMServer(fault_rate=1.0, fault_kinds=["hang"], hang_seconds=CALL_SECONDS,
                           seed=rng.randrange(1 << 30)).start_in_thread()
    llm = {"SCENARIOLAB_LLM_BASE_URL": server.base_url, "SCENARIOLAB_LLM_TIMEOUT": "60"}
    worker = None
    try:
        os.environ.update(llm)  # the run's plan is made here, with the same server
        with override_settings(RUN_STALE_SECONDS=1):
            run = make_run(turns=TURNS, seed=rng.randrange(1 << 30))
            worker = start_worker(**llm)
            services.run_enqueue(run=run)
            kill_when = _kill_condition(point, run, rng)

            def ready() -> bool:
                stats = server.stats
                # every answered call recorded: nothing billed can be lost by a kill now
                return CostRecord.objects.filter(run=run).count() == stats["completions"] and kill_when(stats)

            _wait_closely(ready, run, server, what=f"the kill point ({point})")
            try:  # answers are held: nothing is billed between the last check and the kill
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                stop(worker)
                worker = None
                # The dead worker's calls are abandoned, unbilled, before any answer is let go.
                wait_for(lambda: _settled(server.stats), timeout=5, what="the killed worker's calls to be abandoned")
            finally:
                server.release_answers()
            wait_for(lambda: selectors.run_is_crashed(Run.objects.get(pk=run.pk)), what="the run to show as crashed")
            services.run_resume(run=Run.objects.get(pk=run.pk))
            worker = start_worker(**llm)
            status = wait_for(lambda: final_status(run), what="the resumed run to finish")
            log = stop(worker)
            worker = None
        # every request answered or abandoned before reading the bill
        wait_for(lambda: _settled(server.stats), timeout=5, what="the fake server to settle")
        billed = server.stats
    finally:
        if worker is not None:
            stop(worker)
        for key in llm:
            os.environ.pop(key, None)
        server.stop()
    return _check(run, status, billed, log)


def _kill_condition(point: str, run: Run, rng: random.Random):
    if point == "during an LLM call":
        after = rng.randrange(0, 10)  # answered calls before the kill
        return lambda stats: stats["completions"] >= after and stats["requests"] > stats["completions"] + stats["abandoned"]
    if point == "between a call and its record":
        k = rng.randrange(1, 12)

        def recorded_not_stored(stats) -> bool:
            last = CostRecord.objects.filter(run=run).aggregate(n=Max("position"), turn=Max("turn"))
            stored = Run.objects.values_list("turn", flat=True).get(pk=run.pk)
            return last["n"] is not None and last["n"] + 1 >= k and last["turn"] > stored
        return recorded_not_stored
    turn = rng.randrange(1, TURNS + 1)

    def turn_committing(stats) -> bool:
        done = RunEvent.objects.filter(run=run, type=EventType.TURN_COMPLETED, data__turn=turn).exists()
        return done and Run.objects.values_list("turn", flat=True).get(pk=run.pk) < turn
    return turn_committing


def _wait_closely(condition, run: Run, server: FakeLLMServer, *, what: str, timeout: float = 60) -> None:
    """Poll every millisecond or two (some kill points last only a few milliseconds). When the condition
    holds, hold the server's answers and check it again: a call answered between the check and the kill would
    be billed but never recorded. Returns with the answers held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            server.hold_answers()
            if condition():
                return
            server.release_answers()
        if final_status(run):
            raise AssertionError(f"the run ended ({final_status(run)}) before {what} came")
        time.sleep(0.001)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _settled(stats) -> bool:
    return stats["requests"] == stats["completions"] + stats["abandoned"]


def _check(run: Run, status: str, billed: dict, log: str) -> str:
    run.refresh_from_db()
    if status != RunStatus.COMPLETED:
        return f"the resumed run ended {status}: {run.error or run.halt_reason} {log[-500:]}"
    if problem := turns_and_decisions_once(run, TURNS):
        return problem
    paid = CostRecord.objects.filter(run=run, cached=False).aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    if (paid["i"] or 0, paid["o"] or 0) != (billed["prompt_tokens"], billed["completion_tokens"]):
        return (f"ledger {paid['i']} + {paid['o']} tokens, server billed {billed['prompt_tokens']} + "
                f"{billed['completion_tokens']}")
    return ""
