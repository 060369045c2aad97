"""Located load errors for scenario folders, and the wording of their messages and suggestions in plain words."""

from __future__ import annotations

import datetime
import difflib
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import AliasChoices, BaseModel

DataPath = tuple[Any, ...]  # keys and list indexes from a file's top level down to one value


@dataclass(frozen=True)
class LocatedError:
    """One problem in a scenario folder, pointing at the file, key and line a person has to edit."""

    file: str  # relative to the scenario folder, e.g. "actors/mayor.yaml"; "" for the folder itself
    key_path: str  # e.g. "features.communications.max_per_turn" or "metrics[2].extraction.pattern"
    line: int | None  # 1-based
    message: str  # what is wrong and what was expected
    suggestion: str | None = None  # e.g. "did you mean 'turns'?"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else self.file
        text = ": ".join(part for part in (where, self.key_path, self.message) if part)
        if self.suggestion:
            # Messages are written without a final full stop so the suggestion reads as a second sentence.
            separator = " " if text.endswith((".", "?", "!")) else ". "
            text += separator + self.suggestion[:1].upper() + self.suggestion[1:]
        return text


class ScenarioLoadError(Exception):
    """A scenario folder could not be loaded; `errors` lists every problem found, not just the first."""

    def __init__(self, folder: str, errors: Iterable[LocatedError]) -> None:
        self.folder = folder
        self.errors: tuple[LocatedError, ...] = tuple(errors)
        # Passing both to Exception keeps the error picklable (task queues ship exceptions between processes).
        super().__init__(folder, self.errors)

    def __str__(self) -> str:
        count = len(self.errors)
        header = f"Scenario folder {self.folder} has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([header, *(f"  {error}" for error in self.errors)])


# ---- where a pydantic error points in the YAML file ---------------------------------------------------------
@dataclass(frozen=True)
class Spot:
    """Where a value sits in a file: its dotted key path and line."""

    key_path: str
    line: int | None
    data_path: DataPath  # keys and indexes that exist in the data, without the missing last element


def format_path(parts: list[Any]) -> str:
    """["metrics", 2, "extraction"] -> "metrics[2].extraction"."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) and not isinstance(part, bool) else f"{'.' if text else ''}{part}"
    return text


def locate(root: yaml.Node, key_of: Callable[[yaml.Node], Any], loc: DataPath, *, missing: bool = False) -> Spot:
    """Follow a pydantic loc through the YAML nodes; elements not in the file (union tags) are skipped.

    `key_of` turns a key node into the value pydantic saw (YAML reads `yes:` as True)."""
    node: yaml.Node = root
    line: int | None = node.start_mark.line + 1
    shown: list[Any] = []
    data_path: list[Any] = []
    for position, element in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            found = None
            for key_node, value_node in node.value:  # the last duplicate wins, as in yaml.safe_load
                key = key_of(key_node)
                if key == element or str(key) == str(element):
                    found = (key_node, value_node, key)
            if found:
                key_node, node, key = found
                shown.append(key_node.value if isinstance(key_node, yaml.ScalarNode) else key)
                data_path.append(key)
                line = key_node.start_mark.line + 1
                continue
        elif isinstance(node, yaml.SequenceNode) and type(element) is int and 0 <= element < len(node.value):
            node = node.value[element]
            shown.append(element)
            data_path.append(element)
            line = node.start_mark.line + 1
            continue
        if missing and position == len(loc) - 1:
            shown.append(element)  # a missing key is reported at its parent mapping's line
    return Spot(format_path(shown), line, tuple(data_path))


# ---- pydantic error -> plain words -----------------------------------------------------------------------
# What each pydantic type error expected, as a noun phrase ("expected a whole number").
_EXPECTED_NOUNS: dict[str, str] = {
    "string_type": "text",
    "string_unicode": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping of keys (key: value lines)",
    "model_type": "a mapping of keys (key: value lines)",
    "model_attributes_type": "a mapping of keys (key: value lines)",
    "none_required": "nothing",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def describe_value(value: Any) -> str:
    """How a YAML value reads to a person: 'a number (3)', 'text ('abc')', 'nothing (an empty value)'."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a yes/no value)"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"a date ({value.isoformat()})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"text ({shown!r})" if value else "empty text"
    if isinstance(value, Mapping):
        return "a mapping of keys"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return type(value).__name__


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The candidate nearest to `word`, if any is near enough to be a likely typo."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return matches[0] if matches else None


