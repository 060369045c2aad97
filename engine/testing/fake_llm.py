"""A loopback fake LLM server that speaks the OpenAI chat-completions protocol.

Tests, benchmarks and demos point a real HTTP client (base URL, API key, retries, timeouts, streaming)
at it instead of a provider: answers are deterministic per request and free, and faults come on demand.

    async with FakeLLMServer(latency=0.2, faults=["rate_limit", None]) as server:
        ...  # server.base_url == "http://127.0.0.1:PORT/v1"
    server = FakeLLMServer().start_in_thread()  # from sync code; server.stop() when done
    python -m engine.testing.fake_llm --port 0 --latency 0.2 --fault-rate 0.1 --seed 1

Endpoints: POST /v1/chat/completions, GET /v1/models, GET /stats, POST /stats/reset, GET|POST /faults.
Content: a schema-valid JSON instance when the request carries a JSON schema (`response_format`
json_schema, or Ollama's top-level `format`), a JSON object in JSON mode, else V1-style Markdown
sections, or a bare number when the last user message asks for "only a number".
Faults (FAULT_KINDS) come from a script, a seeded random rate, the `X-Fake-Fault` header or POST /faults.
Only 200 answers bill tokens; truncated and schema-violating 200s bill too, as a provider's would; with
`record=True` the server keeps each billed answer with the messages it answered (`billed`). A hang
whose client hangs up is abandoned unbilled (`abandoned` in /stats), as llama.cpp and vLLM abort it.
The HTTP (`engine.testing.fake_http`) is plain asyncio streams: HTTP/1.1 with keep-alive and Content-Length
request bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from engine.testing.fake_chat import (RESPONSE_FORMATS, ChatRequest, HTTPError, parse_chat, prose_answer, truncate_answer,
                                      with_text_suffix)
from engine.testing.fake_http import (
    MAX_HEAD_BYTES, SSE_HEAD, Request, client_leaves, json_body, read_request, send, send_error, send_events, send_json,
)
from engine.testing.json_schema_instance import build_instance, sentence, violate_schema

FAULT_KINDS = ("rate_limit", "server_error", "unavailable", "hang", "truncated_json", "invalid_schema",
               "empty_choices", "bad_gateway")
# The faults that are error answers. stats["faults"] counts these under their status ("429") and the
# others under their name, so each fault has exactly one key.
FAULT_STATUS = {"rate_limit": 429, "server_error": 500, "unavailable": 503, "bad_gateway": 502}
# Random faults leave out "hang" by default: one 30 s hang in a benchmark would swamp every other number.
DEFAULT_RANDOM_FAULTS = tuple(kind for kind in FAULT_KINDS if kind != "hang")


def _fault_key(kind: str) -> str:
    return str(FAULT_STATUS[kind]) if kind in FAULT_STATUS else kind


def _check_faults(script: Iterable[str | None]) -> list[str | None]:
    script = list(script)
    unknown = [kind for kind in script if kind is not None and kind not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    return script


class FakeLLMServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1 with deterministic answers and faults."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
        faults: Sequence[str | None] | None = None, fault_rate: float = 0.0,
        fault_kinds: Sequence[str] = DEFAULT_RANDOM_FAULTS, seed: int = 0, retry_after: float = 1,
        hang_seconds: float = 30.0, models: Sequence[str] = ("fake-model",), api_key: str | None = None,
        report_cost: bool = False, prompt_price: float = 1e-6, completion_price: float = 2e-6,
        response_formats: Sequence[str] = RESPONSE_FORMATS, text_suffix: str = "", record: bool = False,
        backlog: int = 100,
    ) -> None:
        if not 0 <= fault_rate <= 1:
            raise ValueError("fault_rate must be within 0..1")
        self.fault_kinds = tuple(_check_faults(fault_kinds))
        if fault_rate and not self.fault_kinds:
            raise ValueError("a fault_rate needs at least one fault kind")
        self.host, self.port, self.latency, self.fault_rate, self.seed = host, port, latency, fault_rate, seed
        self.retry_after, self.hang_seconds, self.models = retry_after, hang_seconds, list(models)
        self._api_key, self.report_cost = api_key, report_cost  # the key is never printed, echoed or logged
        self.prompt_price, self.completion_price = prompt_price, completion_price
        self.response_formats = tuple(response_formats)
        # Appended to every free-text value of every answer: how a test makes the "model" say something
        # particular (hostile HTML, a marker), without touching enum-like values the schema constrains.
        self.text_suffix = text_suffix
        # With `record`, every billed answer as the server saw it: {"model", "messages", "answer", "usage",
        # "fault"}, in the order billed (what a test compares a client's own account of its calls with).
        self.record = record
        # The listen backlog: small ones (llama.cpp's, some proxies') drop a burst of new connections' SYNs.
        self.backlog = backlog
        self.billed: list[dict[str, Any]] = []
        # In thread mode stats and the script are read and changed from other threads, hence the lock.
        self._lock = threading.Lock()
        self._script: deque[str | None] = deque(_check_faults(faults or []))
        self._fault_rng = random.Random(seed)
        self._stats = self._fresh_stats()
        self._in_flight = 0
        self._held = threading.Event()  # set: answers wait, unbilled, until released (see hold_answers)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> FakeLLMServer:
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port, limit=MAX_HEAD_BYTES,
                                                  backlog=self.backlog)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Python 3.11's Server.close() leaves open connections alone; a hanging answer must not outlive us.
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until no request is being answered. A client that gave up on a hanging answer is noticed
        within 50 ms; read /stats after this to count it as abandoned."""
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> FakeLLMServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start_in_thread(self) -> FakeLLMServer:
        """Serve from a daemon thread with its own event loop, for sync callers; returns once listening."""
        ready, failure = threading.Event(), []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # e.g. the port is taken: hand it to the caller
                failure.append(exc)
            ready.set()
            if not failure:
                loop.run_forever()  # until stop()
                loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-llm-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    @staticmethod
    def _fresh_stats() -> dict[str, Any]:
        return {"requests": 0, "completions": 0, "prompt_tokens": 0, "completion_tokens": 0,
                "faults": {_fault_key(kind): 0 for kind in FAULT_KINDS}, "connections": 0, "max_concurrent_requests": 0,
                "abandoned": 0, "first_request_at": None, "last_answer_at": None}

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot: requests (chat), completions (200 answers), tokens billed, faults, connections, peak, and
        when the first request came and the last answer went (epoch seconds, None before any)."""
        with self._lock:
            return {**self._stats, "faults": dict(self._stats["faults"])}

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = self._fresh_stats()

    def hold_answers(self) -> None:
        """Keep every answer from being billed or sent until `release_answers()`: a test that must act at a
        moment when nothing more can be billed (a kill whose ledger must match the bill) holds the server
        first. A held request whose client hangs up is abandoned unbilled, as a hanging one is."""
        self._held.set()

    def release_answers(self) -> None:
        self._held.clear()

    def set_faults(self, script: Iterable[str | None]) -> None:
        """Replace the fault script: successive chat requests take one entry each (None: a normal answer)."""
        checked = _check_faults(script)
        with self._lock:
            self._script = deque(checked)

    def _choose_fault(self, request: Request) -> str | None:
        asked = request.headers.get("x-fake-fault", "").strip().lower()
        if asked:  # the header wins and leaves the script alone
            if asked not in (*FAULT_KINDS, "none"):
                raise HTTPError(400, f"unknown X-Fake-Fault {asked!r}; known: {', '.join(FAULT_KINDS)}")
            return None if asked == "none" else asked
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self.fault_rate and self._fault_rng.random() < self.fault_rate:
                return self._fault_rng.choice(self.fault_kinds)
        return None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self._stats["connections"] += 1
        try:
            keep_alive = True
            while keep_alive:
                try:
                    request = await read_request(reader)
                    if request is None:
                        return
                    keep_alive = await self._dispatch(request, reader, writer)
                except HTTPError as exc:  # framing is broken: answer, then hang up
                    await send_error(writer, exc, keep_alive=False)
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or close() ended a hanging answer: nobody to answer
        except Exception:  # a bug must cost one connection, never the server
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await send_error(writer, HTTPError(500, "internal error in the fake server"), keep_alive=False)
        finally:
            # Never end cancelled: Python 3.11's stream callback logs a cancelled handler task as an error.
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            self._tasks.discard(task)  # only now, so close() waits for this last step too

    async def _dispatch(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; True when the connection stays open for the next."""
        routes = {"/v1/chat/completions": ("POST",), "/v1/models": ("GET",), "/stats": ("GET",),
                  "/stats/reset": ("POST",), "/faults": ("GET", "POST")}
        keep_alive = request.keep_alive
        try:
            if request.path not in routes:
                raise HTTPError(404, f"no route for {request.path}")
            if request.method not in routes[request.path]:
                raise HTTPError(405, f"{request.method} is not allowed on {request.path}")
            if request.path.startswith("/v1/") and self._api_key is not None:
                given = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, f"Bearer {self._api_key}".encode()):
                    raise HTTPError(401, "missing or invalid API key")  # what was given is never echoed
            if request.path == "/v1/chat/completions":
                await self._chat(request, reader, writer, keep_alive)
            elif request.path == "/v1/models":
                data = [{"id": model, "object": "model", "created": 0, "owned_by": "fake-llm"} for model in self.models]
                await send_json(writer, 200, {"object": "list", "data": data}, keep_alive=keep_alive)
            else:
                await send_json(writer, 200, self._control(request), keep_alive=keep_alive)
        except HTTPError as exc:
            if exc.close:
                raise
            await send_error(writer, exc, keep_alive=keep_alive)
        return keep_alive

    def _control(self, request: Request) -> dict[str, Any]:
        """/stats, /stats/reset and /faults: how a test in another process steers and reads the server."""
        if request.path == "/stats/reset":
            self.reset_stats()
        if request.path.startswith("/stats"):
            return self.stats
        if request.method == "POST":
            payload = json_body(request)
            script = payload.get("script") if isinstance(payload, dict) else None
            if not isinstance(script, list):
                raise HTTPError(400, 'expected {"script": [fault names or null, ...]}')
            try:
                self.set_faults(script)
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
        with self._lock:
            return {"script": list(self._script), "fault_rate": self.fault_rate, "fault_kinds": list(self.fault_kinds)}

    async def _chat(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    keep_alive: bool) -> None:
        with self._lock:
            self._stats["requests"] += 1
            if self._stats["first_request_at"] is None:  # time.time(): benchmarks compare it across processes
                self._stats["first_request_at"] = time.time()
            self._in_flight += 1
            self._stats["max_concurrent_requests"] = max(self._stats["max_concurrent_requests"], self._in_flight)
        try:
            chat = parse_chat(json_body(request), response_formats=self.response_formats)
            fault = self._choose_fault(request)
            if fault is not None:
                with self._lock:
                    self._stats["faults"][_fault_key(fault)] += 1
            if fault in FAULT_STATUS:
                retry = {"Retry-After": f"{self.retry_after:g}"} if fault in ("rate_limit", "unavailable") else None
                raise HTTPError(FAULT_STATUS[fault], f"injected fault: {fault}", headers=retry)
            if fault == "hang":  # then answer normally, long after a sane client has given up
                if await client_leaves(reader, self.hang_seconds):
                    # Like llama.cpp or vLLM, a stalled request whose client hung up is aborted before it
                    # generates anything: nothing is billed, so the client's ledger can match /stats exactly.
                    with self._lock:
                        self._stats["abandoned"] += 1
                    raise ConnectionResetError("the client gave up on a hanging answer")
            if self.latency:
                await asyncio.sleep(self.latency)
            while self._held.is_set():
                if reader.at_eof():
                    with self._lock:
                        self._stats["abandoned"] += 1
                    raise ConnectionResetError("the client left while its answer was held")
                await asyncio.sleep(0.002)
            content = self._content(chat, fault)
            usage: dict[str, Any] = {"prompt_tokens": chat.prompt_tokens(),
                                     "completion_tokens": 0 if content is None else len(content) // 4 + 1}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            if self.report_cost:
                usage["cost"] = round(usage["prompt_tokens"] * self.prompt_price
                                      + usage["completion_tokens"] * self.completion_price, 12)
            with self._lock:  # billed when answered, as a provider does, whether or not the client still listens
                self._stats["completions"] += 1
                self._stats["last_answer_at"] = time.time()
                self._stats["prompt_tokens"] += usage["prompt_tokens"]
                self._stats["completion_tokens"] += usage["completion_tokens"]
                if self.record:
                    self.billed.append({"model": chat.model, "messages": chat.messages, "answer": content,
                                        "usage": dict(usage), "fault": fault})
            if chat.stream:
                await self._stream(writer, chat, content, usage)
            else:
                choices = [] if content is None else [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
                answer = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
                          "created": int(time.time()), "model": chat.model, "choices": choices, "usage": usage}
                await send_json(writer, 200, answer, keep_alive=keep_alive)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _content(self, chat: ChatRequest, fault: str | None) -> str | None:
        if fault == "empty_choices":
            return None
        # Seeded by the request and the server seed (a str seed is hashed stably across runs, unlike hash()).
        rng = random.Random(f"{chat.digest()}:{self.seed}")
        if chat.schema is not None:
            instance = with_text_suffix(build_instance(chat.schema, rng), self.text_suffix)
            text = json.dumps(violate_schema(chat.schema, instance) if fault == "invalid_schema" else instance)
        elif chat.json_mode:
            answer = {"answer": sentence(rng, "answer"), "confidence": round(rng.uniform(0.5, 0.95), 2)}
            text = json.dumps(list(answer.values()) if fault == "invalid_schema" else answer)
        elif fault == "invalid_schema":  # prose was expected: JSON is the wrong shape
            text = json.dumps({"unexpected": sentence(rng, "answer")})
        else:
            text = prose_answer(chat, rng, suffix=self.text_suffix)
        return truncate_answer(text) if fault == "truncated_json" else text

    async def _stream(self, writer: asyncio.StreamWriter, chat: ChatRequest, content: str | None,
                      usage: dict[str, Any]) -> None:
        """SSE in a chunked body; the connection stays usable after the terminating chunk."""
        await send(writer, 200, SSE_HEAD, b"")
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": chat.model}
        events: list[dict[str, Any]] = []
        if content is not None:
            pieces = [content[i:i + 16] for i in range(0, len(content), 16)]
            deltas = [{"role": "assistant", "content": ""}, *({"content": piece} for piece in pieces), {}]
            events = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
            events[-1]["choices"][0]["finish_reason"] = "stop"
        events.append({**base, "choices": [], "usage": usage})  # as OpenAI sends with stream_options.include_usage
        await send_events(writer, [*(json.dumps(event) for event in events), "[DONE]"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible LLM on 127.0.0.1.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests (0..1) given a random fault")
    parser.add_argument("--fault-kinds", default=",".join(DEFAULT_RANDOM_FAULTS), help="comma-separated fault names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-cost", action="store_true", help="report usage.cost, as OpenRouter does")
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--text-suffix", default="", help="appended to every free-text value of every answer")
    args = parser.parse_args(argv)
    server = FakeLLMServer(host=args.host, port=args.port, latency=args.latency, fault_rate=args.fault_rate,
                           fault_kinds=[kind for kind in args.fault_kinds.split(",") if kind], seed=args.seed,
                           report_cost=args.report_cost, api_key=args.api_key, text_suffix=args.text_suffix)

    async def serve() -> None:
        async with server:
            print(server.base_url, flush=True)
            await asyncio.Event().wait()  # until Ctrl-C

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
