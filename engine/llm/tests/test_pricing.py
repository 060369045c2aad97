"""Pricing: genai-prices for known models, free local models, a high fallback for unknown ones, user tables."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from engine.llm.pricing import FALLBACK_PRICE, ModelPrice, PriceBook, genai_price


@pytest.fixture
def book() -> PriceBook:
    return PriceBook()


def test_cost_is_per_million_tokens():
    price = ModelPrice(2.0, 8.0, "price table")
    assert price.cost(1_000_000, 0) == pytest.approx(2.0)
    assert price.cost(0, 1_000_000) == pytest.approx(8.0)
    assert price.cost(1500, 500) == pytest.approx((1500 * 2.0 + 500 * 8.0) / 1e6)
    assert price.cost(0, 0) == 0


@pytest.mark.parametrize(
    "model",
    [
        "openai/gpt-4o-mini",
        "openai/gpt-4o",
        "anthropic/claude-3.5-sonnet",
        "anthropic/claude-3-5-sonnet-20241022",
        "google/gemini-2.0-flash-001",
        "meta-llama/llama-3.3-70b-instruct",  # only OpenRouter lists it
    ],
)
def test_known_models_have_real_prices(book, model):
    price = book.lookup(model)
    assert price is not None and price.source == "genai-prices"
    assert price.input_per_mtok > 0 and price.output_per_mtok > 0
    assert book.is_known(model)


def test_prices_are_plausible(book):
    mini, full = book.price("openai/gpt-4o-mini"), book.price("openai/gpt-4o")
    assert mini.cost(1000, 1000) < full.cost(1000, 1000)
    assert mini.input_per_mtok == pytest.approx(0.15) and mini.output_per_mtok == pytest.approx(0.6)
    # The two spellings of Claude 3.5 Sonnet are the same model at the same price.
    assert book.price("anthropic/claude-3.5-sonnet") == book.price("anthropic/claude-3-5-sonnet-20241022")


def test_openrouter_variants_are_priced_as_the_base_model(book):
    assert book.price("openai/gpt-4o:nitro") == book.price("openai/gpt-4o")


@pytest.mark.parametrize("model", ["ollama/llama3.1:8b", "local/whatever", "offline", "offline/test", "x/y:free"])
def test_local_offline_and_free_models_cost_nothing(book, model):
    price = book.price(model)
    assert price == ModelPrice(0.0, 0.0, "free")
    assert book.is_known(model)
    assert price.cost(10_000, 10_000) == 0


def test_unknown_models_get_the_conservative_fallback(book):
    assert book.lookup("acme/never-heard-of-it") is None
    assert not book.is_known("acme/never-heard-of-it")
    price = book.price("acme/never-heard-of-it")
    assert price == FALLBACK_PRICE and price.source == "assumed"
    assert price.cost(1000, 1000) > 0
    # Dearer than any common model, so a credit limit is never under-reserved for it.
    assert price.cost(1000, 1000) >= book.price("openai/gpt-4o").cost(1000, 1000)


def test_a_custom_fallback_is_used(book):
    mine = ModelPrice(1.0, 2.0, "assumed")
    assert PriceBook(fallback=mine).price("acme/never-heard-of-it") == mine


def test_the_user_table_overrides_and_extends_genai_prices():
    book = PriceBook(
        {
            "openai/gpt-4o-mini": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            "Acme/Never-Heard-Of-It": {"input_per_mtok": 0.5, "output_per_mtok": 0.25},
            "local/gpu-box": ModelPrice(0.01, 0.02, "price table"),
        }
    )
    assert book.price("openai/gpt-4o-mini") == ModelPrice(1.0, 2.0, "price table")
    assert book.price("acme/never-heard-of-it") == ModelPrice(0.5, 0.25, "price table")
    assert book.is_known("acme/never-heard-of-it")
    assert book.price("local/gpu-box").input_per_mtok == 0.01  # the table beats the free rule too
    assert book.price("openai/gpt-4o").source == "genai-prices"  # models not in the table are untouched


@pytest.mark.parametrize(
    "entry",
    [{"input_per_mtok": 1.0}, {"input_per_mtok": "lots", "output_per_mtok": 1.0}, {"input_per_mtok": -1, "output_per_mtok": 1}],
)
def test_bad_table_entries_are_refused(entry):
    with pytest.raises(ValueError, match="acme/x"):
        PriceBook({"acme/x": entry})


def test_from_environment_without_a_table(book):
    assert PriceBook.from_environment({}).price("openai/gpt-4o") == book.price("openai/gpt-4o")


def test_from_environment_reads_a_json_table(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"acme/model": {"input_per_mtok": 3, "output_per_mtok": 4}}))
    book = PriceBook.from_environment({"SCENARIOLAB_PRICE_TABLE": str(path)})
    assert book.price("acme/model") == ModelPrice(3.0, 4.0, "price table")


def test_from_environment_reads_a_yaml_table(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(
        "openai/gpt-4o:\n  input_per_mtok: 9\n  output_per_mtok: 10\n"
        "acme/model:\n  input_per_mtok: 0.1\n  output_per_mtok: 0.2\n"
    )
    book = PriceBook.from_environment({"SCENARIOLAB_PRICE_TABLE": str(path)})
    assert book.price("openai/gpt-4o") == ModelPrice(9.0, 10.0, "price table")
    assert book.price("acme/model") == ModelPrice(0.1, 0.2, "price table")


def test_from_environment_reports_a_bad_table(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        PriceBook.from_environment({"SCENARIOLAB_PRICE_TABLE": str(tmp_path / "missing.json")})
    (tmp_path / "list.yaml").write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="mapping"):
        PriceBook.from_environment({"SCENARIOLAB_PRICE_TABLE": str(tmp_path / "list.yaml")})


def test_pricing_never_touches_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pricing tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    genai_price.cache_clear()  # make the lookups below really reach genai-prices
    book = PriceBook()
    assert book.price("openai/gpt-4o-mini").source == "genai-prices"
    assert book.price("anthropic/claude-3.5-sonnet").source == "genai-prices"
    assert book.lookup("acme/never-heard-of-it") is None
    # genai-prices' auto-updater is a background thread; it must never have been started.
    assert not any(thread.name.startswith("genai_prices") for thread in threading.enumerate())


def test_a_billed_cost_above_the_table_raises_each_rate_to_cover_any_split_of_the_bill():
    book = PriceBook({"vendor/model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}})
    book.observe("vendor/model", 1000, 100, 0.0012)  # the table's own price: nothing learnt
    assert book.price("vendor/model").source == "price table"
    book.observe("vendor/model", 1000, 100, 0.0036)  # three times the table
    raised = book.price("vendor/model")
    assert raised.source == "reported"
    # The bill may have been all input (3.6 per million) or all output (36 per million): both are covered.
    assert raised.input_per_mtok == pytest.approx(3.6) and raised.output_per_mtok == pytest.approx(36)
    book.observe("vendor/model", 1000, 100, 0.0012)  # a cheaper bill later never lowers it
    assert book.price("vendor/model") == raised


def test_a_flat_rate_server_is_never_under_projected_for_a_prompt_heavy_call():
    """Flat $5 per million tokens against a table of 0.15 / 0.60: scaling the table's rates by one factor
    would leave the input rate too low for a call that is nearly all prompt."""
    book = PriceBook({"cheap/model": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}})
    book.observe("cheap/model", 3000, 200, 3200 * 5e-6)
    assert book.price("cheap/model").cost(3000, 20) >= 3020 * 5e-6


def test_learnt_rates_stop_at_the_fallback_rate():
    book = PriceBook({"vendor/model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}})
    book.observe("vendor/model", 5000, 3, 0.01)  # 3 output tokens: "output could be 3,333 per million"
    assert book.price("vendor/model").output_per_mtok == FALLBACK_PRICE.output_per_mtok


def test_a_model_free_in_the_book_but_billed_is_priced_above_any_split_of_the_bill():
    book = PriceBook()
    book.observe("ollama/llama3", 2000, 500, 0.001)
    price = book.price("ollama/llama3")
    # Whatever the real rates, the bill is covered for calls of either kind of token.
    assert price.cost(2000, 0) >= 0.001 and price.cost(0, 500) >= 0.001


def test_list_prices_project_as_a_servers_client_does_so_an_offline_what_if_is_the_real_estimate():
    from engine.estimate import estimate_run_cost
    from engine.llm.openai_compatible import Endpoint, OpenAICompatibleProvider
    from engine.llm.pricing import ListPrices
    from engine.scenario.folder import Scenario

    summit = Scenario.load(Path(__file__).resolve().parents[3] / "scenarios" / "library" / "ai-summit")
    book = PriceBook()
    what_if = estimate_run_cost(summit, ListPrices(book), turns=2)
    real = estimate_run_cost(summit, OpenAICompatibleProvider(Endpoint("local", "http://127.0.0.1:9/v1"), prices=book), turns=2)
    assert what_if.cost == real.cost and what_if.cost.low > 0
    assert what_if.by_actor() == real.by_actor()
