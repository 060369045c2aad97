"""The editor's changes of a folder's shape: adding and removing actors, documents, metrics, checks, events and
their parts, and the renames a form asks for (a check, a document, an actor's file following its short name).

An action comes from a button of the form as JSON ({"op": "add", "what": "actor"}); anything else is refused
with a problem, never an error page."""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from engine.scenario.errors import LocatedError, format_path
from engine.scenario.schema import SHORT_NAME
from scenarios.editor_form import Field, Section, actor_files, all_fields, listed_name
from scenarios.editor_specs import EVENTS_FILE, METRICS_FILE, RULES_FILE, SCENARIO_FILE
from scenarios.editor_yaml import Folder, YamlFileError, block_list, flow_list, get, is_yaml, rename_key

DEFAULT_MODEL = "openai/gpt-4o-mini"
PLACEHOLDER_STEM = re.compile(r"^actor-\d+$")
DOCUMENT_STEM = re.compile(r"^[\w][\w .-]*$")
FILE_NAME = re.compile(r"^(?:(?:actors|background)/)?[\w][\w.-]*\.(?:ya?ml|md)$")


def _free(prefix: str, taken: set[str]) -> str:
    number = 1
    while f"{prefix}-{number}" in taken or f"{prefix}_{number}" in taken:
        number += 1
    return f"{prefix}-{number}"


def _stem(file: str) -> str:
    return file.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _world_model(folder: Folder) -> str:
    return str(get(folder.data(SCENARIO_FILE), ("world_state_model",)) or DEFAULT_MODEL)


def _listed_actors(folder: Folder) -> CommentedSeq | None:
    listed = get(folder.data(SCENARIO_FILE), ("actors",))
    return listed if isinstance(listed, list) else None


def _listed_at(listed: CommentedSeq, stem: str, short_name: Any = None) -> int | None:
    """Where scenario.yaml lists an actor's file: by its stem (with or without `.yaml`) or, as V1 did, by its
    short name."""
    for index, entry in enumerate(listed):
        if listed_name(entry) == stem or (isinstance(short_name, str) and listed_name(entry) == short_name):
            return index
    return None


def _container(folder: Folder, file: str, path: list[Any], make: dict[str, Any]) -> Any:
    """The list or mapping at `path` in `file`, made (with the file) when absent."""
    data = folder.data(file)
    if data is None:
        data = CommentedMap()
        folder.create(file, data)
    node = get(data, tuple(path))
    if node is None and len(path) == 1:
        node = make[path[0]]
        data[path[0]] = node
    folder.changed(file)
    return node


def _skeleton(pairs: list[tuple[str, Any]]) -> CommentedMap:
    return CommentedMap(pairs)


def _event(kind: str, turns: int) -> CommentedMap:
    common = [("name", ""), ("description", "")]
    if kind == "scheduled_events":
        return _skeleton([*common, ("schedule", CommentedMap([("turns", flow_list([1]))])), ("effect", "")])
    if kind == "random_events":
        return _skeleton([*common, ("probability", 0.2), ("turn_range", flow_list([1, turns])), ("effect", "")])
    if kind == "trends":
        return _skeleton([*common, ("probability_per_turn", 1.0), ("effects", block_list([_trend_effect(turns)]))])
    return _skeleton([*common, ("conditions", block_list([_condition()])), ("effect", ""), ("once", True)])


def _trend_effect(turns: int) -> CommentedMap:
    return _skeleton([("turn_range", flow_list([1, turns])), ("description", ""), ("impact", "")])


def _condition() -> CommentedMap:
    return _skeleton([("type", "metrics"), ("metric", ""), ("operator", ">="), ("value", 0)])


def _turns(folder: Folder) -> int:
    turns = get(folder.data(SCENARIO_FILE), ("turns",))
    return turns if isinstance(turns, int) and turns > 0 else 1


def _add(folder: Folder, action: dict[str, Any]) -> str:
    what = action.get("what")
    if what == "actor":
        stem = _free("actor", {_stem(file) for file in actor_files(folder)})
        folder.create(f"actors/{stem}.yaml", _skeleton([
            ("name", ""), ("short_name", stem), ("llm_model", _world_model(folder)), ("description", ""),
            ("system_prompt", ""), ("goals", flow_list([])), ("constraints", flow_list([])),
            ("decision_making_style", "")]))
        listed = _listed_actors(folder)
        if listed is not None:  # without a list the loader reads every file in actors/
            if not listed:
                listed.fa.set_block_style()
            listed.append(stem)
            folder.changed(SCENARIO_FILE)
        return ""
    if what == "document":
        stem = _free("document", {_stem(file) for file in folder.files if file.startswith("background/")})
        folder.set_text(f"background/{stem}.md", "")
        return ""
    if what == "metric":
        metrics = _container(folder, METRICS_FILE, ["metrics"], {"metrics": block_list([])})
        if not isinstance(metrics, list):
            return "metrics.yaml's metrics are not a list: add one in the YAML view"
        metrics.append(_skeleton([("name", ""), ("description", ""), ("unit", ""), (
            "extraction", CommentedMap([("type", "keyword"), ("keywords", flow_list([]))]))]))
        return ""
    if what == "check":
        if folder.data(RULES_FILE) is None:
            folder.create(RULES_FILE, _skeleton([("validation_model", _world_model(folder))]))
        checks = _container(folder, RULES_FILE, ["checks"], {"checks": CommentedMap()})
        if not isinstance(checks, dict):
            return "validation-rules.yaml's checks are not a mapping: add one in the YAML view"
        checks[_free("check", set(map(str, checks))).replace("-", "_")] = _skeleton(
            [("enabled", True), ("severity", "medium"), ("description", "")])
        return ""
    if what == "event" and action.get("kind") in ("scheduled_events", "random_events", "trends", "conditional_events"):
        events = _container(folder, EVENTS_FILE, [action["kind"]], {action["kind"]: block_list([])})
        if not isinstance(events, list):
            return f"exogenous-events.yaml's {action['kind']} are not a list: add one in the YAML view"
        events.append(_event(action["kind"], _turns(folder)))
        return ""
    if what in ("effect", "condition") and action.get("file") == EVENTS_FILE:
        parts = _container(folder, EVENTS_FILE, action.get("path") or [], {})
        if not isinstance(parts, list):
            return "this event's list is not a list: change it in the YAML view"
        parts.append(_trend_effect(_turns(folder)) if what == "effect" else _condition())
        return ""
    if what == "file":
        name = str(action.get("name") or "").strip()
        if not FILE_NAME.match(name):
            return (f"{name!r} is not a file a scenario folder holds: name a .yaml file at the top or in actors/, "
                    "or a .md file in background/")
        if name in folder.files:
            return f"{name} is already there"
        folder.set_text(name, "")
        return ""
    return "this button does nothing the editor knows"


