"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1 (the shipped fake), never the internet."""

import asyncio
import time
from pathlib import Path

import pytest

from engine import ErrorPolicy, EventBus, Runner, ScenarioStatus, Scenario
from engine.costs import CostTracker, CreditLimitExceeded
from engine.llm.cache import CachingProvider, MemoryResponseCache
from engine.llm.openai_compatible import (
    Endpoint,
    OpenAICompatibleProvider,
    ProviderRequestError,
    ProviderUnavailable,
    RetryPolicy,
    check_endpoint,
)
from engine.llm.parsing import json_schema_for, parse_structured
from engine.llm.pricing import PriceBook
from engine.llm.provider import CallPurpose, LLMRequest, Message
from engine.llm.routing import ModelRouter, with_model
from engine.phases.decision_form import DecisionOutput
from engine.testing.fake_llm import FakeLLMServer

SUMMIT = Path(__file__).resolve().parents[3] / "scenarios" / "library" / "ai-summit"
FAST = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.05)


def decision_request(model: str = "openai/gpt-4o-mini") -> LLMRequest:
    return LLMRequest(
        messages=(Message("system", "You are a delegate."), Message("user", "Decide what to do this turn.")),
        model=model,
        purpose=CallPurpose(task="decision", phase="decision", turn=1, actor="a"),
        json_schema=json_schema_for(DecisionOutput),
        schema_name="DecisionOutput",
        max_tokens=500,
    )


def provider_for(server: FakeLLMServer, **endpoint) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(Endpoint("local", server.base_url, **endpoint), retry=FAST)


async def test_a_structured_call_returns_schema_valid_json_with_usage_and_a_price():
    async with FakeLLMServer() as server:
        response = await provider_for(server).complete(decision_request())
        stats = server.stats
    decision = parse_structured(response.text, DecisionOutput)
    assert decision.action
    assert (response.input_tokens, response.output_tokens) == (stats["prompt_tokens"], stats["completion_tokens"])
    expected = PriceBook().price("openai/gpt-4o-mini").cost(response.input_tokens, response.output_tokens)
    assert response.cost == pytest.approx(expected) and response.cost > 0
    assert response.provider == "local" and response.model == "openai/gpt-4o-mini"


async def test_the_cost_the_server_reports_is_the_cost_booked():
    async with FakeLLMServer(report_cost=True, prompt_price=1e-5, completion_price=3e-5) as server:
        response = await provider_for(server).complete(decision_request())
    assert response.cost == pytest.approx(response.input_tokens * 1e-5 + response.output_tokens * 3e-5)


async def test_the_key_is_sent_and_a_wrong_key_is_not_retried():
    async with FakeLLMServer(api_key="sekrit") as server:
        ok = await provider_for(server, api_key="sekrit").complete(decision_request())
        assert ok.text
        wrong = provider_for(server, api_key="nope")
        with pytest.raises(ProviderRequestError, match="HTTP 401") as refused:
            await wrong.complete(decision_request())
    assert wrong.retries == 0
    assert "nope" not in str(refused.value) and "sekrit" not in str(refused.value)
    assert "nope" not in repr(wrong.endpoint)


@pytest.mark.parametrize("fault", ["server_error", "bad_gateway", "unavailable", "rate_limit"])
async def test_retryable_faults_are_retried_and_counted(fault):
    async with FakeLLMServer(faults=[fault, fault], retry_after=0) as server:
        provider = provider_for(server)
        response = await provider.complete(decision_request())
    assert response.text and provider.retries == 2


async def test_a_429_with_retry_after_waits_at_least_that_long():
    async with FakeLLMServer(faults=["rate_limit"], retry_after=1) as server:
        provider = provider_for(server)
        started = time.perf_counter()
        await provider.complete(decision_request())
    assert time.perf_counter() - started >= 1.0
    assert provider.retries == 1


async def test_a_hang_past_the_read_timeout_is_retried():
    async with FakeLLMServer(faults=["hang"], hang_seconds=3) as server:
        provider = provider_for(server, read_timeout=0.3)
        response = await provider.complete(decision_request())
    assert response.text and provider.retries == 1


