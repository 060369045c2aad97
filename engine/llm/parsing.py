"""Turning a model's answer into validated data: strict JSON first, then json-repair, then a clear error."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import json_repair
from pydantic import BaseModel, StringConstraints, ValidationError

from engine.llm.provider import StructuredOutputError

T = TypeVar("T", bound=BaseModel)

# Text a model must actually write: white space alone is no answer.
NonBlankText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def json_schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent as `response_format`; strict providers want no extra keys. A fresh copy each
    time (callers may change it), of a schema generated once per model class."""
    return json.loads(_schema_text(model))


@lru_cache(maxsize=256)
def _schema_text(model: type[BaseModel]) -> str:
    # Generating it was most of the engine's own time per turn (~60 ms at 6 actors): dozens of calls a turn.
    schema = model.model_json_schema()
    schema.setdefault("additionalProperties", False)
    return json.dumps(schema)


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()


def parse_structured(text: str, model: type[T]) -> T:
    """Validate `text` as `model`, repairing near-JSON (trailing commas, fences, cut-off objects). A model
    class may offer `from_markdown(text)` as a last resort for weak models that answer in sections."""
    return parse_structured_noted(text, model)[0]


def parse_structured_noted(text: str, model: type[T]) -> tuple[T, str | None]:
    """`parse_structured`, with the repair it took: None for valid JSON (in a code fence or not),
    "json_repair" for near-JSON mended, "sections" for an answer read from its Markdown sections."""
    candidate = _strip_fences(text)
    repair = None
    try:
        raw: Any = json.loads(candidate)
    except json.JSONDecodeError:
        raw, repair = json_repair.loads(candidate), "json_repair"
    try:
        return validate_structured(raw, model, raw_text=text), repair
    except StructuredOutputError:
        fallback = getattr(model, "from_markdown", None)
        parsed = fallback(text) if fallback else None
        if parsed is None:
            raise
        return parsed, "sections"


def validate_structured(raw: Any, model: type[T], *, raw_text: str = "") -> T:
    """Validate already-decoded data; a mismatch is a StructuredOutputError naming the fields."""
    if not isinstance(raw, dict):
        raise StructuredOutputError(f"expected a JSON object for {model.__name__}, got {type(raw).__name__}", raw_text=raw_text)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}" for error in exc.errors()
        )
        raise StructuredOutputError(f"{model.__name__} does not match the schema: {problems}", raw_text=raw_text) from None
