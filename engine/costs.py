"""The cost tracker: the one gate every model call passes through.

Before a call it reserves the call's worst-case cost and refuses the call if that could take the run past
its credit limit; after the call it books the actual cost in the ledger and announces it. Reservations
make the check hold even when several actors' calls are in flight at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from engine.events import EventBus, EventType
from engine.llm.provider import LearnsPrices, LLMProvider, LLMRequest, LLMResponse
from engine.state import CostRecord, PhaseName, as_dict

WARNING_RATIO = 0.8


class CreditLimitExceeded(Exception):
    """A call was not made because it could have taken the run past its credit limit."""

    def __init__(self, *, spent: float, projected: float, limit: float, purpose: str) -> None:
        self.spent, self.projected, self.limit = spent, projected, limit
        super().__init__(
            f"credit limit ${limit:.4f} reached: ${spent:.4f} spent or in flight, the next call ({purpose}) "
            f"could cost up to ${projected:.4f}; resume with a higher limit to continue"
        )



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
        # Models whose real price this run has seen billed, and the one call in flight that will tell one.
        self._priced: set[str] = set()
        self._probe: asyncio.Future[None] | None = None
        # A resumed run that already passed the warning line must not warn again.
        self._warned = credit_limit is not None and already_spent >= WARNING_RATIO * credit_limit
        # A resumed run's provider starts from the price table again: what the ledger shows it was really
        # billed must raise its projections before the first call, not after the first wave of them.
        for record in ledger:
            self._learn(record)

    def _learn(self, record: CostRecord) -> None:
        if not isinstance(self.provider, LearnsPrices) or record.cached:
            return
        self._priced.add(record.model)
        if record.cost > 0:
            self.provider.observe_cost(record.model, record.input_tokens, record.output_tokens, record.cost)

    def _unbilled(self, model: str) -> LearnsPrices | None:
        """The provider, when a call of `model` must be guarded against a bill above the price table: under a
        credit limit, through a provider that learns prices, for a model this run has not seen billed yet."""
        learns = self.provider if isinstance(self.provider, LearnsPrices) else None
        if self.credit_limit is None or learns is None or model in self._priced or not learns.learns_prices(model):
            return None
        return learns

    def _fits(self, projected: float) -> bool:
        # The tolerance keeps 0.1 + 0.1 + 0.1 within a limit of 0.3.
        return self.credit_limit is None or self.spent + self._reserved + projected <= self.credit_limit * (1 + 1e-9)

    async def _probe_price(self, model: str) -> asyncio.Future[None] | None:
        """Calls of models not yet billed whose top-rate reservation does not fit go one at a time, reserved
        at the table's price: such calls sent together could overrun the limit before the first bill shows
        a server's real price. Returns the future to resolve when this call is the one in flight."""
        while self._unbilled(model) is not None:
            if self._probe is None:
                self._probe = asyncio.get_running_loop().create_future()
                return self._probe
            await asyncio.shield(self._probe)
        return None

    def reject(self, request: LLMRequest) -> None:
        """The answer to `request` was unusable: a provider that keeps answers (a cache) forgets it. The call
        stays booked: it was paid for."""
        forget = getattr(self.provider, "forget", None)
        if forget is not None:
            forget(request)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Make the call if it cannot take the run past its credit limit, and book what it cost.

        A server may bill more than the price table says. A model's bills teach the provider its real price;
        until this run has seen one, its calls are reserved at a top-tier rate (`max_cost_unbilled`) while
        that fits under the limit, and otherwise go one at a time at the table's price. So the limit holds
        for any server billing at most that rate, and is passed by at most one call's excess otherwise."""
        purpose = request.purpose
        PhaseName(purpose.phase)  # an unknown phase must fail before the call is paid, not after
        unbilled = self._unbilled(request.model)
        if unbilled is not None:
            pessimistic = unbilled.max_cost_unbilled(request)
            if self._fits(pessimistic):  # then reserved in _complete with no await in between
                return await self._complete(request, purpose, pessimistic)
        probe = await self._probe_price(request.model) if unbilled is not None else None
        try:
            return await self._complete(request, purpose, self.provider.max_cost(request))
        finally:
            if probe is not None:
                self._probe = None
                probe.set_result(None)

    async def _complete(self, request: LLMRequest, purpose, projected: float) -> LLMResponse:
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
            phase=PhaseName(purpose.phase),
            actor=purpose.actor,
            model=response.model,
            provider=response.provider,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            cost=response.cost,
            cached=response.cached,
        )
        self._new_records.append(record)
        self.spent += record.cost
        self._learn(record)
        await self.bus.emit(
            EventType.COST_INCURRED,
            {
                **as_dict(record),
                "task": purpose.task,
                "latency_ms": round(response.latency_ms, 3),
                "total_cost": self.spent,
                "credit_limit": self.credit_limit,
            },
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

