"""Call traces: what a model was sent and what it answered, one trace per answered call.

A run that traces its calls (`ScenarioOrchestrator(trace_calls=True)`) announces each answered call with a
`model_called` event whose data `call_trace` builds: the request as sent (messages and parameters), the answer
as written, what the engine made of it (the parsed data, the repair it needed, or the error that made the
engine ask again), and what the call took (tokens, cost, latency, the provider's tries, a cache hit). Every
call is also a ledger line (`cost_incurred`); a re-ask is a call of its own, with the next `attempt` number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from engine.llm.provider import LLMRequest, LLMResponse

# What became of an answer: used (the run goes on with it), re-asked (shown its mistake and asked again),
# unusable (the last attempt failed too, or an answer a phase could not read and did without).
USED, REASKED, UNUSABLE = "used", "re-asked", "unusable"
OUTCOMES = (USED, REASKED, UNUSABLE)
# The fields that hold the call's texts: large, and readable only with the full view of the run.
TEXT_FIELDS = ("request", "answer", "parsed")


def call_subject(request: LLMRequest) -> str:
    """What the call is about beyond its task, actor and turn: the metric or the check it measures; empty for
    the rest."""
    hints = request.purpose.hints
    for key in ("metric", "check"):
        value = hints.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def call_trace(request: LLMRequest, response: LLMResponse, *, attempt: int = 1, outcome: str = USED,
               parsed: Any = None, repair: str | None = None, error: str | None = None) -> dict[str, Any]:
    """The `model_called` event data of one answered call."""
    purpose = request.purpose
    return {
        "turn": purpose.turn,
        "phase": purpose.phase,
        "task": purpose.task,
        "actor": purpose.actor,
        "subject": call_subject(request),
        "model": response.model,
        "provider": response.provider,
        "attempt": attempt,
        "outcome": outcome,
        "repair": repair,
        "error": error,
        "tries": response.tries,
        "input_tokens": response.input_tokens,
        "output_tokens": response.output_tokens,
        "cost": response.cost,
        "latency_ms": round(response.latency_ms, 3),
        "cached": response.cached,
        "request": {
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "seed": request.seed,
            "max_tokens": request.max_tokens,
            "schema_name": request.schema_name,
        },
        "answer": response.text,
        "parsed": plain(parsed),
    }


def plain(value: Any) -> Any:
    """A parsed answer as JSON data: a pydantic model as its dict, mappings and sequences walked."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
