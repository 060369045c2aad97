"""genai-prices' answers for the model names it lists, kept in a small file beside this module.

Importing genai-prices costs a run about 8 MB and 30 ms (its data, and an HTTP stack of its own for price
updates this project never asks for). For every "vendor/model" name the package lists (each provider's model
ids, and OpenRouter's own ids), `price_index.json` holds what `engine.llm.pricing.genai_price` and
`engine.token_budget.genai_context_length` answer: per-token prices and the context window. A name not in the
file, or a price that changes with the hour or on a date still to come, is asked of the package itself, and the file
is only used with the package version it was built from (read from the installed metadata's folder name,
without importing anything).

    python -m engine.llm.price_index      # rebuild it after upgrading genai-prices (make price-index)
"""

from __future__ import annotations

import importlib.util
import json
from datetime import date
from functools import lru_cache
from pathlib import Path

INDEX = Path(__file__).with_name("price_index.json")
Entry = tuple[float | None, float | None, int | None]  # input and output USD per million tokens, context window


def installed_version() -> str | None:
    """genai-prices' installed version, from its metadata folder's name (importing nothing)."""
    spec = importlib.util.find_spec("genai_prices")
    if spec is None or spec.origin is None:
        return None
    folders = sorted(Path(spec.origin).parent.parent.glob("genai_prices-*.dist-info"))
    return folders[-1].name.removeprefix("genai_prices-").removesuffix(".dist-info") if folders else None


@lru_cache(maxsize=1)
def _entries() -> dict[str, list]:
    try:
        index = json.loads(INDEX.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return index["models"] if index.get("genai_prices") == installed_version() else {}


_building = False  # while the index is built, every answer comes from the package


def indexed(model: str) -> Entry | None:
    """What genai-prices says of `model` (lower case, as pricing asks), if the index holds it."""
    entry = None if _building else _entries().get(model)
    return None if entry is None else (entry[0], entry[1], entry[2])


def build() -> dict:
    """The index, asked of the installed package through the same functions a run would use."""
    from genai_prices import Usage, __version__, calc_price, data
    from genai_prices.types import ModelPrice as Flat, StartDateConstraint

    today = date.today()

    def settled(prices) -> bool:
        """One price, or a list whose changes all began by today: what it costs now, it costs from now on."""
        return isinstance(prices, Flat) or all(
            c.constraint is None or (isinstance(c.constraint, StartDateConstraint) and c.constraint.start_date <= today)
            for c in prices)

    from engine.llm.pricing import genai_price
    from engine.token_budget import genai_context_length

    def always_the_same(name: str) -> bool:
        """Whether every listing a lookup of `name` may read has one price at any hour, from today on."""
        vendor, _, bare = name.rpartition("/")
        for ref, provider in ((bare, vendor), (name, "openrouter"), (bare, None)):
            try:
                found = calc_price(Usage(input_tokens=1, output_tokens=1), ref, provider_id=provider).model
            except LookupError:
                continue
            if not settled(found.prices):
                return False
        return True

    global _building
    _building = True
    try:
        return {"genai_prices": __version__, "models": _answers(data, always_the_same, genai_price, genai_context_length)}
    finally:
        _building = False


def _answers(data, always_the_same, genai_price, genai_context_length) -> dict[str, list]:
    names = {f"{p.id}/{m.id}".lower() for p in data.providers for m in p.models}
    names |= {m.id.lower() for p in data.providers if p.id == "openrouter" for m in p.models if "/" in m.id}
    models = {}
    for name in sorted(names):
        if not always_the_same(name):  # worked out at each run's start instead
            continue
        price, window = genai_price.__wrapped__(name), genai_context_length.__wrapped__(name)
        if price is None and window is None:
            continue
        models[name] = [price.input_per_mtok if price else None, price.output_per_mtok if price else None, window]
    return models


def main() -> int:
    index = build()
    INDEX.write_text(json.dumps(index, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
    print(f"{INDEX}: {len(index['models'])} models from genai-prices {index['genai_prices']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
