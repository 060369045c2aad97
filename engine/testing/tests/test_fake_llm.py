"""The fake LLM server, tested as its clients meet it: real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from enum import Enum
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.testing.fake_llm import FAULT_KINDS, FakeLLMServer
from engine.testing.json_schema_instance import build_instance, violate_schema


class Urgency(str, Enum):
    LOW = "low"
    HIGH = "high"
    CRITICAL = "critical"


class Step(BaseModel):
    description: str = Field(min_length=20, max_length=200)
    actor: str | None = None
    urgency: Urgency


class Target(BaseModel):
    kind: Literal["actor", "issue"]
    name: str


class Decision(BaseModel):
    """A decision shaped like the ones the phases ask for: nested objects, lists, unions, enums, bounds."""

    model_config = ConfigDict(extra="forbid")
    reasoning: str
    confidence: float = Field(ge=0, le=1)
    rounds: int = Field(ge=1, le=5)
    steps: list[Step] = Field(min_length=2, max_length=4)
    targets: list[Target | str]
    tags: list[str] = Field(default_factory=list, max_length=2)
    fallback: Step | None = None
    approved: bool


DECISION_SCHEMA = Decision.model_json_schema()


def body(text: str = "What do you do next?", **extra: object) -> dict:
    return {"model": "fake-model", "messages": [{"role": "system", "content": "You are a delegate."},
                                                {"role": "user", "content": text}], **extra}


def schema_body(text: str = "Decide.", **extra: object) -> dict:
    spec = {"name": "decision", "schema": DECISION_SCHEMA, "strict": True}
    response_format = {"type": "json_schema", "json_schema": spec}
    return body(text, response_format=response_format, **extra)


def content_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


@pytest.fixture
async def server():
    async with FakeLLMServer() as running:
        yield running


@pytest.fixture
async def client(server):
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        yield http


async def test_plain_completion_has_usage_and_is_deterministic(client):
    first = await client.post("/chat/completions", json=body())
    again = await client.post("/chat/completions", json=body())
    other = await client.post("/chat/completions", json=body("Something else entirely."))
    answer = first.json()
    assert answer["object"] == "chat.completion" and answer["model"] == "fake-model"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["message"]["role"] == "assistant"
    usage = answer["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] == len(content_of(first)) // 4 + 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "cost" not in usage
    assert content_of(again) == content_of(first) != content_of(other)


async def test_server_seed_changes_answers_and_cost_is_reported_when_asked():
    async with FakeLLMServer(seed=7, report_cost=True, prompt_price=1e-3, completion_price=2e-3) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            answer = (await http.post("/chat/completions", json=body())).json()
    async with FakeLLMServer(seed=8) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            other = (await http.post("/chat/completions", json=body())).json()
    usage = answer["usage"]
    assert usage["cost"] == pytest.approx(usage["prompt_tokens"] * 1e-3 + usage["completion_tokens"] * 2e-3)
    assert answer["choices"][0]["message"]["content"] != other["choices"][0]["message"]["content"]


async def test_schema_answers_validate_against_the_schema(client):
    assert "$defs" in DECISION_SCHEMA  # the schema really exercises $ref, anyOf and enums
    seen_urgencies = set()
    for turn in range(12):
        response = await client.post("/chat/completions", json=schema_body(f"Turn {turn}."))
        decision = Decision.model_validate_json(content_of(response))
        seen_urgencies.update(step.urgency for step in decision.steps)
        assert 2 <= len(decision.steps) <= 4
    assert len(seen_urgencies) > 1  # enum values vary with the request, not always the first
    ollama = body("Decide.", format=DECISION_SCHEMA)
    Decision.model_validate_json(content_of(await client.post("/chat/completions", json=ollama)))
    json_mode = await client.post("/chat/completions", json=body(response_format={"type": "json_object"}))
    assert isinstance(json.loads(content_of(json_mode)), dict)
    assert isinstance(json.loads(content_of(await client.post("/chat/completions", json=body(format="json")))), dict)


def test_instances_honour_the_finer_keywords():
    node = {"type": "object", "properties": {"child": {"anyOf": [{"$ref": "#/definitions/node"}, {"type": "null"}]}}}
    schema = {
        "type": "object",
        "properties": {
            "node": {"$ref": "#/definitions/node"},
            "code": {"type": "string", "minLength": 3, "maxLength": 5},
            "odd": {"type": "integer", "minimum": 1, "maximum": 9, "multipleOf": 2, "exclusiveMinimum": 2},
            "share": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.1},
            "pick": {"type": ["null", "boolean"]},
            "fixed": {"const": 42},
            "both": {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"required": ["b"]}]},
            "flags": {"type": "array", "items": {"enum": ["x", "y"]}, "uniqueItems": True, "minItems": 2},
            "when": {"type": "string", "format": "date"},
        },
        "required": ["node", "code"],
        "additionalProperties": False,
        "definitions": {"node": node},
    }
    for seed in range(20):
        value = build_instance(schema, random.Random(seed))
        assert 3 <= len(value["code"]) <= 5
        assert value["odd"] in (4, 6, 8) and 0 < value["share"] < 0.1 and isinstance(value["pick"], bool)
        assert value["fixed"] == 42 and isinstance(value["both"]["a"], int) and "b" in value["both"]
        assert sorted(value["flags"]) == ["x", "y"] and len(value["when"]) == 10
        depth, node = 0, value["node"]
        while node is not None:  # the recursive union ends
            node, depth = node.get("child"), depth + 1
        assert depth < 20
        assert "node" not in violate_schema(schema, value)
    assert build_instance({"type": "string", "maxLength": 0}, random.Random(0)) == ""
    assert violate_schema({"type": "object"}, {}) == [{}]


async def test_markdown_sections_without_a_schema(client):
    text = content_of(await client.post("/chat/completions", json=body()))
    headings = ["**LONG-TERM GOALS:**", "**SHORT-TERM PRIORITIES:**", "**REASONING:**", "**ACTION:**"]
    positions = [text.index(heading) for heading in headings]
    assert positions == sorted(positions) and text.startswith(headings[0])
    assert "\n- " in text


async def test_only_a_number(client):
    text = content_of(await client.post("/chat/completions", json=body("Rate the tension. Answer with ONLY A NUMBER.")))
    assert 0 < float(text) < 10


async def test_streaming_assembles_the_same_content(client):
    for request in (body(), schema_body()):
        expected = content_of(await client.post("/chat/completions", json=request))
        async with client.stream("POST", "/chat/completions", json={**request, "stream": True}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in response.aiter_lines() if line]
        assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
        chunks = [json.loads(line[6:]) for line in lines[:-1]]
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == expected
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(expected) // 4 + 1
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    # the keep-alive connection is still good after a chunked stream
    assert (await client.get("/models")).status_code == 200


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [("rate_limit", 429, "2"), ("server_error", 500, None), ("unavailable", 503, "2"), ("bad_gateway", 502, None)],
)
async def test_error_faults(fault, status, retry_after):
    async with FakeLLMServer(retry_after=2) as server, httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post("/chat/completions", json=body(), headers={"X-Fake-Fault": fault})
        assert response.status_code == status and "error" in response.json()
        assert response.headers.get("retry-after") == retry_after
        assert server.stats["faults"][str(status)] == 1 and server.stats["completion_tokens"] == 0


async def test_hang_outlasts_a_client_timeout():
    server = FakeLLMServer(hang_seconds=5)
    async with server, httpx.AsyncClient(base_url=server.base_url, timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/chat/completions", json=body(), headers={"X-Fake-Fault": "hang"})
        assert server.stats["faults"]["hang"] == 1  # and closing the server ends the hanging answer


async def test_faulty_200s(client):
    async def with_fault(fault: str) -> httpx.Response:
        return await client.post("/chat/completions", json=schema_body(), headers={"X-Fake-Fault": fault})

    truncated = content_of(await with_fault("truncated_json"))
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated)
    invalid = content_of(await with_fault("invalid_schema"))
    json.loads(invalid)
    with pytest.raises(ValidationError):
        Decision.model_validate_json(invalid)
    empty = await client.post("/chat/completions", json=body(), headers={"X-Fake-Fault": "empty_choices"})
    assert empty.status_code == 200 and empty.json()["choices"] == []
    assert empty.json()["usage"]["completion_tokens"] == 0 and empty.json()["usage"]["prompt_tokens"] > 0


async def test_scripted_faults_are_consumed_in_order():
    server = FakeLLMServer(faults=["rate_limit", None, "server_error"])
    async with server, httpx.AsyncClient(base_url=server.base_url) as http:
        statuses = [(await http.post("/chat/completions", json=body())).status_code for _ in range(4)]
        assert statuses == [429, 200, 500, 200]
        set_script = await http.post(f"{server.base_url[:-3]}/faults", json={"script": ["bad_gateway", None]})
        assert set_script.json()["script"] == ["bad_gateway", None]
        statuses = [(await http.post("/chat/completions", json=body())).status_code for _ in range(3)]
        assert statuses == [502, 200, 200]
        bad = await http.post(f"{server.base_url[:-3]}/faults", json={"script": ["meteor"]})
        assert bad.status_code == 400
    with pytest.raises(ValueError):
        FakeLLMServer(faults=["meteor"])


async def test_fault_rate_is_deterministic_for_a_seed():
    async def statuses(seed: int) -> list[int]:
        kinds = ["rate_limit", "server_error"]
        async with FakeLLMServer(fault_rate=0.5, fault_kinds=kinds, seed=seed) as server:
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                return [(await http.post("/chat/completions", json=body())).status_code for _ in range(24)]

    first, again, other = await statuses(1), await statuses(1), await statuses(2)
    assert first == again != other
    assert set(first) == {200, 429, 500}


async def test_stats_bill_exactly_the_200_answers(server, client):
    faults = [None, "truncated_json", "rate_limit", "empty_choices", "invalid_schema", "unavailable", None]
    server.set_faults(faults)
    responses = [await client.post("/chat/completions", json=schema_body(f"Turn {n}.")) for n in range(len(faults))]
    ok = [r.json()["usage"] for r in responses if r.status_code == 200]
    stats = (await client.get(f"{server.base_url[:-3]}/stats")).json()
    assert stats == server.stats
    assert stats["requests"] == 7 and stats["completions"] == len(ok) == 5
    assert stats["prompt_tokens"] == sum(u["prompt_tokens"] for u in ok)
    assert stats["completion_tokens"] == sum(u["completion_tokens"] for u in ok)
    assert stats["faults"] == {"429": 1, "500": 0, "503": 1, "502": 0, "hang": 0, "truncated_json": 1,
                               "invalid_schema": 1, "empty_choices": 1}
    reset = (await client.post(f"{server.base_url[:-3]}/stats/reset")).json()
    assert reset["requests"] == 0 and reset["prompt_tokens"] == 0 and sum(reset["faults"].values()) == 0


async def test_connections_and_concurrency_are_counted():
    async with FakeLLMServer(latency=0.2) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            await http.post("/chat/completions", json=body())
            await http.post("/chat/completions", json=body())
        assert server.stats["connections"] == 1
        server.reset_stats()

        async def one() -> None:
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                assert (await http.post("/chat/completions", json=body())).status_code == 200

        await asyncio.gather(one(), one(), one())
        assert server.stats["connections"] == 3 and server.stats["max_concurrent_requests"] == 3


async def test_api_key_is_required_when_configured():
    key = "sk-test-secret"
    async with FakeLLMServer(api_key=key) as server, httpx.AsyncClient(base_url=server.base_url) as http:
        missing = await http.post("/chat/completions", json=body())
        wrong = await http.post("/chat/completions", json=body(), headers={"Authorization": "Bearer nope"})
        right = await http.post("/chat/completions", json=body(), headers={"Authorization": f"Bearer {key}"})
        assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
        assert key not in missing.text and "nope" not in wrong.text
        assert (await http.get("/models")).status_code == 401


async def test_malformed_requests_get_400_and_the_server_keeps_serving(server, client):
    for raw in (b"{not json", b"[1, 2]", json.dumps({"model": "m"}).encode(),
                json.dumps({"model": "m", "messages": [{"content": "no role"}]}).encode(),
                json.dumps(body(response_format={"type": "xml"})).encode()):
        response = await client.post("/chat/completions", content=raw)
        assert response.status_code == 400 and response.json()["error"]["message"]
    assert (await client.post("/chat/completions", json=body(), headers={"X-Fake-Fault": "meteor"})).status_code == 400
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.get("/chat/completions")).status_code == 405
    for garbage in (b"GARBAGE\r\n\r\n", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                    b"POST /v1/chat/completions HTTP/1.1\r\nno colon here\r\n\r\n", b"GET / HTTP/9\r\n\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(garbage)
        answer = await reader.read()  # the server answers, then hangs up
        writer.close()
        assert answer.split(b" ")[1] in (b"400", b"505") and b'"error"' in answer
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    writer.close()  # a client that leaves mid-body
    assert content_of(await client.post("/chat/completions", json=body()))
    models = (await client.get("/models")).json()
    assert [m["id"] for m in models["data"]] == ["fake-model"]


def test_thread_mode_serves_sync_code():
    server = FakeLLMServer(faults=["rate_limit"]).start_in_thread()
    try:
        with httpx.Client(base_url=server.base_url) as http:
            assert http.post("/chat/completions", json=body()).status_code == 429
            assert content_of(http.post("/chat/completions", json=body()))
        assert server.stats["completions"] == 1 and server.stats["faults"]["429"] == 1
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError), httpx.Client() as http:
        http.get(f"http://127.0.0.1:{server.port}/stats")


def test_cli_prints_the_base_url_and_serves():
    process = subprocess.Popen([sys.executable, "-m", "engine.testing.fake_llm", "--port", "0", "--seed", "3"],
                               stdout=subprocess.PIPE, text=True)
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert content_of(httpx.post(f"{base_url}/chat/completions", json=body()))
    finally:
        process.terminate()
        process.wait(5)


def test_every_fault_kind_is_documented_in_stats():
    assert len(FakeLLMServer().stats["faults"]) == len(FAULT_KINDS)


def test_a_text_suffix_reaches_every_prose_value_and_no_enum():
    server = FakeLLMServer(text_suffix=" <b>MARK</b>").start_in_thread()
    try:
        schema = {"type": "object", "properties": {"kind": {"type": "string", "enum": ["bilateral", "public"]},
                                                   "text": {"type": "string"}}, "required": ["kind", "text"]}
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}}
        answer = httpx.post(f"{server.base_url}/chat/completions", json=body).json()
    finally:
        server.stop()
    data = json.loads(answer["choices"][0]["message"]["content"])
    assert data["kind"] in ("bilateral", "public")
    assert data["text"].endswith(" <b>MARK</b>")


async def test_held_answers_are_billed_only_when_released_and_never_if_their_client_left():
    async with FakeLLMServer() as server:
        server.hold_answers()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=0.2) as gone:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and hangs up while its answer is held
                await gone.post("/chat/completions", json=body())
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            waiting = asyncio.create_task(http.post("/chat/completions", json=body()))
            await asyncio.sleep(0.1)
            assert not waiting.done() and server.stats["completions"] == 0, "nothing answered or billed while held"
            server.release_answers()
            answer = await waiting
        await server.idle()
        stats = server.stats
    assert answer.status_code == 200 and answer.json()["choices"]
    assert (stats["requests"], stats["completions"], stats["abandoned"]) == (2, 1, 1)
    assert stats["prompt_tokens"] == answer.json()["usage"]["prompt_tokens"]
