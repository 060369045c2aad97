"""A scenario folder's files held for the editor: YAML read with its comments, key order, quoting and
indentation, changed value by value, and written back. A file nobody changed keeps its exact text."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from engine.scenario.reader import yaml_size_problem

Path = tuple[Any, ...]  # keys and list indexes from a file's top level down to one value

# Indentations authors use (mapping, sequence, offset of the dash); a file is written back with the first that
# reproduces its text unchanged, so a changed value is the only difference in the file.
_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0))
_MISSING = object()


def _yaml(indent: tuple[int, int, int] = _INDENTS[0]) -> YAML:
    yaml = YAML()  # round trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap an author's long line
    mapping, sequence, offset = indent
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _dump(data: Any, indent: tuple[int, int, int]) -> str:
    buffer = io.StringIO()
    _yaml(indent).dump(data, buffer)
    return buffer.getvalue()


class YamlFileError(ValueError):
    """A file the form cannot show: its YAML does not parse, or its top level is not a mapping."""

    def __init__(self, file: str, message: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file = file


def is_yaml(file: str) -> bool:
    return file.endswith((".yaml", ".yml"))


class Folder:
    """The files of one scenario folder (relative path -> text), their YAML parsed when first asked for."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files: dict[str, str] = dict(files)
        self._data: dict[str, Any] = {}
        self._indent: dict[str, tuple[int, int, int]] = {}
        self._changed: set[str] = set()

    def data(self, file: str) -> CommentedMap | None:
        """The file's top-level mapping (None when there is no such file); raises YamlFileError."""
        if file not in self.files:
            return None
        if file not in self._data:
            text = self.files[file]
            try:
                # The engine's own limits first (alias bombs, deep nesting): the form must not build what it refuses.
                problem = yaml_size_problem(pyyaml.compose(text, Loader=pyyaml.SafeLoader)) if text.strip() else None
                if problem:
                    raise YamlFileError(file, problem)
                data = _yaml().load(text) if text.strip() else CommentedMap()
            except (YAMLError, pyyaml.YAMLError) as exc:
                raise YamlFileError(file, f"not valid YAML ({str(exc).splitlines()[0]})") from None
            except RecursionError:
                raise YamlFileError(file, "nested too deeply to read") from None
            if not isinstance(data, CommentedMap):
                raise YamlFileError(file, "its top level is not a mapping of keys")
            self._data[file] = data
        return self._data[file]

    def create(self, file: str, data: CommentedMap) -> None:
        self.files[file] = ""
        self._data[file] = data
        self._changed.add(file)

    def remove(self, file: str) -> None:
        self.files.pop(file, None)
        self._data.pop(file, None)
        self._changed.discard(file)

    def rename(self, old: str, new: str) -> None:
        """Move a file, keeping its place among the others."""
        self.files = {new if name == old else name: text for name, text in self.files.items()}
        for table in (self._data, self._indent):
            if old in table:
                table[new] = table.pop(old)
        if old in self._changed:
            self._changed.discard(old)
            self._changed.add(new)

    def set_text(self, file: str, text: str) -> None:
        self.files[file] = text

    def changed(self, file: str) -> None:
        self._changed.add(file)

    def result(self) -> dict[str, str]:
        """Every file's text: the changed YAML files written back, the others exactly as they were."""
        out = dict(self.files)
        for file in self._changed:
            if file in out:
                out[file] = _dump(self._data[file], self._indent_of(file))
        return out

    def _indent_of(self, file: str) -> tuple[int, int, int]:
        original = self.files.get(file, "")
        if file not in self._indent:
            self._indent[file] = _INDENTS[0]
            for indent in _INDENTS:
                try:
                    if original.strip() and _dump(_yaml(indent).load(original), indent) == original:
                        self._indent[file] = indent
                        break
                except YAMLError:
                    break
        return self._indent[file]


# ---- values at a path ------------------------------------------------------------------------------------------
def get(data: Any, path: Path, default: Any = None) -> Any:
    """The value at `path`, or `default`. A feature switch written as a bare `true` reads as its `enabled`."""
    for position, key in enumerate(path):
        if isinstance(data, bool) and path[position:] == ("enabled",):
            return data
        if isinstance(data, Mapping) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
        else:
            return default
    return data


def put(data: CommentedMap, path: Path, value: Any) -> None:
    """Set the value at `path`, making the mappings on the way."""
    node: Any = data
    for position, key in enumerate(path[:-1]):
        child = node[key] if (isinstance(node, Mapping) and key in node) or isinstance(node, list) else _MISSING
        if isinstance(child, bool) and path[position + 1:] == ("enabled",):
            node[key] = value  # a bare switch stays a bare switch
            return
        if not isinstance(child, (Mapping, list)):
            # A bare switch (`communications: false`) grows into a mapping that keeps saying so.
            child = CommentedMap([("enabled", child)]) if isinstance(child, bool) else CommentedMap()
            node[key] = child
        node = child
    node[path[-1]] = value


def delete(data: CommentedMap, path: Path) -> None:
    parent = get(data, path[:-1])
    if isinstance(parent, Mapping) and path[-1] in parent:
        del parent[path[-1]]
    elif isinstance(parent, list) and isinstance(path[-1], int) and 0 <= path[-1] < len(parent):
        del parent[path[-1]]


# PyYAML, which the engine reads scenarios with, takes some bare words for something other than text (YAML 1.1:
# yes, no, on, off, dates, 1:30), where the editor's YAML 1.2 would write them bare.
_PLAIN_SAFE = re.compile(r"^[A-Za-z][\w ,;()/'-]*$")
_YAML11_WORDS = {"yes", "no", "on", "off", "true", "false", "null", "y", "n", "~"}


def safe_text(text: str) -> str:
    """Text to store as one value: quoted when the engine would otherwise read it as something else."""
    if _PLAIN_SAFE.match(text) and text.lower() not in _YAML11_WORDS and text == text.strip():
        return text
    try:
        reads_as = pyyaml.safe_load(text)
    except pyyaml.YAMLError:
        reads_as = None
    return text if isinstance(reads_as, str) and reads_as == text else DoubleQuotedScalarString(text)


def text_value(text: str) -> str:
    """Text as a form gives it, to store: several lines as a `|` block, one line as a plain string (quoted when
    it must be). Text starting with a space is written quoted: a block would need an indentation indicator."""
    text = text.replace("\r\n", "\n").rstrip()
    if "\n" in text and not text[:1].isspace():
        return LiteralScalarString(text + "\n")
    return DoubleQuotedScalarString(text) if "\n" in text else safe_text(text)


def yaml11_bool(value: Any) -> bool | None:
    """A plain (unquoted) value the engine's YAML 1.1 reads as a switch (`off`, `yes`): what it reads."""
    if type(value) is str and value.lower() in ("yes", "no", "on", "off"):
        return value.lower() in ("yes", "on")
    return None


def anchored(data: Any, path: Path) -> str | None:
    """The anchor of a node on the way to `path` (or at it): a value shared with others through an alias, which
    a change must not reach through."""
    node = data
    for key in (None, *path):
        if key is not None:
            node = get(node, (key,), None)
        anchor = getattr(getattr(node, "anchor", None), "value", None)
        if anchor:
            return anchor
        if node is None:
            return None
    return None


def block_list(items: list[Any]) -> CommentedSeq:
    return CommentedSeq(items)


def flow_list(items: list[Any]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def rename_key(mapping: CommentedMap, old: Any, new: str) -> None:
    """Rename a key where it stands (its comments and the keys around it stay)."""
    position = list(mapping).index(old)
    value = mapping.pop(old)
    mapping.insert(position, safe_text(new), value)
