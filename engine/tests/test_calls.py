"""Call traces: a run's account of its model calls equals what the server received, answered and billed."""

import json
from collections import Counter
from pathlib import Path

from engine import ErrorPolicy, EventType, Runner, Scenario, ScenarioStatus
from engine.calls import REASKED, USED, call_trace
from engine.llm.openai_compatible import Endpoint, OpenAICompatibleProvider, RetryPolicy
from engine.llm.parsing import parse_structured_noted
from engine.llm.provider import CallPurpose, LLMRequest, LLMResponse, Message
from engine.llm.routing import ModelRouter
from engine.phases.decision_form import DecisionOutput
from engine.testing.fake_llm import FakeLLMServer

SUMMIT = Path(__file__).resolve().parents[2] / "scenarios" / "library" / "ai-summit"


async def traced_run(server: FakeLLMServer, *, turns: int = 1):
    """A run against `server` whose calls go one at a time, so a fault script meets the same calls every time."""
    provider = OpenAICompatibleProvider(Endpoint("local", server.base_url),
                                        retry=RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.02))
    runner = Runner(provider=ModelRouter({"local": provider}, forced="local"), trace_calls=True, max_concurrency=1,
                    error_policy=ErrorPolicy(max_attempts=3, retry_delay=0))
    traces = []
    runner.on(EventType.MODEL_CALLED)(lambda event: traces.append(event.to_dict()["data"]))
    state = await runner.run_async(Scenario.load(SUMMIT), max_turns=turns, run_id="traced")
    return state, traces


def messages_key(messages) -> str:
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in messages])


async def test_the_traces_are_what_the_server_received_answered_and_billed():
    async with FakeLLMServer() as server:
        _, calm = await traced_run(server)
    first_decision = next(i for i, t in enumerate(calm) if t["task"] == "decision")
    # The first call meets a server error (and is sent again); the first decision's answer breaks its schema, so
    # it is asked again, and both attempts are traced.
    faults = ["server_error"] + [None] * first_decision + ["invalid_schema"]  # the retry takes an entry too
    async with FakeLLMServer(record=True, faults=faults, retry_after=0) as server:
        state, traces = await traced_run(server)
        billed = list(server.billed)
        stats = server.stats
    assert state.status is ScenarioStatus.COMPLETED, state.error
    assert len(traces) == len(billed) == stats["completions"] == len(state.costs), "one trace per billed answer"
    assert Counter(messages_key(t["request"]["messages"]) for t in traces) == Counter(messages_key(b["messages"]) for b in billed)
    assert Counter(t["answer"] for t in traces) == Counter(b["answer"] for b in billed)
    assert sum(t["input_tokens"] for t in traces) == stats["prompt_tokens"]
    assert sum(t["output_tokens"] for t in traces) == stats["completion_tokens"]
    assert sum(t["tries"] for t in traces) == stats["requests"], "the server error's retry is counted on its call"
    assert [t for t in traces if t["tries"] == 2], "one call needed a second request"

    reasked = [t for t in traces if t["outcome"] == REASKED]
    assert reasked and all(t["error"] for t in reasked), "an unusable answer says why"
    for first in reasked:
        again = [t for t in traces if (t["turn"], t["task"], t["actor"]) == (first["turn"], first["task"], first["actor"])
                 and t["attempt"] == first["attempt"] + 1]
        assert len(again) == 1 and again[0]["outcome"] == USED
        sent = again[0]["request"]["messages"]
        assert sent[:len(first["request"]["messages"])] == first["request"]["messages"], "the re-ask repeats the request"
        assert sent[-2]["role"] == "assistant" and sent[-2]["content"] in first["answer"], "it shows the failed answer"
        assert "could not be used" in sent[-1]["content"]
    used = [t for t in traces if t["outcome"] == USED and t["task"] == "decision"]
    assert used and all(t["parsed"]["action"] for t in used), "a used decision carries what was read from it"
    assert {t["task"] for t in traces} >= {"decision", "outreach", "world_update", "metric", "validation"}


async def test_a_run_traces_nothing_unless_asked():
    runner = Runner()
    seen = []
    runner.on(EventType.MODEL_CALLED)(seen.append)
    state = await runner.run_async(Scenario.load(SUMMIT), max_turns=1)
    assert state.status is ScenarioStatus.COMPLETED and state.costs and not seen


def test_a_near_json_answer_is_read_with_its_repair_named():
    valid = '{"long_term_goals": ["a"], "short_term_priorities": ["b"], "reasoning": "r", "action": "act"}'
    assert parse_structured_noted(valid, DecisionOutput)[1] is None
    assert parse_structured_noted(f"```json\n{valid}\n```", DecisionOutput)[1] is None, "a code fence is no repair"
    decision, repair = parse_structured_noted(valid[:-1] + ",}", DecisionOutput)
    assert decision.action == "act" and repair == "json_repair"


def test_a_trace_holds_the_request_the_answer_and_what_was_read():
    request = LLMRequest(messages=(Message("system", "s"), Message("user", "u")), model="m",
                         purpose=CallPurpose(task="metric", phase="metrics", turn=2, actor="a", hints={"metric": "trust"}),
                         temperature=0.0, seed=3, max_tokens=50, schema_name="MetricAnswer")
    response = LLMResponse(text="7", input_tokens=10, output_tokens=1, cost=0.5, model="m", provider="p",
                           latency_ms=12.3456, cached=True, tries=3)
    trace = call_trace(request, response, parsed=7.0)
    assert trace["subject"] == "trust" and trace["tries"] == 3 and trace["cached"] and trace["latency_ms"] == 12.346
    assert trace["request"] == {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                "temperature": 0.0, "seed": 3, "max_tokens": 50, "schema_name": "MetricAnswer"}
    assert (trace["answer"], trace["parsed"], trace["outcome"], trace["attempt"]) == ("7", 7.0, USED, 1)
    json.dumps(trace)  # an event's data: plain JSON
