"""The scenario editor's form: a scenario folder's YAML as plain inputs (one goal per line, numbers with their
units, a model picker), and a submitted form written back into the author's text.

A field is named after the place it edits, `<file>::<key path>` in the loader's own spelling of a place
(`metrics.yaml::metrics[0].thresholds.warning`), so the form is a view of the files and nothing else: switching
to the YAML view and back loses nothing, and each problem the engine finds lands at the field it names. Only the
values a person changed are written back; a file without changes keeps its exact text."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap

from engine.scenario.errors import format_path
from engine.scenario.v1_forms import V1_COMMUNICATION_SWITCHES
from scenarios.editor_specs import (
    ACTOR_SPECS,
    CHECK_SPECS,
    COMMUNICATION_SPECS,
    CONDITION_SPECS,
    DOCUMENT_NAME,
    DOCUMENT_TEXT,
    EVENTS_FILE,
    EVENT_KINDS,
    FEATURE_SPECS,
    METRICS_FILE,
    METRIC_SPECS,
    RULES_FILE,
    RULES_SPECS,
    SCENARIO_FILE,
    SCENARIO_SPECS,
    Spec,
    TREND_EFFECT_SPECS,
)
from scenarios.editor_yaml import (
    Folder,
    Path,
    anchored,
    block_list,
    delete,
    flow_list,
    get,
    is_yaml,
    put,
    safe_text,
    text_value,
    yaml11_bool,
)

_ABSENT = object()


@dataclass
class Field:
    name: str
    file: str
    path: Path
    spec: Spec
    value: Any  # text, a bool (switches) or (first, last) (ranges)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shared: str = ""  # the anchor of a value shared through a YAML alias: the YAML view edits it, not the form

    @property
    def multiline(self) -> bool:
        """Shown as a text area: text of several lines (a browser drops line breaks from a one-line input)."""
        return self.spec.kind in ("textarea", "lines", "pairs", "doctext") or (
            self.spec.kind in ("text", "model") and "\n" in str(self.value))

    @property
    def key_path(self) -> str:
        return format_path(list(self.path))

    @property
    def rows(self) -> int:
        """Enough rows to see the text whole (long lines wrap), within reason."""
        lines = str(self.value).split("\n")
        return max(self.spec.rows, min(15, sum(1 + len(line) // 80 for line in lines) + 1))

    @property
    def choice_values(self) -> list[str]:
        return [value for value, _label in self.spec.choices]

    @property
    def dom_id(self) -> str:
        return "f:" + self.name.replace(" ", "_")


@dataclass
class Item:
    id: str  # "<file>::<key path>" of what it edits (a whole file: "<file>::")
    file: str
    path: Path
    title: str
    fields: list[Field] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)
    remove: dict | None = None  # the action that removes it
    note: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def remove_value(self) -> str:
        return json.dumps(self.remove) if self.remove else ""


@dataclass
class Section:
    key: str
    title: str
    items: list[Item]
    help: str = ""
    add: dict | None = None  # the action that adds an item
    add_label: str = ""
    note: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def add_value(self) -> str:
        return json.dumps(self.add) if self.add else ""


# ---- reading -----------------------------------------------------------------------------------------------------
def field_name(file: str, path: Path) -> str:
    return f"{file}::{format_path(list(path))}"


def _where(data: Any, spec: Spec, base: Path) -> Path:
    """The path a spec edits in this item: an older name the author used, if that is the one present."""
    if spec.aliases and len(spec.key) == 1:
        item = get(data, base, {})
        for key in (spec.key[0], *spec.aliases):
            if isinstance(item, dict) and key in item:
                return (*base, key)
    return (*base, *spec.key)


def _number(value: Any) -> str:
    return "" if value is None else str(value)


def _as_lines(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join("; ".join(f"{k}: {v}" for k, v in item.items()) if isinstance(item, dict) else str(item)
                         for item in value)
    return "" if value is None else str(value)


def read_value(data: Any, path: Path, spec: Spec) -> Any:
    """The field's value as the form shows it."""
    value = get(data, path, _ABSENT)
    if spec.kind == "key":
        return str(path[-1])
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        read = yaml11_bool(value)
        return spec.default if read is None else read
    if value is _ABSENT:
        return ("", "") if spec.kind == "range" else (spec.default or "")
    if spec.kind == "range":
        return (_number(value[0]), _number(value[1])) if isinstance(value, list) and len(value) == 2 else ("", "")
    if spec.kind == "ints":
        return ", ".join(str(item) for item in value) if isinstance(value, list) else _number(value)
    if spec.kind == "pairs" and isinstance(value, dict):
        return "\n".join(f"{key}: {item}" for key, item in value.items())
    if spec.kind in ("lines", "pairs"):
        return _as_lines(value)
    return _number(value)


