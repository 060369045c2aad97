"""Scenario "quota abuse": a user without staff rights tries to get past their quota every way the API offers.

Each trial (seeded by `seed + trial`) plays, through the real API with the user's bearer token, a shuffled set of
attempts: runs with credit limits far above the largest (1e300, just above it, through a resume and a branch),
batches with too many runs, too many at once or too large a budget (at plan and at start), a resume of a batch
with more of either, and a burst of run starts from several threads at once, racing for the last places under
way. It holds when every refusal is a 403 `quota_exceeded` or 409 `quota_busy` in the one error shape (never a
500), what was refused left nothing behind, what was allowed got its limits, and at no moment did the user have
more runs under way than the quota allows (the burst included).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from accounts.models import Quota
from accounts.services import api_token_create
from batches.models import Batch
from reliability import Result
from runs import services
from runs.execution import executor
from runs.models import Run, RunStatus
from scenarios.services import scenario_import_library

NAME = "quota abuse"
LARGEST = 1.5  # below the summit's own credit limit (2.0): a run without a limit shows the cap
UNDER_WAY = 3
BURST = 8  # run starts at once, each in its own thread
BATCH = {
    "experiment_name": "Abuse", "base_scenario": "ai-summit", "turns": 1, "provider": "offline",
    "variations": [{"type": "scenario_parameter", "parameter": "seed", "values": [1, 2]}],
    "runs_per_variation": 2, "max_parallel": 2,
}


def run(trials: int, *, seed: int = 0) -> Result:
    scenario_import_library()
    passed, notes, started = 0, [], time.monotonic()
    for trial in range(trials):
        problem = _trial(random.Random(seed + trial), trial)
        if problem:
            notes.append(f"trial {trial + 1}: {problem}")
        else:
            passed += 1
    seconds = time.monotonic() - started
    figure = notes[0] if notes else (f"{trials} × {len(ATTEMPTS) + 1} attempts refused with 403/409 in the error shape, "
                                     f"never past {UNDER_WAY} runs under way (a burst of {BURST} at once too), "
                                     f"{seconds / max(trials, 1):.1f} s a trial")
    return Result(NAME, trials, passed, figure)


class Abuser:
    def __init__(self, trial: int) -> None:
        self.user = User.objects.create_user(f"abuser-{trial}-{time.monotonic_ns()}")
        Quota.objects.create(user=self.user, max_credit_limit=LARGEST, max_runs_under_way=UNDER_WAY, max_batch_runs=4,
                             max_batch_budget=5, max_batch_parallel=2)
        _, raw = api_token_create(owner=self.user, name="abuse")
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
        self.most_under_way = 0

    def post(self, url: str, body: dict | None = None):
        response = Client().post(url, body or {}, content_type="application/json", **self.headers)
        self.most_under_way = max(self.most_under_way, self.under_way())
        return response

    def under_way(self) -> int:
        return Run.objects.filter(owner=self.user, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).count()

    def runs(self) -> int:
        return Run.objects.filter(owner=self.user).count()

    def end_runs(self) -> None:
        Run.objects.filter(owner=self.user, status=RunStatus.QUEUED).update(status=RunStatus.CANCELLED)


def _refused(response, status: int, code: str) -> str:
    if response.status_code != status:
        return f"answered {response.status_code}, not {status}: {response.content[:200]!r}"
    body = response.json()
    if set(body) != {"code", "message", "fields"} or body["code"] != code or not body["message"]:
        return f"not the error shape with code {code}: {body}"
    return ""


def _huge_credit_limit(abuser: Abuser, rng: random.Random) -> str:
    limit = rng.choice([1e300, 1e9, LARGEST * 1.0001, LARGEST + 0.01])
    before = abuser.runs()
    problem = _refused(abuser.post("/api/runs/", {"scenario": "ai-summit", "turns": 1, "credit_limit": limit}), 403, "quota_exceeded")
    return problem or ("a refused run was stored" if abuser.runs() != before else "")


def _no_credit_limit_gets_the_largest(abuser: Abuser, rng: random.Random) -> str:
    abuser.end_runs()
    response = abuser.post("/api/runs/", {"scenario": "ai-summit", "turns": 1})
    if response.status_code != 201:
        return f"a run within the quota answered {response.status_code}: {response.content[:200]!r}"
    limit = Run.objects.get(pk=response.json()["id"]).credit_limit
    return "" if limit == LARGEST else f"a run without a limit got {limit}, not the largest {LARGEST}"


def _resume_past_the_largest(abuser: Abuser, rng: random.Random) -> str:
    abuser.end_runs()
    paused = Run.objects.filter(owner=abuser.user).first() or Run.objects.get(
        pk=abuser.post("/api/runs/", {"scenario": "ai-summit", "turns": 1}).json()["id"])
    Run.objects.filter(pk=paused.pk).update(status=RunStatus.PAUSED, claim="")
    response = abuser.post(f"/api/runs/{paused.pk}/resume", {"credit_limit": rng.choice([1e300, 100.0])})
    problem = _refused(response, 403, "quota_exceeded")
    paused.refresh_from_db()
    return problem or ("the refused resume changed the run" if paused.status != RunStatus.PAUSED else "")


def _branch_past_the_largest(abuser: Abuser, rng: random.Random) -> str:
    parent = executor.run_execute(run_id=services.run_create(
        plan=services.run_plan(config=_summit(), turns=1, provider="offline"), slug="ai-summit", owner=abuser.user).pk)
    before = abuser.runs()
    response = abuser.post(f"/api/runs/{parent.pk}/branch", {"at_turn": 1, "intervention": {"credit_limit": 1e12, "end_turn": 2}})
    problem = _refused(response, 403, "quota_exceeded")
    return problem or ("a refused branch was stored" if abuser.runs() != before else "")


def _big_batch(abuser: Abuser, rng: random.Random) -> str:
    change = rng.choice([{"runs_per_variation": 500}, {"max_parallel": 64}, {"budget_limit": 1e6},
                         {"cost_per_run_limit": 4, "budget_limit": 5}])
    before = Batch.objects.filter(owner=abuser.user).count()
    for url in ("/api/batches/plan", "/api/batches/"):
        problem = _refused(abuser.post(url, {**BATCH, **change}), 403, "quota_exceeded")
        if problem:
            return f"{url} {change}: {problem}"
    return "a refused batch was stored" if Batch.objects.filter(owner=abuser.user).count() != before else ""


def _resume_a_batch_bigger(abuser: Abuser, rng: random.Random) -> str:
    abuser.end_runs()
    response = abuser.post("/api/batches/", BATCH)
    if response.status_code != 201:
        return f"a batch within the quota answered {response.status_code}: {response.content[:200]!r}"
    batch_id = response.json()["id"]
    abuser.post(f"/api/batches/{batch_id}/pause")
    change = rng.choice([{"budget_limit": 1e6}, {"max_parallel": 64}])
    problem = _refused(abuser.post(f"/api/batches/{batch_id}/resume", change), 403, "quota_exceeded")
    abuser.post(f"/api/batches/{batch_id}/cancel")
    return problem


ATTEMPTS: list[Callable[[Abuser, random.Random], str]] = [
    _huge_credit_limit, _no_credit_limit_gets_the_largest, _resume_past_the_largest, _branch_past_the_largest,
    _big_batch, _resume_a_batch_bigger,
]


def _burst(abuser: Abuser) -> str:
    """Several starts at once: at most the places left under way are taken, the others answer 409."""
    abuser.end_runs()
    answers: list[int] = []
    barrier = threading.Barrier(BURST)

    def start() -> None:
        try:
            barrier.wait(10)
            answers.append(Client().post("/api/runs/", {"scenario": "ai-summit", "turns": 1},
                                         content_type="application/json", **abuser.headers).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    abuser.most_under_way = max(abuser.most_under_way, abuser.under_way())
    if sorted(answers) != sorted([201] * UNDER_WAY + [409] * (BURST - UNDER_WAY)):
        return f"a burst of {BURST} starts answered {sorted(answers)}, expected {UNDER_WAY} × 201 and the rest 409"
    return ""


def _trial(rng: random.Random, trial: int) -> str:
    abuser = Abuser(trial)
    attempts = ATTEMPTS[:]
    rng.shuffle(attempts)
    for attempt in attempts:
        problem = attempt(abuser, rng)
        if problem:
            return f"{attempt.__name__.strip('_').replace('_', ' ')}: {problem}"
    problem = _burst(abuser)
    if problem:
        return problem
    if abuser.most_under_way > UNDER_WAY:
        return f"the user had {abuser.most_under_way} runs under way at once, the quota allows {UNDER_WAY}"
    return ""


def _summit():
    from runs.tests.factories import summit_config

    return summit_config()
