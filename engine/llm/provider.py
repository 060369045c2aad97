"""The provider protocol: one request in, one response out, with tokens and cost.

Every provider (offline, OpenAI-compatible, a test double) implements `LLMProvider`; nothing in the engine
calls a provider directly except the cost tracker, so every call is priced, checked against the credit
limit and recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class CallPurpose:
    """Why a call is made: what the ledger books it under, and what an offline provider composes."""

    task: str  # e.g. "decision", "outreach", "reply", "world_update", "metric", "validation"
    phase: str
    turn: int
    actor: str | None = None
    # Small structured hints for providers that compose instead of generate (the offline provider).
    hints: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LLMRequest:
    messages: tuple[Message, ...]
    model: str
    purpose: CallPurpose
    json_schema: Mapping[str, Any] | None = None
    schema_name: str | None = None
    temperature: float = 0.7
    seed: int | None = None
    max_tokens: int = 1200

    @property
    def prompt_text(self) -> str:
        return "\n\n".join(message.content for message in self.messages)


@dataclass(frozen=True, slots=True)
class LLMResponse:
    text: str
    input_tokens: int
    output_tokens: int
    cost: float
    model: str
    provider: str
    latency_ms: float = 0.0
    data: Any = None  # the parsed JSON, when the request asked for a schema
    cached: bool = False
    tries: int = 1  # requests sent for this answer (a provider's retries after errors and timeouts, plus one; 0 from a cache)


@runtime_checkable
class LLMProvider(Protocol):
    name: str

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer the request. Raise `LLMError` subclasses for failures the caller may handle."""
        ...

    def max_cost(self, request: LLMRequest) -> float:
        """The most this call can cost (input as sent, output at max_tokens): the credit-limit check."""
        ...


@runtime_checkable
class LearnsPrices(Protocol):
    """A provider whose projections (`max_cost`) learn from what calls really cost."""

    def learns_prices(self, model: str) -> bool:
        """Whether calls of `model` may be billed above the price table (a server reporting its own cost)."""
        ...

    def observe_cost(self, model: str, input_tokens: int, output_tokens: int, cost: float) -> None:
        """A call of `model` was billed `cost` for these tokens (now, or before a resume)."""
        ...

    def max_cost_unbilled(self, request: LLMRequest) -> float:
        """`max_cost` for a model not yet billed: at least a top-tier rate, whatever the table says."""
        ...


class NoModelProvider:
    """The provider of an orchestrator given none: its phases call no model, and one that does is told how."""

    name = "none"

    def max_cost(self, request: LLMRequest) -> float:
        return 0.0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise LLMError("this orchestrator has no model provider: give ScenarioOrchestrator(provider=...) for phases that call a model")


class LLMError(Exception):
    """The model or its server let the run down: the error policy retries the phase, then pauses the run."""


class StructuredOutputError(LLMError):
    """The model answered, but not with data matching the requested schema."""

    def __init__(self, message: str, *, raw_text: str = "") -> None:
        super().__init__(message)
        self.raw_text = raw_text


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about four characters per token for English prose)."""
    return max(1, (len(text) + 3) // 4)