def _fields(file: str, data: Any, base: Path, specs: tuple[Spec, ...]) -> list[Field]:
    out = []
    for spec in specs:
        path = base if spec.kind == "key" else _where(data, spec, base)
        out.append(Field(field_name(file, (*path, "(name)") if spec.kind == "key" else path), file, path, spec,
                         read_value(data, path, spec), shared=anchored(data, path) or ""))
    return out


def listed_name(entry: Any) -> str:
    """An entry of scenario.yaml's `actors:` as the loader reads it: a file's stem (V1 sometimes added `.yaml`)."""
    return re.sub(r"\.ya?ml$", "", str(entry).strip())


def actor_files(folder: Folder) -> list[str]:
    """actors/*.yaml, in the order scenario.yaml lists them, then any it does not list."""
    files = [name for name in folder.files if name.startswith("actors/") and is_yaml(name) and name.count("/") == 1]
    listed = get(folder.data(SCENARIO_FILE), ("actors",), [])
    order = [listed_name(entry) for entry in listed] if isinstance(listed, list) else []

    def position(name: str) -> tuple[int, str]:
        stem = name.split("/", 1)[1].rsplit(".", 1)[0]
        return (order.index(stem) if stem in order else len(order), name)
    return sorted(files, key=position)


def document_files(folder: Folder) -> list[str]:
    return sorted(name for name in folder.files if name.startswith("background/") and name.endswith(".md"))


def _v1_note(what: str) -> str:
    return f"{what} written in V1's form: the YAML view edits it, and it is kept as it is here."


def _scenario_section(folder: Folder) -> Section:
    data = folder.data(SCENARIO_FILE)
    if data is None:
        item = Item(f"{SCENARIO_FILE}::", SCENARIO_FILE, (), "Scenario", note="The folder has no scenario.yaml.")
        return Section("scenario", "Scenario", [item])
    v1_switches = any(key in data for key in (*V1_COMMUNICATION_SWITCHES, "communication_types"))
    # V1's `parameters: {max_turns, turn_duration}` and `scenario_length: {max_turns, ...}`: the YAML view.
    v1_length = "parameters" in data or isinstance(data.get("scenario_length"), dict)
    specs = tuple(spec for spec in SCENARIO_SPECS if not (v1_length and spec.key in (("turns",), ("turn_duration",))))
    specs += (() if v1_switches else COMMUNICATION_SPECS) + FEATURE_SPECS
    notes = [_v1_note("The length is")] if v1_length else []
    notes += [_v1_note("The communication settings are")] if v1_switches else []
    item = Item(f"{SCENARIO_FILE}::", SCENARIO_FILE, (), "Scenario", _fields(SCENARIO_FILE, data, (), specs),
                note=" ".join(notes))
    if "features" not in data:  # V1's folders without features have no public statements unless they ask
        for each in item.fields:
            if each.path == ("features", "communications", "public"):
                each.value = False
    return Section("scenario", "Scenario", [item])


def _list_items(folder: Folder, file: str, container: Path, specs: tuple[Spec, ...], title: Callable[[Any, int], str],
                children: Callable[[Path, Any], list[Section]] | None = None) -> list[Item]:
    data = folder.data(file)
    entries = get(data, container, [])
    items = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        path = (*container, index)
        item = Item(field_name(file, path), file, path, title(entry, index),
                    remove={"op": "remove", "file": file, "path": list(container), "index": index})
        if not isinstance(entry, dict):
            item.note = "Not a mapping of keys: the YAML view edits it."
        elif file == METRICS_FILE and "extraction_type" in entry:
            item.note = _v1_note("This metric is")
        else:
            item.fields = _fields(file, data, path, specs)
            item.children = children(path, entry) if children else []
        items.append(item)
    return items


