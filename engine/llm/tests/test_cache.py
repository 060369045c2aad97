"""The response cache: stable keys, free replays, persistence across objects and processes, and a whole
engine run replayed from the cache with no provider calls at all."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import engine
from engine.llm.cache import CachingProvider, MemoryResponseCache, ResponseCache, SqliteResponseCache, cache_key
from engine.llm.provider import CallPurpose, LLMError, LLMRequest, LLMResponse, Message
from engine.scenario.folder import Scenario
from engine.testing.providers import FixedCostProvider

REPO_ROOT = Path(__file__).resolve().parents[3]
SUMMIT = REPO_ROOT / "scenarios" / "library" / "ai-summit"


def request(**changes) -> LLMRequest:
    base = LLMRequest(
        messages=(Message("system", "You are the city."), Message("user", "## Current world state\n\nLow lake.")),
        model="test/model",
        purpose=CallPurpose(task="decision", phase="decision", turn=1, actor="city"),
        json_schema={"type": "object", "properties": {"action": {"type": "string"}}},
        schema_name="Decision",
        temperature=0.7,
        seed=7,
        max_tokens=800,
    )
    return dataclasses.replace(base, **changes)


class CountingProvider:
    """Counts calls and answers each with distinct text, so a replay is told apart from a fresh answer."""

    name = "counting"

    def __init__(self, *, cost: float = 0.25, fail_first: int = 0) -> None:
        self.calls = 0
        self.cost = cost
        self.fail_first = fail_first

    def max_cost(self, request: LLMRequest) -> float:
        return 1.5

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise LLMError(f"failure on call {self.calls}")
        return LLMResponse(
            text=f"answer {self.calls}",
            data={"action": f"act {self.calls}", "nested": [1, {"x": None}]},
            input_tokens=100 + self.calls,
            output_tokens=20,
            cost=self.cost,
            model=request.model,
            provider=self.name,
            latency_ms=123.0,
        )


class RefusingProvider:
    """Raises on every call: a replay that reaches it is not a replay."""

    def __init__(self, name: str) -> None:
        self.name = name

    def max_cost(self, request: LLMRequest) -> float:
        return 1.0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise AssertionError(f"provider called for {request.purpose.task} ({request.purpose.actor}, turn {request.purpose.turn})")


# ---- keys -------------------------------------------------------------------------------------------------
def test_the_key_is_stable_and_a_sha256():
    key = cache_key("p", request())
    assert key == cache_key("p", request())
    assert len(key) == 64 and int(key, 16) >= 0
    # Equal schemas in another key order, or an int temperature equal to the float, are the same request.
    reordered = request(json_schema={"properties": {"action": {"type": "string"}}, "type": "object"})
    assert cache_key("p", reordered) == key
    assert cache_key("p", request(temperature=1)) == cache_key("p", request(temperature=1.0))


@pytest.mark.parametrize(
    "changes",
    [
        {"model": "other/model"},
        {"messages": (Message("system", "You are the city."), Message("user", "## Current world state\n\nHigh lake."))},
        {"messages": (Message("user", "You are the city."), Message("user", "## Current world state\n\nLow lake."))},
        {"messages": (Message("system", "You are the city."),)},
        {"json_schema": {"type": "object"}},
        {"json_schema": None},
        {"schema_name": "Other"},
        {"temperature": 0.2},
        {"seed": 8},
        {"seed": None},
        {"max_tokens": 801},
    ],
)
def test_what_shapes_the_answer_changes_the_key(changes):
    assert cache_key("p", request(**changes)) != cache_key("p", request())


def test_provider_and_scope_change_the_key():
    key = cache_key("p", request())
    assert cache_key("q", request()) != key
    assert cache_key("p", request(), scope="run-1") != key
    assert cache_key("p", request(), scope="run-1") != cache_key("p", request(), scope="run-2")
    assert cache_key("p", request(), scope=None) == key


def test_the_purpose_does_not_change_the_key():
    other = CallPurpose(task="reply", phase="communication", turn=4, actor="growers", hints={"to": "city"})
    assert cache_key("p", request(purpose=other)) == cache_key("p", request())


# ---- hits and misses ----------------------------------------------------------------------------------------
@pytest.fixture(params=["memory", "sqlite"])
def cache(request, tmp_path) -> Iterator[ResponseCache]:
    if request.param == "memory":
        yield MemoryResponseCache()
        return
    store = SqliteResponseCache(tmp_path / "cache.sqlite3")
    yield store
    store.close()


async def test_a_miss_calls_through_and_a_hit_replays_free(cache):
    inner = CountingProvider()
    provider = CachingProvider(inner, cache)
    assert provider.name == "counting"
    assert isinstance(cache, ResponseCache)

    assert provider.max_cost(request()) == 1.5  # not cached yet: the inner provider's worst case
    first = await provider.complete(request())
    assert inner.calls == 1
    assert (first.text, first.cost, first.cached, first.latency_ms) == ("answer 1", 0.25, False, 123.0)

    assert provider.max_cost(request()) == 0.0  # cached: the credit check must not refuse a free replay
    again = await provider.complete(request())
    assert inner.calls == 1
    assert again == dataclasses.replace(first, cached=True, cost=0.0, latency_ms=0.0, tries=0)
    assert (again.input_tokens, again.output_tokens) == (101, 20)  # tokens as stored

    # Same prompt for another actor and turn: the same answer. A different prompt: a new call.
    other_purpose = CallPurpose(task="decision", phase="decision", turn=3, actor="growers")
    assert (await provider.complete(request(purpose=other_purpose))).text == "answer 1"
    assert (await provider.complete(request(seed=99))).text == "answer 2"
    assert inner.calls == 2


async def test_the_cache_stores_original_cost_and_is_not_changed_by_callers(cache):
    provider = CachingProvider(CountingProvider(cost=0.4), cache)
    first = await provider.complete(request())
    first.data["action"] = "mutated by a caller"
    stored = cache.get(cache_key("counting", request()))
    assert stored is not None
    assert (stored.cost, stored.cached, stored.data["action"]) == (0.4, False, "act 1")


async def test_a_miss_returns_the_inner_response_unchanged():
    response = LLMResponse(text="t", input_tokens=1, output_tokens=2, cost=0.3, model="m", provider="counting")

    class Fixed(CountingProvider):
        async def complete(self, request: LLMRequest) -> LLMResponse:
            self.calls += 1
            return response

    assert await CachingProvider(Fixed(), MemoryResponseCache()).complete(request()) is response


async def test_failures_are_never_cached(cache):
    inner = CountingProvider(fail_first=1)
    provider = CachingProvider(inner, cache)
    with pytest.raises(LLMError):
        await provider.complete(request())
    assert cache.get(cache_key("counting", request())) is None
    assert provider.max_cost(request()) == 1.5
    assert (await provider.complete(request())).text == "answer 2"
    assert (await provider.complete(request())).cached


async def test_scopes_do_not_share_answers():
    cache, inner = MemoryResponseCache(), CountingProvider()
    assert (await CachingProvider(inner, cache, scope="run-1").complete(request())).text == "answer 1"
    assert (await CachingProvider(inner, cache, scope="run-2").complete(request())).text == "answer 2"
    assert (await CachingProvider(inner, cache, scope="run-1").complete(request())).cached
    assert inner.calls == 2


async def test_a_disabled_cache_always_calls_through(cache):
    inner = CountingProvider()
    await CachingProvider(inner, cache).complete(request())  # an entry exists...
    disabled = CachingProvider(inner, cache, enabled=False)
    assert disabled.max_cost(request()) == 1.5  # ...but a disabled cache neither reads it
    answers = [await disabled.complete(request()) for _ in range(2)]
    assert [a.text for a in answers] == ["answer 2", "answer 3"]
    assert not any(a.cached for a in answers)
    assert cache.get(cache_key("counting", request())).text == "answer 1"  # ...nor writes


async def test_an_answer_the_cache_cannot_store_is_still_returned(caplog):
    class Unstorable(CountingProvider):
        async def complete(self, request: LLMRequest) -> LLMResponse:
            return dataclasses.replace(await super().complete(request), data={"when": object()})

    cache = MemoryResponseCache()
    response = await CachingProvider(Unstorable(), cache).complete(request())
    assert response.text == "answer 1"
    assert len(cache) == 0
    assert "could not store" in caplog.text


# ---- persistence ---------------------------------------------------------------------------------------------
async def test_entries_persist_across_cache_objects_on_one_file(tmp_path):
    path = tmp_path / "not" / "yet" / "there" / "cache.sqlite3"  # the directory is created
    with SqliteResponseCache(path) as first_cache:
        original = await CachingProvider(CountingProvider(), first_cache).complete(request())
    assert path.exists()

    inner = CountingProvider()
    with SqliteResponseCache(str(path)) as second_cache:
        assert second_cache.get(cache_key("counting", request())) == original
        replay = await CachingProvider(inner, second_cache).complete(request())
        assert inner.calls == 0
        assert replay == dataclasses.replace(original, cached=True, cost=0.0, latency_ms=0.0, tries=0)
        assert replay.data == {"action": "act 1", "nested": [1, {"x": None}]}
        assert second_cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


WRITER = textwrap.dedent(
    """
    import sys
    from engine.llm.cache import SqliteResponseCache
    from engine.llm.provider import LLMResponse

    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = SqliteResponseCache(path)
    for i in range(count):
        cache.put(f"{name}-{i}", LLMResponse(text=f"{name} {i}", input_tokens=i, output_tokens=1, cost=0.01,
                                             model="m", provider=name))
        cache.put("shared", LLMResponse(text=name, input_tokens=0, output_tokens=0, cost=0.0, model="m", provider=name))
        assert cache.get(f"{name}-{i}").text == f"{name} {i}"
    cache.close()
    """
)


def test_processes_can_share_one_file(tmp_path):
    path = tmp_path / "shared" / "cache.sqlite3"
    count = 150
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(count)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b", "c")
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
    with SqliteResponseCache(path) as cache:
        assert len(cache) == 3 * count + 1
        assert cache.get("b-149").text == "b 149"
        assert cache.get("shared").text in {"a", "b", "c"}


# ---- a whole run ---------------------------------------------------------------------------------------------
def without_costs(state: engine.ScenarioState) -> dict:
    data = state.to_dict(stamps=False)
    data.pop("costs")
    return data


def test_a_run_replayed_from_the_cache_is_identical_and_free(tmp_path):
    scenario = Scenario.load(SUMMIT)
    with SqliteResponseCache(tmp_path / "cache.sqlite3") as cache:
        paid = FixedCostProvider(scenario, cost_per_call=0.01)
        first = engine.Runner(provider=CachingProvider(paid, cache)).run(scenario, max_turns=2, run_id="r")
        assert first.status is engine.ScenarioStatus.COMPLETED
        assert paid.calls > 0 and first.total_cost > 0
        assert not any(record.cached for record in first.costs)

        # The replay's provider shares the paid one's name (the name is part of the key) but must never be called.
        refusing = RefusingProvider(paid.name)
        # A limit below one paid call proves max_cost reports 0 for every cached call.
        second = engine.Runner(provider=CachingProvider(refusing, cache)).run(
            scenario, max_turns=2, run_id="r", credit_limit=0.001
        )

    assert second.status is engine.ScenarioStatus.COMPLETED, second.error or second.halt_reason
    assert without_costs(second) == without_costs(first)
    assert second.total_cost == 0
    assert len(second.costs) == len(first.costs)
    assert second.costs and all(record.cached for record in second.costs)
    assert second.total_tokens == first.total_tokens


async def test_an_unusable_answer_is_never_replayed_from_the_cache():
    """A model that answers garbage for a while: the first attempt at the phase uses up its re-asks on
    garbage; the retry must ask the model again, not be handed the same garbage from the cache."""
    from engine import ErrorPolicy, Runner, Scenario
    from engine.state import ScenarioStatus
    from engine.testing.providers import FailingProvider

    summit = Scenario.load(Path(__file__).resolve().parents[3] / "scenarios" / "library" / "ai-summit")
    bad_until = {"calls": 0}

    def garbage_at_first(request, _n):
        if request.purpose.task != "decision" or request.purpose.actor != summit.actors[0].short_name:
            return False
        bad_until["calls"] += 1
        return bad_until["calls"] <= 3  # the first ask and both re-asks of the first attempt

    inner = FailingProvider(summit, fails=garbage_at_first, garbage="not json at all")
    cached = CachingProvider(inner, MemoryResponseCache())
    state = await Runner(provider=cached, error_policy=ErrorPolicy(max_attempts=2, retry_delay=0)).run_async(summit, max_turns=1)
    assert state.status is ScenarioStatus.COMPLETED, state.halt_reason or state.error
    assert bad_until["calls"] == 4  # the retry reached the model
