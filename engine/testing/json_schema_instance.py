"""Build a deterministic instance that satisfies a JSON schema, and a near miss that breaks it.

The fake LLM server answers structured-output requests with these, so client code meets the shapes a
real model returns under `response_format: json_schema` without any model. The builder covers what
LLM output schemas use in practice (pydantic's `model_json_schema()` output, OpenAI strict schemas):
types, enum/const, anyOf/oneOf/allOf, $ref into $defs/definitions, required/properties,
additionalProperties, array and string lengths, numeric bounds and multipleOf, common string formats.
`pattern` and `not` are not honoured: a generator for them is out of proportion to a test double.
Everything is drawn from the `random.Random` the caller passes, so equal seeds give equal instances.
"""

from __future__ import annotations

import json
import math
import random
import re
import uuid
from typing import Any

# Past this depth the builder fills only what is required, so recursive schemas (trees, linked lists) end.
_MAX_DEPTH = 8

_VERBS = ("favours", "calls for", "rests on", "points to", "depends on", "weighs", "supports", "questions")
_ADJECTIVES = ("a phased", "a cautious", "a balanced", "a firm", "an early", "a shared", "a limited", "a credible")
_NOUNS = (
    "compromise on funding",
    "review of the draft text",
    "coalition with like-minded delegations",
    "timeline for implementation",
    "set of verification measures",
    "package of concessions",
    "reading of the mandate",
    "response to the latest proposal",
)
_FORMATS = {
    "date-time": lambda rng: f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T09:30:00Z",
    "date": lambda rng: f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    "time": lambda rng: f"{rng.randint(0, 23):02d}:30:00Z",
    "email": lambda rng: f"delegate{rng.randint(1, 99)}@example.org",
    "uri": lambda rng: f"https://example.org/scenario/{rng.randint(1, 999)}",
    "url": lambda rng: f"https://example.org/scenario/{rng.randint(1, 999)}",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "hostname": lambda rng: "example.org",
    "ipv4": lambda rng: f"192.0.2.{rng.randint(1, 254)}",
}