def _named(kind: str) -> Callable[[Any, int], str]:
    return lambda entry, index: (str(entry.get("name") or "") if isinstance(entry, dict) else "") or f"{kind} {index + 1}"


def _event_children(path: Path, entry: Any, folder: Folder) -> list[Section]:
    kind = path[0]
    if kind == "trends":
        container, specs, label, what = (*path, "effects"), TREND_EFFECT_SPECS, "Stage", "effect"
    elif kind == "conditional_events":
        container, specs, label, what = (*path, "conditions"), CONDITION_SPECS, "Condition", "condition"
    else:
        return []
    items = _list_items(folder, EVENTS_FILE, container, specs, lambda _entry, index: f"{label} {index + 1}")
    add = {"op": "add", "what": what, "file": EVENTS_FILE, "path": list(container)}
    return [Section(f"{field_name(EVENTS_FILE, container)}", f"{label}s", items, add=add,
                    add_label=f"Add a {label.lower()}")]


def form_sections(folder: Folder) -> list[Section]:
    """The whole form, read from the folder's files; raises YamlFileError when a YAML file does not parse."""
    sections = [_scenario_section(folder)]

    actors = []
    for file in actor_files(folder):
        data = folder.data(file)
        actors.append(Item(f"{file}::", file, (), str(data.get("name") or "") or file.split("/", 1)[1],
                           _fields(file, data, (), ACTOR_SPECS), remove={"op": "remove", "file": file}))
    sections.append(Section("actors", "Actors", actors, add={"op": "add", "what": "actor"}, add_label="Add an actor"))

    documents = []
    for file in document_files(folder):
        stem = file.split("/", 1)[1].removesuffix(".md")
        documents.append(Item(f"{file}::", file, (), stem, [
            Field(f"{file}::(name)", file, ("(name)",), DOCUMENT_NAME, stem),
            Field(f"{file}::(text)", file, ("(text)",), DOCUMENT_TEXT, folder.files[file])],
            remove={"op": "remove", "file": file}))
    sections.append(Section("documents", "Background documents", documents, help="every actor reads them each turn",
                            add={"op": "add", "what": "document"}, add_label="Add a document"))

    metrics = folder.data(METRICS_FILE)
    legacy = isinstance(get(metrics, ("metrics",)), dict)
    sections.append(Section(
        "metrics", "Metrics", [] if legacy else _list_items(folder, METRICS_FILE, ("metrics",), METRIC_SPECS,
                                                            _named("Metric")),
        help="numbers read from the world each turn, with thresholds that warn or stop",
        add=None if legacy else {"op": "add", "what": "metric"}, add_label="Add a metric",
        note=_v1_note("These metrics are") if legacy else ""))

    rules = folder.data(RULES_FILE)
    checks = get(rules, ("checks",), {})
    qa_items = []
    if rules is not None:
        qa_items.append(Item(f"{RULES_FILE}::", RULES_FILE, (), "Settings", _fields(RULES_FILE, rules, (), RULES_SPECS)))
    for index, (name, check) in enumerate(checks.items() if isinstance(checks, dict) else []):
        path = ("checks", name)
        item = Item(field_name(RULES_FILE, path), RULES_FILE, path, str(name),
                    remove={"op": "remove", "file": RULES_FILE, "path": ["checks"], "index": index})
        if isinstance(check, dict):
            item.fields = _fields(RULES_FILE, rules, path, CHECK_SPECS)
        else:
            item.note = "Not a mapping of keys: the YAML view edits it."
        qa_items.append(item)
    sections.append(Section("checks", "QA checks", qa_items, help="a model reads each turn and reports what is off",
                            add={"op": "add", "what": "check"}, add_label="Add a check"))

    events = folder.data(EVENTS_FILE)
    v1_events = events is not None and "exogenous_events" in events
    for kind, (title, help_text, specs) in EVENT_KINDS.items():
        items = [] if v1_events else _list_items(
            folder, EVENTS_FILE, (kind,), specs, _named("Event"),
            lambda path, entry: _event_children(path, entry, folder))
        sections.append(Section(kind, title, items, help=help_text,
                                add=None if v1_events else {"op": "add", "what": "event", "kind": kind},
                                add_label=f"Add {title[0].lower()}{title[1:-1]}",
                                note=_v1_note("The outside events are") if v1_events else ""))
    return sections


