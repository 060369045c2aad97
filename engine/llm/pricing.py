"""What a model call costs: USD per million input and output tokens, for any model string a user writes.

Prices come from, in order: the user's own price table (SCENARIOLAB_PRICE_TABLE), the free rules (local
and offline models), and the `genai-prices` package's bundled data. A model none of them knows is priced
at FALLBACK_PRICE, a deliberately high rate, so a credit limit still holds for it.

`genai-prices` is only ever read from the snapshot bundled in the installed package: its `UpdatePrices`
background fetcher is never started here, so pricing needs no network and a run's prices do not change
under it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import yaml

from engine.llm.price_index import indexed
from engine.llm.provider import LLMError, LLMRequest, LLMResponse, estimate_tokens

PRICE_TABLE_VARIABLE = "SCENARIOLAB_PRICE_TABLE"
FREE_PREFIXES = ("ollama/", "local/", "offline")


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: float  # USD per million input tokens
    output_per_mtok: float  # USD per million output tokens
    source: str  # "genai-prices", "price table", "free", "assumed"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


# Conservative (a top-tier model's list price): an unknown paid model is never priced at 0.
FALLBACK_PRICE = ModelPrice(15.0, 75.0, "assumed")
FREE_PRICE = ModelPrice(0.0, 0.0, "free")


def is_free(model: str) -> bool:
    return model.startswith(FREE_PREFIXES) or model.endswith(":free")


def _rate(value: object) -> float | None:
    # Tiered prices (e.g. dearer above 200k prompt tokens) carry a `base`: the rate for prompts our size.
    value = getattr(value, "base", value)
    return float(value) if isinstance(value, (Decimal, int, float)) else None


def _find(model_ref: str, provider_id: str | None) -> ModelPrice | None:
    """One genai-prices lookup; the highest rate across today's hours (some vendors discount off-peak)."""
    # Imported at the first lookup: its data is 2.8 MB and it brings an HTTP stack of its own, which a run of
    # free, local or priced-by-table models never needs.
    from genai_prices import Usage, calc_price

    try:
        info = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref, provider_id=provider_id).model
    except LookupError:
        return None
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rates = [info.get_prices(midnight + timedelta(hours=h)) for h in range(24)]
    inputs = [r for p in rates if (r := _rate(p.input_mtok)) is not None]
    outputs = [r for p in rates if (r := _rate(p.output_mtok)) is not None]
    if not inputs and not outputs:  # priced per request or per image, not per token: not ours to guess
        return None
    return ModelPrice(max(inputs, default=0.0), max(outputs, default=0.0), "genai-prices")


@lru_cache(maxsize=None)  # on every call's path; the bundled data never changes within a process
def genai_price(model: str) -> ModelPrice | None:
    """The price genai-prices gives a "vendor/model" string, or None if it does not know it."""
    model = model.strip().lower()
    # OpenRouter routing variants (":nitro", ":floor", ":online") are priced as the base model.
    base = model.rsplit(":", 1)[0] if ":" in model.rpartition("/")[2] else model
    if (entry := indexed(base)) is not None:  # the package's answer, kept (engine.llm.price_index)
        return None if entry[0] is None else ModelPrice(entry[0], entry[1] or 0.0, "genai-prices")
    vendor, _, name = base.rpartition("/")
    found = [
        price
        for price in (
            _find(name, vendor) if vendor else None,  # the vendor's own list price
            _find(base, "openrouter") if vendor else None,  # OpenRouter's "vendor/model" naming
        )
        if price is not None
    ]
    if found:
        # A model may be routed to its vendor or through OpenRouter, whose listings sometimes differ (hosted
        # open models); the higher keeps credit-limit reservations from ever under-counting.
        return ModelPrice(max(p.input_per_mtok for p in found), max(p.output_per_mtok for p in found), "genai-prices")
    # Last, genai-prices' own guess from the bare name (e.g. "azure/gpt-4o" is still gpt-4o).
    return _find(name, None)


def _entry(model: str, value: Mapping[str, float] | ModelPrice) -> ModelPrice:
    if isinstance(value, ModelPrice):
        return value
    try:
        price = ModelPrice(float(value["input_per_mtok"]), float(value["output_per_mtok"]), "price table")
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"price table entry for {model!r} needs numeric input_per_mtok and output_per_mtok") from error
    if price.input_per_mtok < 0 or price.output_per_mtok < 0:
        raise ValueError(f"price table entry for {model!r} has a negative price")
    return price