def _words(name: str) -> str:
    """'shortTermGoals' / 'short_term_goals' -> 'short term goals'."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return " ".join(re.split(r"[\W_]+", spaced)).strip().lower() or "value"


def _singular(name: str) -> str:
    return name[:-1] if len(name) > 3 and name.endswith("s") and not name.endswith("ss") else name


def sentence(rng: random.Random, name: str = "value") -> str:
    """A short plausible sentence about `name`, e.g. 'The rationale favours a phased review of the draft text.'"""
    return f"The {_words(name)} {rng.choice(_VERBS)} {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}."


class _Builder:
    def __init__(self, root: Any, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def resolve(self, schema: Any) -> Any:
        """Follow $ref (local JSON pointers only) and fold allOf into one schema."""
        for _ in range(32):  # a bound, because a ref cycle with nothing else in it would loop forever
            if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
                break
            target: Any = self.root
            ref = schema["$ref"]
            for part in ref.lstrip("#").strip("/").split("/") if ref.startswith("#") and ref != "#" else []:
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if isinstance(target, dict) and siblings else target
        if isinstance(schema, dict) and isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part)
                if isinstance(part, dict):
                    merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
                    merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                    merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
            schema = merged
        return schema

    def build(self, schema: Any, name: str, depth: int) -> Any:
        schema = self.resolve(schema)
        if not isinstance(schema, dict):  # `true` (or a broken ref): anything goes, so a sentence does
            return sentence(self.rng, name)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.build(self._pick(options, depth), name, depth)
        kind = schema.get("type")
        if isinstance(kind, list):  # ["string", "null"]: the non-null type says more about the field
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = self._infer_type(schema)
        if kind == "object":
            return self._object(schema, name, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("number", "integer"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, name)

    def _pick(self, options: list[Any], depth: int) -> Any:
        # The first option, as a model usually picks the main shape; deep down, a non-recursive one so a
        # self-referencing union (Node | None) terminates.
        if depth > _MAX_DEPTH:
            for option in options:
                if isinstance(option, dict) and "$ref" not in option:
                    return option
        return options[0]

    @staticmethod
    def _infer_type(schema: dict[str, Any]) -> str:
        if {"properties", "required", "additionalProperties"} & schema.keys():
            return "object"
        if {"items", "prefixItems", "minItems", "maxItems"} & schema.keys():
            return "array"
        if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"} & schema.keys():
            return "number"
        return "string"

    def _object(self, schema: dict[str, Any], name: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = [key for key in schema.get("required") or [] if isinstance(key, str)]
        extra = schema.get("additionalProperties", True)
        out: dict[str, Any] = {}
        for key, sub in properties.items():
            if depth <= _MAX_DEPTH or key in required:
                out[key] = self.build(sub, key, depth + 1)
        for key in required:
            if key not in out:
                out[key] = self.build(extra if isinstance(extra, dict) else {}, key, depth + 1)
        while len(out) < int(schema.get("minProperties", 0)) and extra is not False:
            key = f"{_singular(name)}_{len(out) + 1}"
            out[key] = self.build(extra if isinstance(extra, dict) else {}, key, depth + 1)
        return out

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        if isinstance(items, list):  # draft-4 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 3)))
        if items is False:
            high = min(high, len(prefix))
        base = max(low, min(1, high))
        count = low if depth > _MAX_DEPTH else self.rng.randint(base, max(base, min(high, base + 2)))
        out: list[Any] = []
        seen: set[str] = set()
        for _ in range(count * 8 + 8):  # retries only matter for uniqueItems
            if len(out) >= count:
                break
            sub = prefix[len(out)] if len(out) < len(prefix) else items
            value = self.build(sub, _singular(name), depth + 1)
            if schema.get("uniqueItems"):
                key = json.dumps(value, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
            out.append(value)
        return out

    def _string(self, schema: dict[str, Any], name: str) -> str:
        fmt = schema.get("format")
        text = _FORMATS[fmt](self.rng) if fmt in _FORMATS else sentence(self.rng, name)
        low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
        while len(text) < low:
            text += " " + sentence(self.rng, name)
        if isinstance(high, int) and len(text) > high:
            cut = text[:high]
            text = cut.rstrip() if len(cut.rstrip()) >= low else cut  # no dangling space, unless it is needed
        return text

    def _number(self, schema: dict[str, Any], *, integer: bool) -> int | float:
        low, high = schema.get("minimum"), schema.get("maximum")
        low_open = high_open = False
        x_low, x_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if x_low is True:  # draft 4: a flag on minimum
            low_open = True
        elif isinstance(x_low, (int, float)) and not isinstance(x_low, bool) and (low is None or x_low >= low):
            low, low_open = x_low, True
        if x_high is True:
            high_open = True
        elif isinstance(x_high, (int, float)) and not isinstance(x_high, bool) and (high is None or x_high <= high):
            high, high_open = x_high, True
        if low is None and high is None:
            low, high = 0, 10
        elif low is None:
            low = high - 10
        elif high is None:
            high = low + 10
        step = schema.get("multipleOf")
        if integer or step:
            step = step if isinstance(step, (int, float)) and step > 0 else 1
            if integer and step != int(step):
                step = 1  # a fractional multipleOf on an integer: rare enough to ignore
            first, last = math.ceil(low / step), math.floor(high / step)
            if low_open and first * step <= low:
                first += 1
            if high_open and last * step >= high:
                last -= 1
            k = self.rng.randint(first, last) if first <= last else first
            return int(k * step) if integer else round(k * step, 10)
        value = round(self.rng.uniform(low, high), 2)
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            value = (low + high) / 2
        return value


def build_instance(schema: Any, rng: random.Random) -> Any:
    """A value valid against `schema`, drawn deterministically from `rng`."""
    return _Builder(schema, rng).build(schema, "value", 0)


def violate_schema(schema: Any, instance: Any) -> Any:
    """`instance` (valid, from build_instance) made invalid the way models get it wrong: a required key
    dropped, an unexpected key added, or else the wrong type at the top level."""
    builder = _Builder(schema, random.Random(0))
    node = builder.resolve(schema)
    while isinstance(node, dict) and (node.get("anyOf") or node.get("oneOf")):
        node = builder.resolve(builder._pick(node.get("anyOf") or node.get("oneOf"), 0))
    if isinstance(instance, dict) and isinstance(node, dict):
        present = [key for key in node.get("required") or [] if key in instance]
        if present:
            return {key: value for key, value in instance.items() if key != present[0]}
        if node.get("additionalProperties") is False:
            return {**instance, "unexpected_field": True}
    if isinstance(instance, dict):
        return [instance]
    if isinstance(instance, str):
        return {"unexpected": instance}
    return "unexpected"