def all_fields(sections: list[Section]) -> list[Field]:
    out: list[Field] = []
    for section in sections:
        for item in section.items:
            out.extend(item.fields)
            out.extend(all_fields(item.children))
    return out


def all_items(sections: list[Section]) -> list[Item]:
    out: list[Item] = []
    for section in sections:
        for item in section.items:
            out.append(item)
            out.extend(all_items(item.children))
    return out


# ---- writing -----------------------------------------------------------------------------------------------------
def posted_value(spec: Spec, name: str, posted: Any) -> Any:
    """What the form sent for a field, or None when it sent nothing for it (a field it did not show).
    `posted` is a Django QueryDict (getlist). A switch is sent as a hidden "0" and, when ticked, a "1"."""
    if spec.kind == "bool":
        values = posted.getlist(name)
        return None if not values else "1" in values
    if spec.kind == "range":
        first, last = posted.get(f"{name}[0]"), posted.get(f"{name}[1]")
        return None if first is None or last is None else (first.strip(), last.strip())
    value = posted.get(name)
    return None if value is None else value.replace("\r\n", "\n")


def _lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [line[2:].strip() if line.startswith(("- ", "* ")) else line for line in lines]


def same(spec: Spec, posted: Any, shown: Any) -> bool:
    if spec.kind in ("bool", "range"):
        return posted == shown
    if spec.kind in ("lines", "pairs"):
        return _lines(posted) == _lines(shown)
    return posted.strip() == str(shown).strip()


def _scalar(text: str) -> Any:
    """A number as typed; text that is not one is written as text, for the engine to name what it expected."""
    text = text.strip()
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return safe_text(text)


_PAIR = re.compile(r"^\s*([^:]+?)\s*:\s*(.+?)\s*$")


def to_yaml_value(spec: Spec, posted: Any, current: Any) -> Any:
    """The value to store for a changed field, or _ABSENT to remove its key."""
    kind = spec.kind
    if kind == "bool":
        return posted
    if kind == "range":
        return _ABSENT if posted == ("", "") else flow_list([_scalar(part) for part in posted])
    empty = not posted.strip()
    if empty and (spec.clear == "delete" or current is _ABSENT):
        return _ABSENT
    if kind in ("int", "number"):
        return _scalar(posted)
    if kind == "ints":
        return flow_list([_scalar(part) for part in re.split(r"[,\s]+", posted.strip()) if part])
    if kind == "lines":
        return block_list([safe_text(line) for line in _lines(posted)]) if not empty else flow_list([])
    if kind == "pairs":
        pairs = [_PAIR.match(line) for line in _lines(posted)]
        if pairs and all(pairs) and (isinstance(current, dict) or current is _ABSENT):
            return CommentedMap((safe_text(match.group(1)), safe_text(match.group(2))) for match in pairs if match)
        return text_value(posted)
    return text_value(posted)  # text, a model's name, a choice


def apply_fields(folder: Folder, sections: list[Section], posted: Any) -> list[tuple[Field, str]]:
    """Write every changed field into its file. Returns what the values cannot do here: (field, new value)
    renames of keys and files, done once the rest is written (see editor_actions.apply_renames)."""
    scenario = folder.data(SCENARIO_FILE)
    had_features = scenario is not None and "features" in scenario
    renames = []
    for each in all_fields(sections):
        value = posted_value(each.spec, each.name, posted)
        if value is None or each.shared or same(each.spec, value, each.value):
            continue
        if each.spec.kind in ("key", "docname"):
            renames.append((each, value.strip()))
            continue
        if each.spec.kind == "doctext":
            folder.set_text(each.file, value)
            continue
        data = folder.data(each.file)
        assert data is not None  # fields are read from the files
        current = get(data, each.path, _ABSENT)
        stored = to_yaml_value(each.spec, value, current)
        if stored is _ABSENT:
            delete(data, each.path)
        else:
            put(data, each.path, stored)
        folder.changed(each.file)
    if scenario is not None and not had_features and "features" in scenario:
        # Without `features` a folder has no public statements (V1's rule); written now, it would have them
        # unless it says so.
        communications = get(scenario, ("features", "communications"))
        if not (isinstance(communications, dict) and "public" in communications):
            put(scenario, ("features", "communications", "public"), False)
    return renames