class PriceBook:
    """Prices models: the user's table first, then the free rules, then genai-prices."""

    def __init__(
        self,
        table: Mapping[str, Mapping[str, float] | ModelPrice] | None = None,
        *,
        fallback: ModelPrice = FALLBACK_PRICE,
    ) -> None:
        # Keys are matched case-insensitively: "OpenAI/GPT-4o" and "openai/gpt-4o" are the same model.
        self.table = {model.strip().lower(): _entry(model, value) for model, value in (table or {}).items()}
        self.fallback = fallback
        self._cache: dict[str, ModelPrice | None] = {}

    def lookup(self, model: str) -> ModelPrice | None:
        """The model's price, or None if nobody knows it."""
        if model in self._cache:
            return self._cache[model]
        key = model.strip().lower()
        if key in self.table:
            price: ModelPrice | None = self.table[key]
        elif is_free(key):
            price = FREE_PRICE
        else:
            price = genai_price(key)
        self._cache[model] = price
        return price

    def price(self, model: str) -> ModelPrice:
        """The model's price, or the fallback (source "assumed") when it is unknown."""
        return self.lookup(model) or self.fallback

    def observe(self, model: str, input_tokens: int, output_tokens: int, cost: float) -> None:
        """A provider billed `cost` for a call of `model`. If that is more than this book's price for those
        tokens (a surcharge, a price rise, a dearer route, a flat rate), the model is priced higher from now on,
        so credit-limit projections made with this book keep covering what the provider charges.

        The bill does not say how it splits between input and output, so each rate is raised to the most it
        could be: the whole bill over that kind of token, capped at the fallback (top-tier) rate. Whatever the
        split, a server billing at most the fallback rate is then never under-projected, and a price is never
        lowered by a later, cheaper bill."""
        if cost <= 0 or input_tokens < 0 or output_tokens < 0 or input_tokens + output_tokens == 0:
            return
        price = self.price(model)
        if cost <= price.cost(input_tokens, output_tokens) * (1 + 1e-9):
            return
        bound_in = min(cost * 1_000_000 / input_tokens, self.fallback.input_per_mtok) if input_tokens else 0.0
        bound_out = min(cost * 1_000_000 / output_tokens, self.fallback.output_per_mtok) if output_tokens else 0.0
        raised = ModelPrice(max(price.input_per_mtok, bound_in), max(price.output_per_mtok, bound_out), "reported")
        covered = raised.cost(input_tokens, output_tokens)
        if cost > covered:  # dearer than the fallback rate too: at least this bill again for a call like it
            factor = cost / covered
            raised = ModelPrice(raised.input_per_mtok * factor, raised.output_per_mtok * factor, "reported")
        self._cache[model] = raised

    def is_known(self, model: str) -> bool:
        return self.lookup(model) is not None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> PriceBook:
        """A book with the table named by SCENARIOLAB_PRICE_TABLE (a JSON or YAML file), if it is set."""
        env = os.environ if env is None else env
        path = env.get(PRICE_TABLE_VARIABLE, "").strip()
        if not path:
            return cls()
        file = Path(path).expanduser()
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"{PRICE_TABLE_VARIABLE}={path!r}: cannot read the price table: {error}") from error
        table = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
        if table is None:  # an empty YAML file
            table = {}
        if not isinstance(table, Mapping):
            raise ValueError(f"{PRICE_TABLE_VARIABLE}={path!r}: expected a mapping of model -> prices")
        return cls(table)


class ListPrices:
    """Prices requests at their models' list prices (the price data, no key, no server): what a run would cost
    if its models were called, for an offline run or a model whose key is not set here. It answers nothing."""

    name = "list prices"

    def __init__(self, prices: PriceBook | None = None) -> None:
        self.prices = prices or PriceBook.from_environment()

    def max_cost(self, request: LLMRequest) -> float:
        """As a server's client projects it before the call: the prompt as sent, the answer at `max_tokens`."""
        prompt = estimate_tokens(request.prompt_text) + 4 * len(request.messages)
        return self.prices.price(request.model).cost(prompt, request.max_tokens)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise LLMError("list prices price calls; they answer none: choose a provider to play the run")