@dataclass(frozen=True)
class FriendlyError:
    """A pydantic error reworded, before it is given a file and line."""

    message: str
    suggestion: str | None = None
    expected: str | None = None  # set for type errors so union alternatives can be merged into one message
    got: Any = field(default=None, compare=False)  # may be an unhashable list; messages are compared as text


def friendly(error: Mapping[str, Any], *, missing_list_item: bool = False) -> FriendlyError:
    """Rewrite one pydantic error dict into a message that says what was expected, in plain words."""
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        if missing_list_item:
            return FriendlyError("this list is too short: an item is missing here")
        return FriendlyError("this key is required")
    if kind in _EXPECTED_NOUNS:
        noun = _EXPECTED_NOUNS[kind]
        suggestion = None
        if kind == "string_type" and isinstance(value, (int, float, bool, datetime.date)):
            # YAML turns 3, yes, 2025-01-01 into numbers, booleans and dates; quoting keeps them text.
            suggestion = "put the value in quotes to make it text"
        return FriendlyError(f"expected {noun}, got {describe_value(value)}", suggestion, noun, value)
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        match = closest(str(value).lower(), options, cutoff=0.6) if isinstance(value, str) else None
        quoted = [f"'{option}'" for option in options] or ["an allowed value"]
        listed = quoted[0] if len(quoted) == 1 else "one of " + ", ".join(quoted[:-1]) + " or " + quoted[-1]
        return FriendlyError(
            f"expected {listed}, got {describe_value(value)}",
            f"did you mean '{match}'?" if match else None,
        )
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return FriendlyError(f"expected a number {words} {ctx.get(key)}, got {describe_value(value)}")
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return FriendlyError("must not be empty: expected some text")
        return FriendlyError(f"expected at least {ctx.get('min_length')} characters")
    if kind == "string_too_long":
        return FriendlyError(f"expected at most {ctx.get('max_length')} characters, got {len(str(value))}")
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        size = "at least" if kind == "too_short" else "at most"
        actual = ctx.get("actual_length")
        return FriendlyError(f"expected {size} {bound} item{'s' if bound != 1 else ''}, got {actual}")
    if kind == "invalid_key":
        return FriendlyError(
            f"keys must be text, got {describe_value(value)}",
            "put the key in quotes (YAML reads yes/no/on/off, numbers and dates as other types)",
        )
    if kind in ("value_error", "assertion_error"):
        message = str(error.get("msg", ""))
        # Keep the schema's own words; pydantic prefixes them with "Value error, ".
        return FriendlyError(re.sub(r"^(Value error|Assertion failed), ", "", message))
    return FriendlyError(str(error.get("msg", kind)))


def merge_alternatives(errors: Sequence[FriendlyError]) -> FriendlyError:
    """One message for a union field that failed every alternative: 'expected text, a list or ...'."""
    nouns = list(dict.fromkeys(error.expected for error in errors if error.expected))
    if len(nouns) < 2:
        return errors[0]
    joined = ", ".join(nouns[:-1]) + " or " + nouns[-1]
    return FriendlyError(f"expected {joined}, got {describe_value(errors[0].got)}", None, joined, errors[0].got)


