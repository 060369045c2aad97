"""Scenario "LLM faults": runs played in-process (`run_execute`) against the fake LLM server injecting every
fault kind it knows (FAULT_KINDS: error statuses, hangs past the client's timeout, truncated JSON, answers
that break the schema, empty choices) at a random rate up to 30 %, some under a tight credit limit.

Each run must end without a crash: completed, or paused / halted / failed with a stated reason, and then be
resumed (with twice the credit limit when that was the reason) until it completes. At every stop, halts
mid-turn included, the ledger must be within the credit limit in force.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

from django.db.models import Sum

from engine.testing.fake_llm import FAULT_KINDS, FakeLLMServer
from reliability import Result
from runs import services
from runs.execution import executor
from runs.models import CostRecord, Run, RunStatus
from runs.tests.factories import make_run

TURNS = 1
MAX_RATE = 0.30
MAX_STOPS = 12  # a run still not completed after this many resumes fails the trial


def run(trials: int, *, seed: int = 0) -> Result:
    rng = random.Random(seed)
    passed, failures, stops, faults, rates = 0, [], Counter(), Counter(), []
    started = time.monotonic()
    for trial in range(trials):
        rate = rng.uniform(0.05, MAX_RATE)
        rates.append(rate)
        try:
            problem = _trial(rng, rate, stops, faults)
        except Exception as exc:  # noqa: BLE001 - a crash is what this scenario looks for
            problem = f"crashed: {type(exc).__name__}: {exc}"
        if problem:
            failures.append(f"run {trial + 1} (rate {rate:.0%}): {problem}")
        else:
            passed += 1
    seconds = time.monotonic() - started
    figure = (f"fault rates {min(rates):.0%}-{max(rates):.0%}, {sum(faults.values())} faults "
              f"({', '.join(f'{k} {n}' for k, n in sorted(faults.items()))}); stops before completing: "
              f"{', '.join(f'{k} {n}' for k, n in sorted(stops.items())) or 'none'}; ledger within the limit at "
              f"every stop; {seconds / max(trials, 1):.1f} s a run")
    if failures:
        figure += "; FAILED " + "; ".join(failures)
    return Result("LLM faults", trials, passed, figure)


def _trial(rng: random.Random, rate: float, stops: Counter, faults: Counter) -> str:
    server = FakeLLMServer(fault_rate=rate, fault_kinds=FAULT_KINDS, hang_seconds=30, retry_after=0.05,
                           report_cost=True, seed=rng.randrange(1 << 30)).start_in_thread()
    llm = {"SCENARIOLAB_LLM_BASE_URL": server.base_url, "SCENARIOLAB_LLM_TIMEOUT": "1"}
    try:
        os.environ.update(llm)
        # A fault-free turn costs about 0.14 USD at the fake server's prices; some runs get less than that.
        limit = rng.choice([None, rng.uniform(0.03, 0.3)])
        run = make_run(turns=TURNS, seed=rng.randrange(1 << 30), credit_limit=limit)
        for _ in range(MAX_STOPS):
            run = executor.run_execute(run_id=run.pk)
            spent = CostRecord.objects.filter(run=run).aggregate(c=Sum("cost"))["c"] or 0.0
            if run.credit_limit is not None and spent > run.credit_limit * (1 + 1e-9):
                return f"spent {spent:.6f} USD over the credit limit {run.credit_limit:.6f} ({run.status})"
            if run.status == RunStatus.COMPLETED:
                break
            reason = run.halt_reason or run.error
            if not reason:
                return f"stopped {run.status} with no reason stated"
            credit = "credit limit" in reason.lower()
            stops[f"{run.status} ({'credit limit' if credit else _short(reason)})"] += 1
            run = services.run_resume(run=run, enqueue=False,
                                      credit_limit=run.credit_limit * 2 if credit and run.credit_limit else None)
        else:
            return f"not completed after {MAX_STOPS} resumes: {run.status} {run.halt_reason or run.error}"
        run = Run.objects.get(pk=run.pk)
        if run.turn != TURNS:
            return f"completed at turn {run.turn}, not {TURNS}"
        faults.update({k: n for k, n in server.stats["faults"].items() if n})
        return ""
    finally:
        for key in llm:
            os.environ.pop(key, None)
        server.stop()


def _short(reason: str) -> str:
    return reason.split(":")[0][:40]
