"""The registry of reliability scenarios: add yours with one line in SCENARIOS.

A scenario's function is named "module:function" and imported only when it runs, after Django is set up
(by pytest-django, or by `python -m reliability`). It runs inside a transactional test database: it may
start worker processes, which see the same database.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from reliability import Result


@dataclass(frozen=True)
class Scenario:
    name: str
    function: str  # "reliability.worker_killed:run": run(trials, *, seed) -> Result
    full: int  # trials in `make reliability`
    bounded: int  # trials in `make test`: keep the whole bounded suite within ~40 s
    both_profiles: bool = False  # also played on PostgreSQL + Redis by `make test-scale-out` (bounded)

    def load(self) -> Callable[..., Result]:
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)

    def run(self, trials: int, *, seed: int = 0) -> Result:
        return self.load()(trials, seed=seed)


SCENARIOS: list[Scenario] = [
    Scenario("worker killed", "reliability.worker_killed:run", full=20, bounded=1, both_profiles=True),
    Scenario("web killed", "reliability.web_killed:run", full=10, bounded=1, both_profiles=True),
    Scenario("LLM faults", "reliability.llm_faults:run", full=10, bounded=2),
    # bounded=0: make test already plays these checks as pytest tests (see reliability/permissions.py)
    Scenario("permissions", "reliability.permissions:run", full=3, bounded=0),
    Scenario("bad input", "reliability.bad_input:run", full=5, bounded=0),  # a trial per group; make test plays them bounded
    Scenario("load", "reliability.load:run", full=8, bounded=2),  # a trial per run: 8 on 2 workers, 200 viewers
    Scenario("malformed zips", "reliability.malformed_zips:run", full=5, bounded=1),
    Scenario("quota abuse", "reliability.quota_abuse:run", full=5, bounded=1, both_profiles=True),
    # A trial per run, all played at once on 2 workers restarted with SIGTERM every ~1.5 s. bounded=0: make test
    # plays a SIGTERM mid-turn and the stop bound as pytest tests on both profiles (runs/tests/test_workers.py).
    Scenario("worker restarts", "reliability.worker_restarts:run", full=6, bounded=0, both_profiles=True),
]