# ---- which model describes which part of a file, for suggestions and "a list of text" -------------------------
def field_types(model: type[BaseModel]) -> dict[str, Any]:
    """Every key a model understands (field names and aliases) with its annotation."""
    names: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        names[name] = info.annotation
        aliases = [info.alias, info.validation_alias]
        if isinstance(info.validation_alias, AliasChoices):
            aliases.extend(info.validation_alias.choices)
        names.update({alias: info.annotation for alias in aliases if isinstance(alias, str)})
    # V1 keys a model reads into other fields (`v1_keys`) are known too, though no field of that name holds them.
    names.update({key: object for key in getattr(model, "v1_keys", ()) if key not in names})
    return names


def _shape(value: Any) -> str:
    return "mapping" if isinstance(value, dict) else "list" if isinstance(value, list) else "scalar"


def _unwrap(annotation: Any, value: Any) -> Any:
    """Strip Annotated and pick the union alternative whose shape matches the data, as pydantic would."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0], value)
    if origin in (Union, types.UnionType):
        for arm in get_args(annotation):
            inner = _unwrap(arm, value)
            is_model = isinstance(inner, type) and issubclass(inner, BaseModel)
            holds = "mapping" if is_model or get_origin(inner) is dict else "list" if get_origin(inner) is list else ""
            if holds == _shape(value):
                return inner
        return None
    return annotation


def model_paths(model: type[BaseModel], data: Any) -> dict[DataPath, type[BaseModel]]:
    """Map each data path that holds a model's mapping to that model class."""
    found: dict[DataPath, type[BaseModel]] = {}

    def walk(annotation: Any, value: Any, path: DataPath) -> None:
        annotation = _unwrap(annotation, value)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if isinstance(value, dict):
                found[path] = annotation
                fields = field_types(annotation)
                for key, item in value.items():
                    if isinstance(key, str) and key in fields:
                        walk(fields[key], item, (*path, key))
            return
        args = get_args(annotation)
        if get_origin(annotation) is list and args and isinstance(value, list):
            for index, item in enumerate(value):
                walk(args[0], item, (*path, index))
        elif get_origin(annotation) is dict and len(args) == 2 and isinstance(value, dict):
            for key, item in value.items():
                walk(args[1], item, (*path, key))

    walk(model, data, ())
    return found


def list_noun(owner: type[BaseModel] | None, key: Any) -> str | None:
    """What a model's list field holds, in words ("a list of text"), for a sharper "expected a list"."""
    annotation = field_types(owner).get(key) if owner is not None and isinstance(key, str) else None
    annotation = _unwrap(annotation, []) if annotation is not None else None
    items = get_args(annotation)[0] if get_origin(annotation) is list and get_args(annotation) else None
    if isinstance(items, type) and issubclass(items, BaseModel):
        return "a list of mappings (each item a set of key: value lines)"
    return {str: "a list of text", int: "a list of whole numbers", float: "a list of numbers"}.get(items)


def with_expected(explained: FriendlyError, noun: str) -> FriendlyError:
    """Swap a type error's generic noun ("a list") for a more precise one."""
    message = explained.message.replace(explained.expected, noun, 1) if explained.expected else explained.message
    return replace(explained, message=message, expected=noun)


def yaml_problem(rel: str, text: str, exc: yaml.YAMLError) -> LocatedError:
    """A YAML syntax error at its line, with a hint for the usual causes."""
    if isinstance(exc, yaml.reader.ReaderError):  # a control character or similar, before any parsing
        line = text[: exc.position].count("\n") + 1
        return LocatedError(rel, "", line, f"the file contains a character YAML does not allow (#x{exc.character:04x})",
                            "remove it, or re-save the file as plain UTF-8 text")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    suggestion = None
    if "\\t" in str(problem) or "\t" in str(problem):
        suggestion = "indent with spaces, not tabs"
    elif "mapping values are not allowed" in str(problem):
        suggestion = "put text that contains ': ' in quotes"
    elif "could not determine a constructor" in str(problem):
        suggestion = "remove the '!tag'; scenario files only use plain YAML"
    return LocatedError(rel, "", line, message, suggestion)
