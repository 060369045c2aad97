"""A persistent response cache: the same request to the same provider is answered once and replayed free.

`CachingProvider` wraps any provider. The key covers everything that shapes the answer (provider, model,
messages, schema, sampling settings) plus an optional scope such as a run id, and deliberately leaves out
the call's purpose (actor, turn): identical prompts share one answer. A hit reports the stored tokens but
costs nothing and says `cached=True`, so the ledger shows what a replay saved. `max_cost` is 0 for a
cached request, so the credit-limit check never refuses a free replay.

`SqliteResponseCache` keeps entries in one SQLite file (WAL, busy timeout) that several processes may
share; `MemoryResponseCache` is the same thing in a dict, for tests and one-off runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.llm.provider import LearnsPrices, LLMProvider, LLMRequest, LLMResponse

logger = logging.getLogger(__name__)

# Bump when the key's inputs or the stored format change, so old entries are never misread.
KEY_VERSION = 1
# The response fields kept in the cache; `cached` is not one of them (it describes a replay, not an answer).
STORED_FIELDS = ("text", "data", "input_tokens", "output_tokens", "cost", "model", "provider", "latency_ms")
BUSY_TIMEOUT_SECONDS = 30.0


def _plain(value: Any) -> Any:
    """JSON fallback for the immutable containers requests may hold (a schema as a MappingProxyType)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot put {type(value).__name__} in a cache key or entry")


def _canonical(value: Any) -> str:
    # Sorted keys and fixed separators: equal requests give byte-equal text whatever the dict order.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)


def cache_key(provider: str, request: LLMRequest, *, scope: str | None = None) -> str:
    """The sha256 of a canonical JSON of what determines the answer. The purpose is left out on purpose."""
    payload = {
        "v": KEY_VERSION,
        "provider": provider,
        "model": request.model,
        "messages": [[message.role, message.content] for message in request.messages],
        "json_schema": request.json_schema,
        "schema_name": request.schema_name,
        # float() so 1 and 1.0 (the same temperature) give the same key.
        "temperature": float(request.temperature),
        "seed": request.seed,
        "max_tokens": request.max_tokens,
        "scope": scope,
    }
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()


def encode_response(response: LLMResponse) -> str:
    return _canonical({name: getattr(response, name) for name in STORED_FIELDS})


def decode_response(text: str) -> LLMResponse:
    raw = json.loads(text)
    return LLMResponse(**{name: raw[name] for name in STORED_FIELDS if name in raw})


@runtime_checkable
class ResponseCache(Protocol):
    def get(self, key: str) -> LLMResponse | None: ...

    def put(self, key: str, response: LLMResponse) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryResponseCache:
    """A dict of encoded responses. Encoding (not keeping the object) means a caller that mutates a
    returned `data` dict cannot change the cache, and memory and SQLite caches behave alike."""

    def __init__(self) -> None:
        self._entries: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> LLMResponse | None:
        entry = self._entries.get(key)
        return None if entry is None else decode_response(entry)

    def put(self, key: str, response: LLMResponse) -> None:
        self._entries[key] = encode_response(response)

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)


class SqliteResponseCache:
    """One SQLite file, shareable by processes. One connection per object, guarded by a lock, because
    callers may reach it from worker threads (asyncio.to_thread) as well as the event loop's thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit, so each write is its own short transaction and no other
        # process waits on a lock this one forgot to release. timeout= sets SQLite's busy timeout.
        self._db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            # WAL lets readers run while another process writes; NORMAL sync is durable enough under WAL
            # (a power cut can lose the last answers, never corrupt the file), and much faster.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, response TEXT NOT NULL, created_at REAL NOT NULL)"
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM responses").fetchone()[0]

    def get(self, key: str) -> LLMResponse | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else decode_response(row[0])

    def put(self, key: str, response: LLMResponse) -> None:
        entry = encode_response(response)  # outside the lock: a bad value fails before touching the file
        with self._lock:
            # REPLACE: two processes that raced on the same miss both paid; keeping either answer is fine.
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, response, created_at) VALUES (?, ?, ?)", (key, entry, time.time())
            )

    def delete(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM responses WHERE key = ?", (key,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CachingProvider:
    """Answers from `cache` when it can, else asks `inner` and keeps its answer. `enabled=False` turns
    the cache off entirely (no reads, no writes), so one code path serves cached and uncached runs."""

    def __init__(
        self, inner: LLMProvider, cache: ResponseCache, *, scope: str | None = None, enabled: bool = True
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.scope = scope
        self.enabled = enabled

    @property
    def name(self) -> str:
        return self.inner.name

    def key(self, request: LLMRequest) -> str:
        return cache_key(self.inner.name, request, scope=self.scope)

    def max_cost(self, request: LLMRequest) -> float:
        if self.enabled and self.cache.get(self.key(request)) is not None:
            return 0.0
        return self.inner.max_cost(request)

    def learns_prices(self, model: str) -> bool:
        return isinstance(self.inner, LearnsPrices) and self.inner.learns_prices(model)

    def observe_cost(self, model: str, input_tokens: int, output_tokens: int, cost: float) -> None:
        if isinstance(self.inner, LearnsPrices):
            self.inner.observe_cost(model, input_tokens, output_tokens, cost)

    def max_cost_unbilled(self, request: LLMRequest) -> float:
        if self.enabled and self.cache.get(self.key(request)) is not None:
            return 0.0  # answered from the cache: free
        if isinstance(self.inner, LearnsPrices):
            return self.inner.max_cost_unbilled(request)
        return self.inner.max_cost(request)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        if not self.enabled:
            return await self.inner.complete(request)
        key = self.key(request)
        stored = self.cache.get(key)
        if stored is not None:
            return dataclasses.replace(stored, cached=True, cost=0.0, latency_ms=0.0, tries=0)
        # An exception propagates before the put: failures are never cached, so a retry asks again.
        response = await self.inner.complete(request)
        try:
            self.cache.put(key, response)
        except (sqlite3.Error, TypeError, ValueError) as error:
            # The answer is already paid for; losing it because the cache failed would be worse than
            # not caching it. The next identical request simply misses.
            logger.warning("response cache: could not store an answer (%s)", error)
        return response

    def forget(self, request: LLMRequest) -> None:
        """Drop the answer kept for `request`: it could not be used (broken JSON, the wrong shape), and a
        retry or a resume must ask the model again rather than be handed the same bad answer for ever."""
        if self.enabled:
            try:
                self.cache.delete(self.key(request))
            except sqlite3.Error as error:
                logger.warning("response cache: could not drop an unusable answer (%s)", error)
