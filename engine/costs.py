"""The cost tracker: the one gate every model call passes through.

Before a call it reserves the call's worst-case cost and refuses the call if that could take the run past
its credit limit; after the call it books the actual cost in the ledger and announces it. Reservations
make the check hold even when several actors' calls are in flight at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

from engine.events import EventBus, EventType
from engine.llm.provider import LearnsPrices, LLMProvider, LLMRequest, LLMResponse
from engine.state import CostRecord, PhaseType, as_dict

WARNING_RATIO = 0.8


class CreditLimitExceeded(Exception):
    """A call was not made because it could have taken the run past its credit limit."""

    def __init__(self, *, spent: float, projected: float, limit: float, purpose: str) -> None:
        self.spent, self.projected, self.limit = spent, projected, limit
        super().__init__(
            f"credit limit ${limit:.4f} reached: ${spent:.4f} spent or in flight, the next call ({purpose}) "
            f"could cost up to ${projected:.4f}; resume with a higher limit to continue"
        )



class CallHeld(BaseException):
    """A call not started because the run is pausing between calls (`CostTracker.hold`). Not an `Exception`: no
    phase takes it for a failure of its own (no "decision failed" event); it ends the phase once the units of
    work whose calls were answered have finished, and the orchestrator pauses the run."""


class CostTracker:
    """Books every call of one run. `take_records()` hands new ledger lines to the orchestrator."""

    def __init__(
        self,
        *,
        provider: LLMProvider,
        bus: EventBus,
        run_id: str,
        credit_limit: float | None,
        already_spent: float = 0.0,
        ledger: Iterable[CostRecord] = (),
    ) -> None:
        self.provider = provider
        self.bus = bus
        self.run_id = run_id
        self.credit_limit = credit_limit
        self.spent = already_spent
        self._reserved = 0.0
        self._new_records: list[CostRecord] = []
        # Models this execution has seen billed (their rates and token counts learnt), the one unbilled call sent
        # alone when a top-rate reservation does not fit, and a signal for calls waiting on either.
        self._priced: set[str] = set()
        self._probe_in_flight = False
        self._changed = asyncio.Event()
        self._holding = False  # `hold()`: no call starts any more
        # A resumed run that already passed the warning line must not warn again.
        self._warned = credit_limit is not None and already_spent >= WARNING_RATIO * credit_limit
        # A resumed run's provider starts from the price table again: what the ledger shows it was billed
        # raises its prices before the first call. The models stay unbilled for this execution all the same
        # (the server may be another, and how it counts tokens is not in the ledger), so they stay guarded.
        for record in ledger:
            self._observe(record)

    def _observe(self, record: CostRecord) -> None:
        if isinstance(self.provider, LearnsPrices) and not record.cached and record.cost > 0:
            self.provider.observe_cost(record.model, record.input_tokens, record.output_tokens, record.cost)

    def _learn(self, record: CostRecord) -> None:
        """A call of this execution was billed: its model's price (and token counting) is known from now on,
        unless the bill said nothing to learn from (a cost without token counts)."""
        self._observe(record)
        if not record.cached and (record.input_tokens + record.output_tokens > 0 or record.cost == 0):
            self._priced.add(record.model)

    def _signal(self) -> None:
        """Wake the calls waiting for a model to be billed or for room under the limit."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _unbilled(self, model: str) -> LearnsPrices | None:
        """The provider, when a call of `model` must be guarded against a bill above the price table: under a
        credit limit, through a provider that learns prices, for a model this execution has not seen billed."""
        learns = self.provider if isinstance(self.provider, LearnsPrices) else None
        if self.credit_limit is None or learns is None or model in self._priced or not learns.learns_prices(model):
            return None
        return learns

    def _fits(self, projected: float) -> bool:
        # The tolerance keeps 0.1 + 0.1 + 0.1 within a limit of 0.3.
        return self.credit_limit is None or self.spent + self._reserved + projected <= self.credit_limit * (1 + 1e-9)

    async def _guard(self, request: LLMRequest) -> tuple[float, bool]:
        """The reservation for a call, and whether it is the unbilled call sent alone.

        A model billed in this execution is reserved at its (learnt) price. An unbilled one is reserved at a
        top rate (`max_cost_unbilled`: at least the fallback, a top-tier list price) when that is above its
        table price and fits under the limit; otherwise its calls go one at a time at the table's price, the
        others waiting until a bill or freed room changes that. No await between the decision and the
        reservation the caller makes."""
        while True:
            unbilled = self._unbilled(request.model)
            table = self.provider.max_cost(request)
            if unbilled is None:
                return table, False
            top = unbilled.max_cost_unbilled(request)
            if top > table and self._fits(top):
                return top, False
            if not self._probe_in_flight:
                self._probe_in_flight = True
                return table, True
            await self._changed.wait()

    def hold(self) -> None:
        """Start no more calls: each new one raises `CallHeld`, while the calls already sent are answered and
        booked, and the work waiting for them is finished. A run stopped this way has paid for nothing it does
        not have in its ledger, and started nothing it must pay for again."""
        self._holding = True

    def reject(self, request: LLMRequest) -> None:
        """The answer to `request` was unusable: a provider that keeps answers (a cache) forgets it. The call
        stays booked: it was paid for."""
        forget = getattr(self.provider, "forget", None)
        if forget is not None:
            forget(request)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Make the call if it cannot take the run past its credit limit, and book what it cost.

        A server may bill more than the price table says. A model's bills teach the provider its real rates;
        until this execution has seen one, its calls are reserved at a top rate, or sent one at a time (see
        `_guard`). So the limit holds for any server billing at most the higher of the table and that rate;
        a dearer server can pass it by the excess of the calls sent before its first bill arrives."""
        purpose = request.purpose
        PhaseType(purpose.phase)  # an unknown phase must fail before the call is paid, not after
        projected, alone = await self._guard(request)
        try:
            return await self._complete(request, purpose, projected)
        finally:
            if alone:
                self._probe_in_flight = False
            if self.credit_limit is not None:  # only calls under a limit ever wait
                self._signal()  # billed, failed or refused: room and prices may have changed

    async def _complete(self, request: LLMRequest, purpose, projected: float) -> LLMResponse:
        if self._holding:
            raise CallHeld(f"{purpose.task} for {purpose.actor or 'the world'}, turn {purpose.turn}: not started, the run is pausing")
        # Check and reserve with no await in between: concurrent calls see each other's reservations.
        if not self._fits(projected):
            label = f"{purpose.task} for {purpose.actor or 'the world'}, turn {purpose.turn}"
            error = CreditLimitExceeded(
                spent=self.spent + self._reserved, projected=projected, limit=self.credit_limit, purpose=label
            )
            await self.bus.emit(
                EventType.CREDIT_LIMIT_EXCEEDED,
                {
                    "spent": self.spent,
                    "reserved": self._reserved,
                    "projected": projected,
                    "limit": self.credit_limit,
                    "turn": purpose.turn,
                    "phase": purpose.phase,
                    "actor": purpose.actor,
                    "reason": str(error),
                },
                run_id=self.run_id,
                source="cost_tracker",
            )
            raise error
        self._reserved += projected
        try:
            response = await self.provider.complete(request)
        finally:
            self._reserved -= projected
        await self._book(request, response)
        return response

    async def _book(self, request: LLMRequest, response: LLMResponse) -> None:
        purpose = request.purpose
        record = CostRecord(
            turn=purpose.turn,
            phase=PhaseType(purpose.phase),
            timestamp=datetime.now(UTC),
            actor=purpose.actor,
            model=response.model,
            provider=response.provider,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            cost=response.cost,
            cached=response.cached,
        )
        self._new_records.append(record)
        self._learn(record)
        await self._count(record, task=purpose.task, latency_ms=round(response.latency_ms, 3))

    async def book_records(self, records: Iterable[CostRecord]) -> None:
        """Count ledger lines a phase booked itself (in its state, not through `complete`): announced and held
        against the limit like a call's. They are in the state already, so `take_records` does not return them."""
        for record in records:
            await self._count(record, task=record.phase.value, latency_ms=None)

    async def _count(self, record: CostRecord, **extra: object) -> None:
        self.spent += record.cost
        await self.bus.emit(
            EventType.COST_INCURRED,
            {**as_dict(record), **extra, "total_cost": self.spent, "credit_limit": self.credit_limit},
            run_id=self.run_id,
            source="cost_tracker",
        )
        if self.credit_limit and not self._warned and self.spent >= WARNING_RATIO * self.credit_limit:
            self._warned = True
            await self.bus.emit(
                EventType.CREDIT_LIMIT_WARNING,
                {"spent": self.spent, "limit": self.credit_limit, "ratio": self.spent / self.credit_limit},
                run_id=self.run_id,
                source="cost_tracker",
            )

    def take_records(self) -> tuple[CostRecord, ...]:
        records, self._new_records = tuple(self._new_records), []
        return records

