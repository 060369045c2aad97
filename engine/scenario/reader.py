"""Reading a scenario folder's files safely: YAML within size limits, duplicate keys warned about, every value
validated against its schema with errors located at their file and line, all problems collected rather than
the first one raised (`Reader`). `engine.scenario.loader` walks the folder with it."""


from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from engine.scenario.errors import (
    DataPath,
    FriendlyError,
    LocatedError,
    Spot,
    closest,
    field_types,
    friendly,
    list_noun,
    locate,
    merge_alternatives,
    model_paths,
    with_expected,
    yaml_problem,
)
from engine.scenario.v1_forms import V1_FORM_ERROR, V1_MOVED_KEYS
from engine.scenario.schema import ScenarioConfig
from engine.scenario.metrics import MetricsConfig

MAX_FILE_BYTES = 1024 * 1024  # scenario files are hand-written; anything bigger is a mistake or an attack
MAX_NODES = 100_000  # counted with aliases expanded, so "billion laughs" documents are refused before building
MAX_DEPTH = 100
YAML_SUFFIXES = (".yaml", ".yml")
ACTOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
M = TypeVar("M", bound=BaseModel)


@dataclass
class Document:
    """A parsed YAML file: the composed nodes (for line numbers) and the plain data (for pydantic)."""

    rel: str
    root: yaml.MappingNode
    data: dict[Any, Any]
    loader: yaml.SafeLoader  # kept to turn key nodes back into the values pydantic saw (yes -> True)
    warnings: list[str]  # recorded only if the file is used, not when an actor look-up merely peeks at it

    def key(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)


def locate_at(doc: Document, loc: DataPath, *, missing: bool = False) -> Spot:
    return locate(doc.root, doc.key, loc, missing=missing)


def _data_at(data: Any, path: DataPath) -> Any:
    for element in path:
        data = data[element]
    return data


def _check_size(rel: str, root: yaml.Node, warnings: list[str]) -> str | None:
    """Count nodes with aliases expanded (bounded), and warn about keys written twice."""
    count, stack, checked = 0, [(root, 1)], set()
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            return (f"the file expands to more than {MAX_NODES:,} values (YAML aliases like *name repeat "
                    "what they point to); refusing to load it")
        if depth > MAX_DEPTH:
            return f"the file is nested more than {MAX_DEPTH} levels deep; refusing to load it"
        if isinstance(node, yaml.MappingNode):
            if id(node) not in checked:
                checked.add(id(node))
                _warn_duplicate_keys(rel, node, warnings)
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
    return None


def yaml_size_problem(root: yaml.Node) -> str | None:
    """Why a composed YAML document must not be built (alias bombs, deep nesting), for YAML read elsewhere than
    in a scenario folder (batch configs): building such a document is cheap, using it is not."""
    return _check_size("", root, [])


def _warn_duplicate_keys(rel: str, node: yaml.MappingNode, warnings: list[str]) -> None:
    seen: set[tuple[str, str]] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
            key = (key_node.tag, key_node.value)
            if key in seen:
                warnings.append(f"{rel}:{key_node.start_mark.line + 1}: key '{key_node.value}' appears "
                                "more than once; the last one is used")
            seen.add(key)


