"""genai-prices' answers for the model names it lists, kept in a small file beside this module.

Importing genai-prices costs a run about 8 MB and 30 ms (its data, and an HTTP stack of its own for price
updates this project never asks for). For every "vendor/model" name the package lists (each provider's model
ids, and OpenRouter's own ids), `price_index.json` holds what `engine.llm.pricing.genai_price` and
`engine.token_budget.genai_context_length` answer: per-token prices and the context window. A name not in the
file, or a price that changes with the hour or on a date still to come, is asked of the package itself, and the file
is only used with the package version it was built from (read from the installed metadata's folder name,
without importing anything).

    python -m engine.llm.build_price_index      # rebuild it after upgrading genai-prices (make price-index)
"""

from __future__ import annotations

import importlib.util
import json
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


_building = False  # while the index is built (engine.llm.build_price_index), every answer comes from the package


def indexed(model: str) -> Entry | None:
    """What genai-prices says of `model` (lower case, as pricing asks), if the index holds it."""
    entry = None if _building else _entries().get(model)
    return None if entry is None else (entry[0], entry[1], entry[2])


def priced_models() -> list[str]:
    """Every "vendor/model" name the index prices per token, sorted: what a model picker offers."""
    return sorted(model for model, entry in _entries().items() if entry[0] is not None)