async def test_giving_up_after_the_last_retry_says_why():
    async with FakeLLMServer(faults=["server_error"] * 10) as server:
        provider = OpenAICompatibleProvider(Endpoint("local", server.base_url), retry=RetryPolicy(max_retries=2, base_delay=0.01))
        with pytest.raises(ProviderUnavailable, match="3 tries: last HTTP 500"):
            await provider.complete(decision_request())


async def test_concurrency_is_limited_per_endpoint():
    import asyncio

    async with FakeLLMServer(latency=0.05) as server:
        provider = provider_for(server, max_concurrency=3)
        await asyncio.gather(*(provider.complete(decision_request()) for _ in range(12)))
        stats = server.stats
    assert stats["max_concurrent_requests"] <= 3
    assert stats["connections"] <= 3


def test_a_key_is_never_sent_in_clear_text_to_another_machine():
    with pytest.raises(ValueError, match="refusing to send an API key over plain HTTP"):
        check_endpoint(Endpoint("x", "http://api.example.com/v1", "k"))
    check_endpoint(Endpoint("x", "http://127.0.0.1:8080/v1", "k"))
    check_endpoint(Endpoint("x", "http://localhost:8080/v1", "k"))
    check_endpoint(Endpoint("x", "http://[::1]:8080/v1", "k"))
    check_endpoint(Endpoint("x", "http://192.168.1.5:11434/v1"))  # no key: nothing to leak
    check_endpoint(Endpoint("x", "https://openrouter.ai/api/v1", "k"))


async def test_a_run_through_faults_books_exactly_what_the_server_billed():
    scenario = Scenario.load(SUMMIT)
    kinds = ["rate_limit", "server_error", "unavailable", "bad_gateway", "truncated_json", "invalid_schema", "empty_choices", "hang"]
    async with FakeLLMServer(fault_rate=0.2, fault_kinds=kinds, retry_after=0, seed=7, hang_seconds=5) as server:
        router = ModelRouter({"local": provider_for(server, read_timeout=0.3)}, forced="local")
        runner = Runner(provider=router, error_policy=ErrorPolicy(max_attempts=3, retry_delay=0))
        state = await runner.run_async(scenario, max_turns=2, run_id="faulty")
        await server.idle()  # the last hang may still be noticing that its client left
        stats = server.stats
    assert state.status in (ScenarioStatus.COMPLETED, ScenarioStatus.PAUSED), state.error
    if state.status is ScenarioStatus.PAUSED:
        assert state.halt_reason
    assert sum(stats["faults"].values()) > 10, "the run really met faults"
    assert stats["faults"]["hang"] > 0 and stats["abandoned"] == stats["faults"]["hang"], "timed-out calls billed nothing"
    assert sum(c.input_tokens for c in state.costs) == stats["prompt_tokens"]
    assert sum(c.output_tokens for c in state.costs) == stats["completion_tokens"]
    assert len(state.costs) == stats["completions"], "every billed answer, good or bad, is a ledger line"


async def test_a_server_that_refuses_json_schema_gets_the_schema_as_json_object():
    """llama-cpp-python's server takes `{"type": "json_object", "schema": ...}` and turns json_schema down."""
    async with FakeLLMServer(response_formats=("text", "json_object")) as server:
        provider = provider_for(server)
        first = await provider.complete(decision_request())
        second = await provider.complete(decision_request())
        stats = server.stats
    assert provider.structured_output == "json_object" and provider.retries == 0
    assert stats["requests"] == 3 and stats["completions"] == 2, "one refusal, then every call in the accepted form"
    assert (first.tries, second.tries) == (2, 1), "the refused request counts among the first call's"
    for response in (first, second):
        parse_structured(response.text, DecisionOutput)  # schema-valid: the server saw the schema


async def test_json_object_can_be_chosen_up_front():
    async with FakeLLMServer(response_formats=("text", "json_object")) as server:
        provider = provider_for(server, structured_output="json_object")
        parse_structured((await provider.complete(decision_request())).text, DecisionOutput)
        assert server.stats["requests"] == 1


