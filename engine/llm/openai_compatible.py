"""A provider for any server speaking OpenAI's chat-completions protocol: OpenRouter, OpenAI, Ollama,
llama.cpp, vLLM, LM Studio.

One pool of keep-alive connections (engine.llm.http) and one concurrency limit per endpoint; retries with exponential backoff and
jitter for what a retry can fix (429/503 honour Retry-After; 500/502/504/408 and network errors), never
for other 4xx. The API key lives only in the request header: never in a message, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import math
import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlparse, urlsplit, urlunsplit

from engine.llm.http import HttpPool, HttpReply, TransportError
from engine.llm.pricing import PriceBook
from engine.llm.provider import LLMError, LLMRequest, LLMResponse, estimate_tokens

logger = logging.getLogger(__name__)

RETRY_WITH_BACKOFF = {408, 500, 502, 504}
RETRY_AFTER_HEADER = {429, 503}
StructuredOutput = Literal["json_schema", "json_object", "ollama"]
STRUCTURED_OUTPUTS: tuple[StructuredOutput, ...] = ("json_schema", "json_object", "ollama")


class ProviderRequestError(LLMError):
    """The server refused the request (bad key, unknown model, bad body): retrying will not help."""


class ProviderUnavailable(LLMError):
    """The server could not answer after every retry (rate limits, outages, timeouts)."""


@dataclass(frozen=True)
class Endpoint:
    name: str  # what cost records say: "openrouter", "openai", "ollama", "local"
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    # How a JSON schema is sent: OpenAI's `response_format` json_schema; `json_object` with a `schema` key
    # (llama-cpp-python's server); or Ollama's native `format`.
    structured_output: StructuredOutput = "json_schema"
    # Calls in flight: a 12-actor turn's QA checks (25 calls) beside the next turn's talks (12) fit in one wave.
    max_concurrency: int = 48
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    strip_prefix: str = ""  # "openai/gpt-4o" is "gpt-4o" to OpenAI itself

    def upstream_model(self, model: str) -> str:
        return model.removeprefix(self.strip_prefix) if self.strip_prefix else model

    @property
    def display_url(self) -> str:
        """The base URL as shown to people and stored with runs: without user:password@ or a ?query,
        where a key may hide."""
        url = urlsplit(self.base_url)
        host = url.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if url.port:
            netloc += f":{url.port}"
        return urlunsplit((url.scheme, netloc, url.path, "", ""))


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: Endpoint) -> None:
    """Refuse to send a key in clear text to another machine; only loopback may use plain HTTP."""
    url = urlparse(endpoint.base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"{endpoint.name}: base URL {endpoint.display_url!r} is not an http(s) URL")
    if endpoint.api_key and url.scheme != "https" and not is_loopback(url.hostname):
        raise ValueError(
            f"{endpoint.name}: refusing to send an API key over plain HTTP to {url.hostname}; use https:// "
            "(plain http is allowed only for 127.0.0.1 / localhost)"
        )


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter: spreads out clients that failed together."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**retry))


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAICompatibleProvider:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        prices: PriceBook | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        check_endpoint(endpoint)
        self.endpoint = endpoint
        self.name = endpoint.name
        self.prices = prices or PriceBook()
        self.retry = retry or RetryPolicy()
        self.retries = 0  # how many times a call was sent again, for tests and benchmarks
        # Downgraded to json_object, once, when the server turns json_schema down (llama-cpp-python does).
        self.structured_output: StructuredOutput = endpoint.structured_output
        self._rng = random.Random()
        self._prompt_ratio: dict[str, float] = {}  # model -> most prompt tokens billed per token estimated
        # Connections and a semaphore belong to one event loop; Runner.run makes a new loop per run.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: HttpPool | None = None
        self._limit: asyncio.Semaphore | None = None

    def _prompt_tokens(self, request: LLMRequest) -> int:
        # The estimate scaled by the most the server has counted over it (its tokenizer may count more).
        return math.ceil(_prompt_estimate(request) * self._prompt_ratio.get(request.model, 1.0))

    def max_cost(self, request: LLMRequest) -> float:
        return self.prices.price(request.model).cost(self._prompt_tokens(request), request.max_tokens)

    def learns_prices(self, model: str) -> bool:
        return True  # any server may bill its own prices, even for a model the table calls free

    def observe_cost(self, model: str, input_tokens: int, output_tokens: int, cost: float) -> None:
        self.prices.observe(model, input_tokens, output_tokens, cost)

    def max_cost_unbilled(self, request: LLMRequest) -> float:
        return max(self.max_cost(request), self.prices.fallback.cost(self._prompt_tokens(request), request.max_tokens))

    def _session(self) -> tuple[HttpPool, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            headers = {"Authorization": f"Bearer {self.endpoint.api_key}"} if self.endpoint.api_key else {}
            # The semaphore caps calls in flight, so the pool never holds more connections than that.
            self._client = HttpPool(self.endpoint.base_url, headers=headers, connect_timeout=self.endpoint.connect_timeout,
                                    read_timeout=self.endpoint.read_timeout)
            self._limit, self._loop = asyncio.Semaphore(self.endpoint.max_concurrency), loop
        assert self._limit is not None
        return self._client, self._limit

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def body(self, request: LLMRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.endpoint.upstream_model(request.model),
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.json_schema is not None:
            schema = dict(request.json_schema)
            if self.structured_output == "ollama":
                body["format"] = schema
            elif self.structured_output == "json_object":
                body["response_format"] = {"type": "json_object", "schema": schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": request.schema_name or "answer", "schema": schema, "strict": False},
                }
        if self.endpoint.name == "openrouter":
            body["usage"] = {"include": True}  # OpenRouter then reports the call's cost in usage.cost
        return body

    async def complete(self, request: LLMRequest) -> LLMResponse:
        client, limit = self._session()
        async with limit:
            started = time.perf_counter()
            payload, tries = await self._post_with_retries(client, request)
            latency_ms = (time.perf_counter() - started) * 1000
        return dataclasses.replace(self._response(payload, request, latency_ms), tries=tries)

    async def _post_with_retries(self, client: HttpPool, request: LLMRequest) -> tuple[dict[str, Any], int]:
        """The answer's payload, and how many requests it took."""
        where = f"{self.name} ({request.model}, {request.purpose.task})"
        attempt = sent = 0
        while True:
            last = attempt == self.retry.max_retries
            body = self.body(request)
            sent += 1
            try:
                reply = await client.post_json("/chat/completions", body)
            except TransportError as exc:  # connect errors, timeouts, dropped connections
                problem, wait = f"{type(exc).__name__}", self.retry.backoff(attempt, self._rng)
            else:
                if reply.status_code != 200 and self._refuses_json_schema(body, reply):
                    logger.warning("%s turns json_schema down; sending schemas as json_object from now on", self.name)
                    self.structured_output = "json_object"
                    continue  # not a retry: the same call in a form this server takes
                if reply.status_code == 200:
                    try:
                        return reply.json(), sent
                    except ValueError:
                        problem, wait = "a response that is not JSON", self.retry.backoff(attempt, self._rng)
                elif reply.status_code in RETRY_AFTER_HEADER:
                    asked = retry_after_seconds(reply.headers.get("retry-after"))
                    problem = f"HTTP {reply.status_code}"
                    wait = max(asked or 0.0, self.retry.backoff(attempt, self._rng))
                elif reply.status_code in RETRY_WITH_BACKOFF:
                    problem, wait = f"HTTP {reply.status_code}", self.retry.backoff(attempt, self._rng)
                else:
                    raise ProviderRequestError(f"{where} refused the request: HTTP {reply.status_code}: {_error_text(reply)}")
            if last:
                raise ProviderUnavailable(f"{where} did not answer after {attempt + 1} tries: last {problem}")
            self.retries += 1
            attempt += 1
            logger.info("%s: %s, retrying in %.2fs", where, problem, wait)
            await asyncio.sleep(wait)

    def _refuses_json_schema(self, body: dict[str, Any], reply: HttpReply) -> bool:
        sent = body.get("response_format") or {}
        return sent.get("type") == "json_schema" and reply.status_code in (400, 422, 500) and "response_format" in _error_text(reply)

    def _response(self, payload: dict[str, Any], request: LLMRequest, latency_ms: float) -> LLMResponse:
        choices = payload.get("choices") or []
        message = (choices[0].get("message") or {}) if choices else {}
        text = message.get("content") or ""
        usage = payload.get("usage") or {}
        input_tokens = int(usage.get("prompt_tokens") or 0)
        output_tokens = int(usage.get("completion_tokens") or 0)
        if not usage:  # some local servers send no usage: estimate rather than book zero
            input_tokens = estimate_tokens(request.prompt_text)
            output_tokens = estimate_tokens(text) if text else 0
        else:
            ratio = input_tokens / _prompt_estimate(request)
            if ratio > self._prompt_ratio.get(request.model, 1.0):
                self._prompt_ratio[request.model] = ratio
        reported = usage.get("cost")
        cost = float(reported) if isinstance(reported, (int, float)) else self.prices.price(request.model).cost(input_tokens, output_tokens)
        return LLMResponse(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            model=request.model,
            provider=self.name,
            latency_ms=latency_ms,
        )


def _prompt_estimate(request: LLMRequest) -> int:
    return estimate_tokens(request.prompt_text) + 4 * len(request.messages)


def _error_text(reply: HttpReply) -> str:
    try:
        error = reply.json().get("error")
        text = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        text = reply.text
    return (text or "").strip()[:300]