# ---- the reader: files, YAML, validation, all errors collected --------------------------------------------
@dataclass
class Reader:
    """Reads files under `root` (never outside it) and collects every error and warning on the way."""

    root: Path
    base: Path | None = None  # the folder holding scenario.yaml: root, or root/definition (V1's layout)
    errors: list[LocatedError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _cache: dict[Path, tuple[Document | None, list[LocatedError]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = self.base or self.root

    def _places(self) -> list[Path]:
        """Where a scenario's files are looked for: the base, then (in V1's layout) the scenario folder."""
        assert self.base is not None
        return [self.base] if self.base == self.root else [self.base, self.root]

    def find(self, stem: str) -> Path | None:
        """`stem.yaml`, else `stem.yml`: in the base folder, else next to definition/."""
        for place in self._places():
            paths = [place / f"{stem}{suffix}" for suffix in YAML_SUFFIXES]
            present = [path for path in paths if path.is_file()]
            if len(present) == 2:
                self.warnings.append(f"{self.rel(present[1])}: ignored because {self.rel(present[0])} also exists")
            if present:
                self._note_outside_base(present[0])
                return present[0]
        return None

    def folder(self, name: str) -> Path:
        """The base's subfolder `name`, else (in V1's layout) the scenario folder's."""
        for place in self._places():
            if (place / name).is_dir():
                self._note_outside_base(place / name)
                return place / name
        return self._places()[0] / name

    def _note_outside_base(self, path: Path) -> None:
        if path.parent != self.base:
            note = f"{self.rel(path)}: used from the scenario folder, as {self.rel(self.base)}/ has no {path.name}"  # type: ignore[arg-type]
            if note not in self.warnings:
                self.warnings.append(note)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def read_text(self, path: Path, problems: list[LocatedError]) -> str | None:
        """The file's text, or None after noting why it cannot be used (outside, too big, not UTF-8)."""
        rel = self.rel(path)
        try:
            if not path.resolve().is_relative_to(self.root):
                problems.append(LocatedError(rel, "", None, "this file links to somewhere outside the scenario folder",
                                             "copy the file into the folder instead of linking to it"))
                return None
            with path.open("rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)  # never more, whatever stat() said
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            reason = getattr(exc, "strerror", None) or exc
            problems.append(LocatedError(rel, "", None, f"could not read the file: {reason}"))
            return None
        if len(raw) > MAX_FILE_BYTES:
            problems.append(LocatedError(rel, "", None, "the file is larger than 1 MiB, the limit for scenario files",
                                         "shorten it or split it into several files"))
            return None
        try:
            return raw.decode("utf-8-sig")  # tolerate the byte-order mark some Windows editors write
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            message = f"the file is not valid UTF-8 text (byte 0x{raw[exc.start]:02x})"
            problems.append(LocatedError(rel, "", line, message,
                                         "re-save the file as UTF-8 in your editor"))
            return None

    def parse(self, path: Path, model: type[BaseModel]) -> tuple[Document | None, list[LocatedError]]:
        """Read and parse once; the problems are returned, not recorded, so actor look-ups can peek quietly."""
        if path not in self._cache:
            problems: list[LocatedError] = []
            text = self.read_text(path, problems)
            document = self._parse_yaml(self.rel(path), text, model, problems) if text is not None else None
            self._cache[path] = (document, problems)
        return self._cache[path]

    def _parse_yaml(
        self, rel: str, text: str, model: type[BaseModel], problems: list[LocatedError]
    ) -> Document | None:
        loader: yaml.SafeLoader | None = None
        try:
            loader = yaml.SafeLoader(text)  # already raises on characters YAML forbids
            root = loader.get_single_node()
            if root is None:
                required = [name for name, info in model.model_fields.items() if info.is_required()]
                needs = f", at least {', '.join(required)}" if required else ""
                problems.append(LocatedError(rel, "", None, f"the file is empty; expected key: value lines{needs}"))
                return None
            if not isinstance(root, yaml.MappingNode):
                kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
                problems.append(LocatedError(rel, "", root.start_mark.line + 1,
                                             f"expected key: value lines at the top level, got {kind}"))
                return None
            warnings: list[str] = []
            too_big = _check_size(rel, root, warnings)
            if too_big:
                problems.append(LocatedError(rel, "", None, too_big))
                return None
            try:
                data = loader.construct_document(root)
            except (ValueError, TypeError, AttributeError, OverflowError) as exc:
                # PyYAML's value builders raise these for e.g. `2025-13-45` or `!!int abc`.
                problems.append(_unbuildable_value(rel, loader, root, exc))
                return None
            return Document(rel, root, data, loader, warnings)
        except yaml.YAMLError as exc:
            problems.append(yaml_problem(rel, text, exc))
        except RecursionError:
            problems.append(LocatedError(rel, "", None, "the file is nested too deeply to read"))
        finally:
            if loader is not None:
                loader.dispose()
        return None

    def load(self, path: Path, model: type[M], *, defaults: dict[str, Any] | None = None) -> M | None:
        """`defaults`: values for keys the file does not give (an actor's short name from its file's name)."""
        document, problems = self.parse(path, model)
        self.errors.extend(problems)
        return self.validate(document, model, defaults=defaults) if document else None

    def validate(self, doc: Document, model: type[M], *, defaults: dict[str, Any] | None = None) -> M | None:
        self.warnings.extend(doc.warnings)
        models = model_paths(model, doc.data)
        self._warn_near_misses(doc, models)
        try:
            return model.model_validate({**(defaults or {}), **doc.data})
        except ValidationError as exc:
            self.errors.extend(self._explain(doc, model, exc, models))
        except RecursionError:
            self.errors.append(LocatedError(doc.rel, "", None, "the file is nested too deeply to check"))
        return None

    def _explain(
        self, doc: Document, model: type[BaseModel], exc: ValidationError, models: dict[DataPath, type[BaseModel]]
    ) -> Iterator[LocatedError]:
        groups: dict[tuple[str, int | None], list[FriendlyError]] = {}
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            if error["type"] == V1_FORM_ERROR:
                spot, explained = self._v1_problem(doc, loc, error)
                groups.setdefault((spot.key_path, spot.line), []).append(explained)
                continue
            if model is MetricsConfig and loc[:1] == ("metrics",) and loc[1:2] in (("list",), ("legacy",)):
                loc = loc[:1] + loc[2:]  # the discriminated union's tag, never a key in the file
            if model is ScenarioConfig:
                loc = _v1_source(doc.data, loc)
            missing = error["type"] == "missing"
            spot = locate_at(doc, loc, missing=missing)
            explained = friendly(error, missing_list_item=missing and bool(loc) and type(loc[-1]) is int)
            if error["type"] == "list_type" and spot.data_path:
                path = spot.data_path
                noun = list_noun(models.get(path[:-1]), path[-1])
                if model is MetricsConfig and path == ("metrics",):
                    noun = "a list of metric definitions (or V1's mapping of metric name: settings)"
                explained = with_expected(explained, noun) if noun else explained
            if missing and loc and isinstance(loc[-1], str):
                explained = self._rename_hint(doc, spot, loc[-1], models) or explained
            groups.setdefault((spot.key_path, spot.line), []).append(explained)
        for (key_path, line), explained_here in groups.items():
            typed = [item for item in explained_here if item.expected]
            untyped = [item for item in explained_here if not item.expected]
            merged = ([merge_alternatives(typed)] if typed else []) + untyped
            for item in dict.fromkeys(merged):  # union alternatives can repeat the same complaint
                yield LocatedError(doc.rel, key_path, line, item.message, item.suggestion)

    @staticmethod
    def _v1_problem(doc: Document, loc: DataPath, error: Any) -> tuple[Spot, FriendlyError]:
        """A V1-form problem raised by a model (see schema.v1_problem), at the V1 key it names."""
        ctx = error.get("ctx") or {}
        spot = locate_at(doc, loc + tuple(ctx.get("v1_key") or ()))
        message = str(error.get("msg", ""))
        if ctx.get("v1_other"):
            other = locate_at(doc, loc + tuple(ctx["v1_other"]))
            if other.line and other.data_path == loc + tuple(ctx["v1_other"]):
                message += f" ('{other.key_path}' is at line {other.line})"
        return spot, FriendlyError(message, ctx.get("v1_fix"))

    @staticmethod
    def _rename_hint(
        doc: Document, spot: Spot, name: str, models: dict[DataPath, type[BaseModel]]
    ) -> FriendlyError | None:
        """A required key is missing: is there an unknown key next to it that looks like a typo of it?"""
        model = models.get(spot.data_path)
        mapping = _data_at(doc.data, spot.data_path)
        if model is None or not isinstance(mapping, dict):
            return None
        known = field_types(model)
        unknown = [key for key in mapping if isinstance(key, str) and key not in known]
        match = closest(name, unknown, cutoff=0.6)
        if match is None:
            return None
        return FriendlyError("this key is required", f"did you mean '{name}'? rename '{match}' to '{name}'")

    def _warn_near_misses(self, doc: Document, models: dict[DataPath, type[BaseModel]]) -> None:
        """Unknown keys are kept, but one that looks like a typo of a known key deserves a warning."""
        for path, model in models.items():
            mapping = _data_at(doc.data, path)
            known = field_types(model)
            # Present fields stay candidates: 'descripton' next to 'description' is still a typo worth flagging.
            names = list(model.model_fields)
            for key in mapping:
                if isinstance(key, str) and key not in known:
                    match = closest(key, names)
                    if match:
                        spot = locate_at(doc, (*path, key))
                        self.warnings.append(f"{doc.rel}:{spot.line}: unknown key '{spot.key_path}' kept; "
                                             f"did you mean '{match}'?")


def _has_path(data: Any, path: DataPath) -> bool:
    for element in path:
        if not isinstance(data, dict) or element not in data:
            return False
        data = data[element]
    return True


def _v1_source(data: Any, loc: DataPath) -> DataPath:
    """A scenario.yaml error about a value the file gave under a V1 key (which the schema moved) points there."""
    for moved_to, written_at in V1_MOVED_KEYS.items():
        if loc[: len(moved_to)] == moved_to and not _has_path(data, moved_to) and _has_path(data, written_at):
            return written_at + loc[len(moved_to):]
    return loc


def _unbuildable_value(rel: str, loader: yaml.SafeLoader, root: yaml.Node, exc: Exception) -> LocatedError:
    """Find the scalar PyYAML could not turn into a value, to name its line."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node, deep=True)
            except Exception:  # noqa: BLE001 - any failure here is the culprit we are looking for
                return LocatedError(rel, "", node.start_mark.line + 1, f"{node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}: {exc}", "quote it to keep it as text")
        elif isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in reversed(node.value) for item in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    return LocatedError(rel, "", None, f"a value could not be read: {exc}")


def listing(folder: Path) -> list[Path]:
    """A folder's entries, sorted; an unreadable or absent folder simply has none."""
    try:
        return sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return []