def _remove(folder: Folder, action: dict[str, Any]) -> str:
    file = action.get("file")
    if not isinstance(file, str) or file not in folder.files:
        return "there is no such file to remove"
    if "path" not in action:
        try:  # in the YAML view either file may not read yet: the file goes all the same
            short_name = get(folder.data(file), ("short_name",)) if file.startswith("actors/") and is_yaml(file) else None
        except YamlFileError:
            short_name = None
        folder.remove(file)
        try:
            listed = _listed_actors(folder) if file.startswith("actors/") and SCENARIO_FILE in folder.files else None
        except YamlFileError:
            listed = None
        at = _listed_at(listed, _stem(file), short_name) if listed is not None else None
        if at is not None:
            del listed[at]
            folder.changed(SCENARIO_FILE)
        return ""
    node = get(folder.data(file), tuple(action.get("path") or []))
    index = action.get("index")
    if not isinstance(index, int) or not isinstance(node, (list, dict)) or not 0 <= index < len(node):
        return "there is no such part to remove"
    del node[index if isinstance(node, list) else list(node)[index]]
    folder.changed(file)
    return ""


def apply_action(folder: Folder, action: Any) -> list[LocatedError]:
    """Add or remove what a button asks for; a problem for a request the editor cannot do."""
    problem = "this button does nothing the editor knows"
    if isinstance(action, dict):
        try:
            problem = _add(folder, action) if action.get("op") == "add" else (
                _remove(folder, action) if action.get("op") == "remove" else problem)
        except (TypeError, ValueError, KeyError):
            problem = "this button does nothing the editor knows"
    return [LocatedError("", "", None, problem)] if problem else []


# ---- renames -----------------------------------------------------------------------------------------------------
def _problem(each: Field, message: str) -> LocatedError:
    return LocatedError(each.file, format_path(list(each.path)), None, message)


def apply_renames(folder: Folder, renames: list[tuple[Field, str]], sections: list[Section]) -> list[LocatedError]:
    """Rename the checks and documents whose name changed, and move an actor's file after its new short name
    when the file was named after the old one (or is a new actor's "actor-N"). Problems for names that cannot be."""
    problems = []
    for each, new in renames:
        if each.file not in folder.files:
            continue  # removed by the same request
        if each.spec.kind == "key":
            mapping = get(folder.data(each.file), each.path[:-1])
            old = each.path[-1]
            if not isinstance(mapping, dict) or old not in mapping or new == old:
                continue
            if not new or new in mapping:
                problems.append(_problem(each, f"another check is named {new!r}" if new else "a check needs a name"))
                continue
            rename_key(mapping, old, new)
            folder.changed(each.file)
        elif each.spec.kind == "docname":
            target = f"background/{new}.md"
            if not DOCUMENT_STEM.match(new) or ".." in new:
                problems.append(_problem(each, f"{new!r} cannot name a file; use letters, digits, '-', '_' or spaces"))
            elif target in folder.files:
                problems.append(_problem(each, f"another document is named {new!r}"))
            else:
                folder.rename(each.file, target)
    for each in all_fields(sections):
        if each.spec.key != ("short_name",) or not each.file.startswith("actors/") or each.file not in folder.files:
            continue
        new = get(folder.data(each.file), ("short_name",))
        stem = _stem(each.file)
        if not isinstance(new, str) or new == stem or not SHORT_NAME.match(new) or not is_yaml(each.file):
            continue
        if stem != each.value and not PLACEHOLDER_STEM.match(stem):
            continue  # a file named apart from its short name stays as its author named it
        target = f"actors/{new}.yaml"
        if target in folder.files:
            continue
        listed = _listed_actors(folder)
        at = _listed_at(listed, stem, each.value) if listed is not None else None
        folder.rename(each.file, target)
        if at is not None:
            listed[at] = new
            folder.changed(SCENARIO_FILE)
    return problems
