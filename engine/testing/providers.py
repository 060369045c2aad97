"""Providers for tests, benchmarks and demos: real objects with known behaviour, not mocks.

They wrap the offline provider (so answers have the right shapes) and add what a test needs to control:
a known price per call, latency, failures on chosen calls, or garbage answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.llm.offline import OfflineProvider
from engine.llm.provider import LLMError, LLMRequest, LLMResponse
from engine.scenario.folder import Scenario


class FixedCostProvider:
    """Every call costs exactly `cost_per_call` (and `max_cost` says so), with offline answers."""

    name = "fixed-cost"

    def __init__(self, scenario: Scenario, *, cost_per_call: float) -> None:
        self.inner = OfflineProvider(scenario)
        self.cost_per_call = cost_per_call
        self.calls = 0

    def max_cost(self, request: LLMRequest) -> float:
        return self.cost_per_call

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls += 1
        response = await self.inner.complete(request)
        return replace(response, cost=self.cost_per_call, provider=self.name)


@dataclass(frozen=True)
class TimedCall:
    task: str
    phase: str
    actor: str | None
    turn: int
    started: float
    ended: float


class SleepingProvider:
    """Offline answers after `latency` seconds; records each call's timing to compute critical paths."""

    name = "sleeping"

    def __init__(self, scenario: Scenario, *, latency: float) -> None:
        self.inner = OfflineProvider(scenario)
        self.latency = latency
        self.calls: list[TimedCall] = []

    def max_cost(self, request: LLMRequest) -> float:
        return 0.0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        started = time.perf_counter()
        if self.latency:
            await asyncio.sleep(self.latency)
        response = await self.inner.complete(request)
        ended = time.perf_counter()
        p = request.purpose
        self.calls.append(TimedCall(p.task, p.phase, p.actor, p.turn, started, ended))
        return replace(response, provider=self.name, latency_ms=(ended - started) * 1000)


class ProviderOutage(LLMError):
    """A simulated server outage."""


class FailingProvider:
    """Offline answers, except calls for which `fails(request, attempt_number)` is true raise, or answer
    `garbage` text instead when it is given (a model that ignores the schema)."""

    name = "failing"

    def __init__(
        self,
        scenario: Scenario,
        *,
        fails: Callable[[LLMRequest, int], bool],
        garbage: str | None = None,
    ) -> None:
        self.inner = OfflineProvider(scenario)
        self.fails = fails
        self.garbage = garbage
        self.calls = 0

    def max_cost(self, request: LLMRequest) -> float:
        return 0.0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls += 1
        response = await self.inner.complete(request)
        if not self.fails(request, self.calls):
            return replace(response, provider=self.name)
        if self.garbage is None:
            raise ProviderOutage(f"simulated outage on call {self.calls} ({request.purpose.task})")
        return replace(response, text=self.garbage, data=None, provider=self.name)


class RecordingProvider:
    """Offline answers, and every request kept in `requests`, in the order the calls were made."""

    name = "recording"

    def __init__(self, scenario: Scenario) -> None:
        self.inner = OfflineProvider(scenario)
        self.requests: list[LLMRequest] = []

    def max_cost(self, request: LLMRequest) -> float:
        return 0.0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        return replace(await self.inner.complete(request), provider=self.name)

    def prompts(self, *, task: str, actor: str | None = None, turn: int | None = None) -> list[str]:
        """The user prompts of the calls for `task` (and `actor`, `turn`), oldest first."""
        return [
            r.messages[-1].content for r in self.requests
            if r.purpose.task == task and (actor is None or r.purpose.actor == actor) and (turn is None or r.purpose.turn == turn)
        ]
