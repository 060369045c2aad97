"""How much text a model call may carry: a model's context length, a cautious token count, a request's budget.

A model's context length comes from, in order: SCENARIOLAB_CONTEXT_LENGTHS (what the user says their models
or servers take), the `genai-prices` package's bundled model data (it records context windows for many hosted
models), a small table of well-known families, and DEFAULT_CONTEXT_LENGTH. A scenario's
`features.context_management.max_context_tokens` then caps it for every model of that scenario: it says how
much of a model's context the scenario wants to use, never more than the model has.

No tokenizer is downloaded (runs work offline, and models of many vendors meet in one run), so tokens are
estimated from characters, on the high side: a prompt that fits by this count fits by the model's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal


from engine.llm.price_index import indexed
from engine.llm.provider import LLMRequest
from engine.scenario.folder import Scenario

CONTEXT_LENGTHS_VARIABLE = "SCENARIOLAB_CONTEXT_LENGTHS"
# An unknown model is assumed small: a prompt made too short loses old detail, one too long fails the call.
DEFAULT_CONTEXT_LENGTH = 8_192

# Servers whose context is what they were started with, whatever the model could take: Ollama's default
# `num_ctx` in recent versions, and the context `engine.llm.local_model` starts llama.cpp with.
SERVER_CONTEXT_LENGTHS = (("ollama/", 4_096), ("local/", 8_192))

# Families, matched in order against the model's name without its vendor, lower-case, without "-" or "_"
# (so "meta-llama/Llama-3.1-8B" and "ollama/llama3.1:8b" both read "llama3.1..."). The most specific first.
KNOWN_CONTEXT_LENGTHS: tuple[tuple[str, int], ...] = (
    ("gpt4.1", 1_047_576),
    ("gpt4o", 128_000),
    ("gpt4turbo", 128_000),
    ("gpt4", 8_192),
    ("gpt3.5", 16_385),
    ("claude", 200_000),
    ("gemini", 1_048_576),
    ("llama3.1", 131_072),
    ("llama3.2", 131_072),
    ("llama3.3", 131_072),
    ("llama4", 131_072),
    ("llama3", 8_192),
    ("mistral", 32_768),
    ("mixtral", 32_768),
    ("qwen", 32_768),
    ("gemma3", 131_072),
    ("gemma", 8_192),
    ("deepseek", 65_536),
)

# Characters per token for ASCII text. Byte-pair tokenizers give about four for English prose; Markdown,
# names, numbers and JSON come out nearer three, so three over-counts typical prompts a little and
# under-counts almost none. Other characters (accents, other scripts) are counted a token each, since
# a tokenizer may spend one or more on each of them.
CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD_TOKENS = 4  # a chat template's role markers and separators, per message


def estimate_tokens(text: str) -> int:
    """A token count for `text` that errs high (see CHARS_PER_TOKEN)."""
    if not text:
        return 0
    other = 0 if text.isascii() else len(text) - len(text.encode("ascii", "ignore"))
    return -(-(len(text) - other) // CHARS_PER_TOKEN) + other


def shorten(text: str, tokens: int, *, keep: Literal["start", "end"] = "start", mark: str = "[…]") -> str:
    """`text` cut at a word to at most `tokens` (estimated), `mark` where it was cut; "" when nothing fits."""
    if estimate_tokens(text) <= tokens:
        return text
    limit = tokens * CHARS_PER_TOKEN - len(mark) - 1
    while limit > 0:
        cut = text[:limit].rsplit(" ", 1)[0] if keep == "start" else text[-limit:].split(" ", 1)[-1]
        result = f"{cut.rstrip()} {mark}" if keep == "start" else f"{mark} {cut.lstrip()}"
        if estimate_tokens(result) <= tokens:
            return result
        limit -= max(1, (estimate_tokens(result) - tokens) * CHARS_PER_TOKEN)
    return ""


def request_tokens(request: LLMRequest) -> int:
    """The prompt a request sends, estimated: every message and the JSON schema (providers put it in the
    prompt when they constrain the answer to it)."""
    tokens = sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in request.messages)
    if request.json_schema is not None:
        tokens += estimate_tokens(json.dumps(request.json_schema))
    return tokens + MESSAGE_OVERHEAD_TOKENS


def margin(context_length: int) -> int:
    """Room kept free besides the answer: for the estimate's error and what servers add around a prompt."""
    return max(256, context_length // 20)


def prompt_budget(context_length: int, max_output_tokens: int) -> int:
    """The most prompt tokens a request may carry: the context, less the answer it asks room for and a margin."""
    return context_length - max_output_tokens - margin(context_length)


def fits(request: LLMRequest, scenario: Scenario | None = None, *, env: Mapping[str, str] | None = None) -> bool:
    length = scenario_context_length(scenario, request.model, env=env) if scenario else context_length(request.model, env=env)
    return request_tokens(request) <= prompt_budget(length, request.max_tokens)


# ---- context lengths ---------------------------------------------------------------------------------------
def context_length(model: str, *, env: Mapping[str, str] | None = None) -> int:
    """The context length of `model` (a model string as a scenario writes it, e.g. "openai/gpt-4o-mini")."""
    key = model.strip().lower()
    configured = configured_context_length(key, (os.environ if env is None else env).get(CONTEXT_LENGTHS_VARIABLE, ""))
    if configured is not None:
        return configured
    for prefix, length in SERVER_CONTEXT_LENGTHS:
        if key.startswith(prefix):
            return min(length, family_context_length(key) or length)
    return genai_context_length(key) or family_context_length(key) or DEFAULT_CONTEXT_LENGTH


def scenario_context_length(scenario: Scenario, model: str, *, env: Mapping[str, str] | None = None) -> int:
    """`model`'s context length as `scenario` may use it: capped by its `max_context_tokens`, if set."""
    length = context_length(model, env=env)
    cap = scenario.config.features.context_management.max_context_tokens
    return min(length, cap) if cap else length


def configured_context_length(model: str, setting: str) -> int | None:
    """The length SCENARIOLAB_CONTEXT_LENGTHS gives `model`, or None.

    The setting is `model=tokens` pairs separated by commas; a model ending in `*` is a prefix, the longest
    matching prefix wins: `ollama/*=32768,ollama/llama3.1:8b=131072,local/gemma=8192`."""
    exact: dict[str, int] = {}
    prefixes: dict[str, int] = {}
    for entry in filter(None, (part.strip() for part in setting.split(","))):
        name, sep, value = entry.rpartition("=")
        if not sep or not name.strip() or not value.strip().isdigit() or int(value) <= 0:
            raise ValueError(f"{CONTEXT_LENGTHS_VARIABLE}: {entry!r} is not `model=tokens` (e.g. ollama/llama3.1:8b=8192)")
        name = name.strip().lower()
        if name.endswith("*"):
            prefixes[name[:-1]] = int(value)
        else:
            exact[name] = int(value)
    if model in exact:
        return exact[model]
    matching = [prefix for prefix in prefixes if model.startswith(prefix)]
    return prefixes[max(matching, key=len)] if matching else None


def _normalised(model: str) -> str:
    return re.sub(r"[-_\s]", "", model.rpartition("/")[2].lower())


def family_context_length(model: str) -> int | None:
    name = _normalised(model)
    return next((length for family, length in KNOWN_CONTEXT_LENGTHS if name.startswith(family) or family in name), None)


def _genai_window(model_ref: str, provider_id: str | None) -> int | None:
    from genai_prices import Usage, calc_price  # at the first lookup, as engine.llm.pricing does

    try:
        window = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref, provider_id=provider_id).model.context_window
    except LookupError:
        return None
    return window if isinstance(window, int) and window > 0 else None


@lru_cache(maxsize=None)  # the bundled data never changes within a process
def genai_context_length(model: str) -> int | None:
    """The context window genai-prices records for a "vendor/model" string, or None. As pricing does, it
    asks for the vendor's own listing and OpenRouter's; where both know the model, the smaller wins."""
    base = model.rsplit(":", 1)[0] if ":" in model.rpartition("/")[2] else model
    if (entry := indexed(base)) is not None:  # the package's answer, kept (engine.llm.price_index)
        return entry[2]
    vendor, _, name = base.rpartition("/")
    windows = [w for w in (_genai_window(name, vendor), _genai_window(base, "openrouter")) if w] if vendor else []
    if windows:
        return min(windows)
    return _genai_window(name, None)


__all__ = [
    "CONTEXT_LENGTHS_VARIABLE",
    "DEFAULT_CONTEXT_LENGTH",
    "context_length",
    "estimate_tokens",
    "fits",
    "prompt_budget",
    "request_tokens",
    "scenario_context_length",
    "shorten",
]