async def test_a_server_billing_more_than_the_price_table_still_never_takes_a_run_past_its_limit():
    """The fake server bills about 60 times gpt-4o-mini's list price. The first call goes alone, projected at
    the table's price; what the server bills for it raises the projections of the calls after it, so the limit
    holds; a resume, whose provider starts from the table again, learns the price from the ledger first."""
    scenario = with_model(Scenario.load(SUMMIT), "openai/gpt-4o-mini")
    limits = []
    async with FakeLLMServer(report_cost=True, prompt_price=1e-5, completion_price=3e-5) as server:
        state = None
        for limit in (0.04, 0.08, 0.16):
            provider = OpenAICompatibleProvider(Endpoint("local", server.base_url), retry=FAST)  # a fresh table each time
            state = await Runner(provider=provider).run_async(scenario, max_turns=3, credit_limit=limit, run_id="dear", state=state)
            limits.append((limit, state.status, round(state.total_cost, 6)))
            assert state.total_cost <= limit, limits
            assert state.status is ScenarioStatus.HALTED and "credit limit" in state.halt_reason, limits
        # Just above what is spent: a call at the table's price would fit, one at the billed price does not.
        limit = state.total_cost + 0.005
        provider = OpenAICompatibleProvider(Endpoint("local", server.base_url), retry=FAST)
        resumed = await Runner(provider=provider).run_async(scenario, max_turns=3, credit_limit=limit, run_id="dear", state=state)
        assert resumed.total_cost == state.total_cost and resumed.status is ScenarioStatus.HALTED, "no call was made"
        billed = server.stats
    paid = sum(c.input_tokens * 1e-5 + c.output_tokens * 3e-5 for c in state.costs)
    assert paid == pytest.approx(state.total_cost) and sum(c.input_tokens for c in state.costs) == billed["prompt_tokens"]


async def test_with_room_under_the_limit_the_first_calls_of_unbilled_models_still_go_together():
    """Reserved at a top-tier rate while that fits, the first round is not held back one call at a time."""
    scenario = Scenario.load(SUMMIT)
    async with FakeLLMServer() as server:
        server.hold_answers()  # nothing is answered, so only calls sent together can all arrive
        provider = OpenAICompatibleProvider(Endpoint("local", server.base_url), retry=FAST)
        run = asyncio.create_task(Runner(provider=provider).run_async(scenario, max_turns=1, credit_limit=50.0, run_id="roomy"))
        for _ in range(500):
            if server.stats["requests"] >= len(scenario.actors):
                break
            await asyncio.sleep(0.01)
        first_round = server.stats["requests"]
        server.release_answers()
        state = await run
    assert first_round >= len(scenario.actors), "the actors' first calls went together"
    assert state.status is ScenarioStatus.COMPLETED


async def test_a_model_the_table_calls_free_but_its_server_bills_stays_guarded_behind_the_response_cache():
    """The table prices ollama/ models at 0; a server billing them anyway must not get a free pass through
    the cache (its `max_cost` is 0 for them too, not only for answers it holds)."""
    async with FakeLLMServer(report_cost=True, prompt_price=1e-5, completion_price=3e-5) as server:
        inner = OpenAICompatibleProvider(Endpoint("local", server.base_url), retry=FAST)
        provider = CachingProvider(inner, MemoryResponseCache(), scope="run")
        tracker = CostTracker(provider=provider, bus=EventBus(), run_id="free", credit_limit=0.05)
        requests = [LLMRequest(messages=(Message("user", f"Question {i}: " + "x" * 4000),), model="ollama/llama3",
                               purpose=CallPurpose(task="decision", phase="decision", turn=1, actor=f"a{i}"))
                    for i in range(20)]
        results = await asyncio.gather(*(tracker.complete(r) for r in requests), return_exceptions=True)
    assert tracker.spent <= 0.05, f"spent {tracker.spent:.4f} of a 0.05 limit"
    assert any(isinstance(r, CreditLimitExceeded) for r in results) and any(not isinstance(r, BaseException) for r in results)
