"""Build engine/llm/price_index.json from the installed genai-prices: `python -m engine.llm.build_price_index`
(make price-index). Each answer is asked through the same functions a run uses, with the index set aside."""

from __future__ import annotations

import json
from datetime import date

from engine.llm import price_index
from engine.llm.pricing import genai_price
from engine.token_budget import genai_context_length


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

    price_index._building = True
    try:
        return {"genai_prices": __version__, "models": _answers(data, always_the_same, genai_price, genai_context_length)}
    finally:
        price_index._building = False


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
    price_index.INDEX.write_text(json.dumps(index, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
    print(f"{price_index.INDEX}: {len(index['models'])} models from genai-prices {index['genai_prices']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
