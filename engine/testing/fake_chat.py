"""What the fake LLM server understands and says: chat-completions requests in, deterministic answers out.

Kept apart from the HTTP serving in `fake_llm` so each reads on its own.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

from engine.testing.json_schema_instance import sentence

class HTTPError(Exception):
    """An answer other than 200; `close` when the connection's framing can no longer be trusted."""

    def __init__(self, status: int, message: str, *, close: bool = False, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.close, self.headers = status, message, close, headers or {}


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    schema: dict[str, Any] | None
    json_mode: bool
    stream: bool
    seed: Any

    def prompt_tokens(self) -> int:
        return sum(len(message_text(message)) for message in self.messages) // 4 + 4 * len(self.messages)

    def digest(self) -> str:
        key = json.dumps([self.model, self.messages, self.seed], sort_keys=True, default=str)
        return hashlib.sha256(key.encode()).hexdigest()


RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def parse_chat(payload: Any, *, response_formats: tuple[str, ...] = RESPONSE_FORMATS) -> ChatRequest:
    """Validate an OpenAI chat-completions body (plus Ollama's `format`); HTTPError 400 when it is not one.

    `response_formats` narrows what the server accepts, to play servers such as llama-cpp-python's that
    take a schema only inside `json_object` (`{"type": "json_object", "schema": {...}}`).
    """
    if not isinstance(payload, dict):
        raise HTTPError(400, "the body must be a JSON object")
    model, messages = payload.get("model"), payload.get("messages")
    if not isinstance(model, str) or not model:
        raise HTTPError(400, "'model' must be a non-empty string")
    if not isinstance(messages, list) or not messages:
        raise HTTPError(400, "'messages' must be a non-empty list")
    for message in messages:
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), (str, list, type(None)))):
            raise HTTPError(400, "each message must be an object with a string 'role' and a 'content'")
    schema, json_mode = None, False
    response_format, ollama_format = payload.get("response_format"), payload.get("format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in response_formats:
            raise HTTPError(400, f"'response_format.type' must be one of {', '.join(response_formats)}")
        if kind == "json_object" and isinstance(response_format.get("schema"), dict):
            schema = response_format["schema"]
        elif kind == "json_schema":
            spec = response_format.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise HTTPError(400, "'response_format.json_schema.schema' must be an object")
        else:
            json_mode = kind == "json_object"
    elif isinstance(ollama_format, dict):
        schema = ollama_format
    elif ollama_format not in (None, "", "json"):
        raise HTTPError(400, "'format' must be a JSON schema object or \"json\"")
    json_mode = json_mode or ollama_format == "json"
    return ChatRequest(model, messages, schema, json_mode, payload.get("stream") is True, payload.get("seed"))


def truncate_answer(text: str) -> str:
    cut = text[: max(1, len(text) // 2)]
    try:
        json.loads(cut)  # half of "12345" still parses; an unclosed string makes sure it does not
        return '"' + cut
    except ValueError:
        return cut


def markdown_answer(rng: random.Random) -> str:
    goals = "\n".join(f"- {sentence(rng, 'long-term goal')}" for _ in range(2))
    priorities = "\n".join(f"- {sentence(rng, 'priority')}" for _ in range(3))
    return (f"**LONG-TERM GOALS:**\n{goals}\n\n**SHORT-TERM PRIORITIES:**\n{priorities}\n\n"
            f"**REASONING:**\n{sentence(rng, 'assessment')} {sentence(rng, 'risk')}\n\n"
            f"**ACTION:**\n{sentence(rng, 'proposal')}")


# What the engine's summary phase asks (engine.phases.summary.SUMMARY_REQUEST_PHRASE, kept in step by a test).
SUMMARY_REQUEST_PHRASE = "write one summary of turns"


def summary_answer(rng: random.Random) -> str:
    """A short paragraph of prose, as a model asked to summarise the turns so far writes."""
    return " ".join(sentence(rng, topic) for topic in ("outcome", "agreement", "dispute", "position", "outlook"))


def prose_answer(chat: ChatRequest, rng: random.Random, *, suffix: str = "") -> str:
    """The answer to a request for prose: a bare number when asked for "only a number", a summary when asked
    for one, else V1-style decision sections. `suffix` follows prose (see FakeLLMServer(text_suffix=))."""
    users = [m for m in chat.messages if m.get("role") == "user"]
    last = message_text(users[-1]).lower() if users else ""
    if "only a number" in last:
        return f"{rng.randint(10, 90) / 10:g}"
    if SUMMARY_REQUEST_PHRASE in last:
        return summary_answer(rng) + suffix
    return markdown_answer(rng) + suffix


def with_text_suffix(value: Any, suffix: str) -> Any:
    """`value` (an answer's JSON) with `suffix` after every prose string: see FakeLLMServer(text_suffix=)."""
    if not suffix:
        return value
    if isinstance(value, str):
        return value + suffix if " " in value else value  # prose, not an identifier or an enum value
    if isinstance(value, list):
        return [with_text_suffix(item, suffix) for item in value]
    if isinstance(value, dict):
        return {key: with_text_suffix(item, suffix) for key, item in value.items()}
    return value
