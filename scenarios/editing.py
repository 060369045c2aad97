"""The site's scenario editor: a submitted editor page turned into the folder's files (from its form or its YAML
view, with the button's change), the engine's check of those files with every problem placed at its field,
file or line, and saving them as a scenario's next version, or as a new scenario."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from engine.scenario.errors import LocatedError, ScenarioLoadError, closest, format_path
from engine.scenario.export import scenario_folder_files
from engine.scenario.folder import Scenario as EngineScenario
from scenarios.archives import MAX_NAME_BYTES, ScenarioImportError
from scenarios.editor_actions import apply_action, apply_renames
from scenarios.editor_form import Field, Item, Section, all_fields, all_items, apply_fields, form_sections
from scenarios.editor_specs import EVENT_KINDS, EVENTS_FILE, METRICS_FILE, RULES_FILE, SCENARIO_FILE
from scenarios.editor_yaml import Folder, YamlFileError, safe_text
from scenarios.folders import load_files
from scenarios.models import Scenario
from scenarios.services import ScenarioSlugTaken, free_slug, scenario_from_engine, scenario_record_version, scenario_to_engine

# A new scenario starts from this: the keys a scenario needs, and one actor to fill in.
NEW_SCENARIO_FILES = {
    "scenario.yaml": 'name: ""\ndescription: ""\nsystem_prompt: ""\ninitial_world_state: ""\nturns: 3\n'
                     'turn_duration: "1 day"\nworld_state_model: "openai/gpt-4o-mini"\nactors:\n  - actor-1\n'
                     "features:\n  communications:\n    enabled: true\n    max_per_turn: 2\n    bilateral: true\n"
                     "    coalition: true\n    public: true\n",
    "actors/actor-1.yaml": 'name: ""\nshort_name: "actor-1"\nllm_model: "openai/gpt-4o-mini"\ndescription: ""\n'
                           'system_prompt: ""\ngoals: []\nconstraints: []\ndecision_making_style: ""\n',
}
MODES = ("form", "yaml")
STEPS = ("save", "save_try", "preview", "check", "to_yaml", "to_form")


class EditorInputError(ValueError):
    """A submitted editor page the editor cannot read (its files are not what the page sent)."""


@dataclass
class Edit:
    """A submitted editor page: the folder's files after it, the view to show next and the button pressed."""

    files: dict[str, str]
    mode: str
    step: str  # one of STEPS, or "change" for a button that added or removed something
    problems: list[LocatedError] = field(default_factory=list)
    shown: dict[str, str] | None = None  # a live check's: the files its page shows, whose fields it answers for
    version: int | None = None  # the version the page was opened at


MAX_FILES = 500
MAX_DEPTH = 4  # actors/x.yaml, background/x.md; V1's definition/actors/x.yaml


def _path_problem(path: str, paths: set[str]) -> str | None:
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or "\x00" in path or ".." in parts or "" in parts
            or len(parts) > MAX_DEPTH or max(len(part.encode()) for part in parts) > MAX_NAME_BYTES):
        return f"{path[:80]!r} is not a file of a scenario's folder"
    if any("/".join(parts[:depth]) in paths for depth in range(1, len(parts))):
        return f"{path[:80]!r} is inside another file"
    return None


def _base(post: Any, stored: dict[str, str]) -> dict[str, str]:
    raw = post.get("base")
    if raw is None:
        return dict(stored)
    unreadable = EditorInputError("the page's files could not be read back; open the editor again")
    try:
        base = json.loads(raw)
    except (ValueError, RecursionError):
        raise unreadable from None
    if not isinstance(base, dict) or len(base) > MAX_FILES or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in base.items()):
        raise unreadable
    paths = set(base)
    for path in base:
        if problem := _path_problem(path, paths):
            raise EditorInputError(problem)
    return base


def editor_submit(post: Any, *, stored: dict[str, str]) -> Edit:
    """The files a submitted editor page stands for. `post`: the request's QueryDict (the page sends its files as
    `base`, the form's fields or the YAML view's `file:<path>` texts, `mode` and the pressed button as `step`, or
    as `change`: a JSON add or remove). `stored`: the files to start from when the page did not send its own."""
    base = _base(post, stored)
    mode = post.get("mode") if post.get("mode") in MODES else (
        "yaml" if any(key.startswith("file:") for key in post) else "form")
    step = post.get("step") if post.get("step") in STEPS else "save"
    version = int(post["version"]) if re.fullmatch(r"[0-9]{1,9}", post.get("version") or "") else None
    change: Any = None
    if post.get("change"):
        step = "change"
        try:
            change = json.loads(post["change"])
        except (ValueError, RecursionError):
            change = None
    if mode == "yaml":
        folder = Folder({path: post.get(f"file:{path}", text).replace("\r\n", "\n") for path, text in base.items()})
        if change is not None and isinstance(change, dict) and change.get("what") == "file":
            change = {**change, "name": post.get("new_file", "")}
        problems = apply_action(folder, change) if step == "change" else []
        return Edit(folder.result(), "form" if step == "to_form" else "yaml", step, problems, version=version)
    folder = Folder(base)
    try:
        sections = form_sections(folder)
    except YamlFileError as exc:  # the page was made from these files: only a hand-made request gets here
        return Edit(base, "yaml", step, [LocatedError(exc.file, "", None, str(exc))], version=version)
    renames = apply_fields(folder, sections, post)
    problems = apply_action(folder, change) if step == "change" else []
    if step == "check":  # the page's own field names stay: the renames are asked for their problems only
        files = folder.result()
        return Edit(files, "form", step, problems + apply_renames(folder, renames, sections), shown=base,
                    version=version)
    problems += apply_renames(folder, renames, sections)
    return Edit(folder.result(), "yaml" if step == "to_yaml" else "form", step, problems, version=version)


# ---- checking ----------------------------------------------------------------------------------------------------
@dataclass
class Check:
    """The engine's verdict on a folder's files: the scenario when it loads, every problem, and warnings."""

    config: EngineScenario | None
    problems: list[LocatedError]
    warnings: list[LocatedError]


_WARNING = re.compile(r"^(?P<file>[^:\s]+?)(?::(?P<line>\d+))?: (?P<message>.*)$", re.S)


def _warning(text: str) -> LocatedError:
    match = _WARNING.match(text)
    if match is None:
        return LocatedError("", "", None, text)
    return LocatedError(match["file"], "", int(match["line"]) if match["line"] else None, match["message"])


def _actor_file_names(files: dict[str, str]) -> dict[str, str]:
    """Each actor's file by its short name (a file need not be named after it)."""
    import yaml

    names = {}
    for path, text in files.items():
        if path.startswith("actors/") and path.endswith((".yaml", ".yml")):
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and isinstance(data.get("short_name"), str):
                names.setdefault(data["short_name"], path)
    return names


def _model_warnings(config: EngineScenario, files: dict[str, str]) -> list[LocatedError]:
    """A model name the price data does not list is often a typo: say so at its field with the closest listed
    name. One nobody prices at all is priced as a top-tier model in estimates and credit limits: say that too."""
    from engine.llm.price_index import priced_models
    from engine.llm.pricing import PriceBook, is_free

    book, listed, out = PriceBook.from_environment(), None, []
    actor_files = _actor_file_names(files)
    places = [("scenario.yaml", "world_state_model", config.config.world_state_model)]
    places += [(actor_files.get(actor.short_name, f"actors/{actor.short_name}.yaml"), "llm_model", actor.llm_model)
               for actor in config.actors]
    if config.validation is not None:
        places.append(("validation-rules.yaml", "validation_model", config.validation.validation_model))
    for file, key, model in places:
        name = model.strip().lower()
        base = name.rsplit(":", 1)[0] if ":" in name.rpartition("/")[2] else name  # OpenRouter's ":nitro" etc.
        listed = listed if listed is not None else priced_models()
        if is_free(name) or name in book.table or base in listed:
            continue
        match = closest(base, listed, cutoff=0.8)
        suggestion = f"did you mean '{match}'?" if match else None
        if book.is_known(model):
            if match:
                out.append(LocatedError(file, key, None, f"{model!r} is not a model name the price data lists",
                                        suggestion))
            continue
        out.append(LocatedError(file, key, None, f"{model!r} is not in the price data, so estimates and credit "
                                "limits count it at a top-tier model's price", suggestion))
    return out


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _sense_warnings(config: EngineScenario) -> list[LocatedError]:
    """What loads but cannot work as meant: a metric an end condition cannot name, a threshold outside its
    metric's range, an outside event set for turns the scenario never plays."""
    out = []
    metrics = config.metrics.metrics if config.metrics and isinstance(config.metrics.metrics, list) else []
    for index, metric in enumerate(metrics):
        if not _NAME.match(metric.name):
            out.append(LocatedError(METRICS_FILE, f"metrics[{index}].name", None,
                                    "end conditions cannot name a metric with spaces or signs",
                                    f"write it as {re.sub(r'[^A-Za-z0-9_]+', '_', metric.name).strip('_')!r}"))
        if metric.range and metric.thresholds:
            low, high = metric.range
            for level in ("warning", "critical"):
                value = getattr(metric.thresholds, level)
                if value is not None and not low <= value <= high:
                    out.append(LocatedError(METRICS_FILE, f"metrics[{index}].thresholds.{level}", None,
                                            f"{value:g} is outside the metric's range ({low:g} to {high:g}), "
                                            "so it is never crossed"))
    turns, events = config.config.turns, config.exogenous_events
    if events is not None:
        for index, event in enumerate(events.random_events):
            if event.turn_range and event.turn_range[0] > turns:
                out.append(LocatedError(EVENTS_FILE, f"random_events[{index}].turn_range", None,
                                        f"the scenario plays {turns} turns, so this never happens"))
        for index, event in enumerate(events.scheduled_events):
            if all(turn > turns for turn in event.schedule.turns):
                out.append(LocatedError(EVENTS_FILE, f"scheduled_events[{index}].schedule.turns", None,
                                        f"the scenario plays {turns} turns, so this never happens"))
    return out


def editor_check(files: dict[str, str]) -> Check:
    """Load the files as the engine would run them: the scenario, or every problem; warnings either way."""
    try:
        config = load_files(files, label="the edited scenario")
    except ScenarioLoadError as exc:
        return Check(None, list(exc.errors), [])
    except ScenarioImportError as exc:
        return Check(None, [LocatedError("", "", None, str(exc))], [])
    warnings = [_warning(text) for text in config.warnings] + _model_warnings(config, files) + _sense_warnings(config)
    return Check(config, [], warnings)


# ---- placing problems ----------------------------------------------------------------------------------------------
@dataclass
class Placed:
    """A problem or warning with where the page shows it: at a field, at an item, or in the list at the top."""

    level: str  # "problem" or "warning"
    text: str
    file: str
    line: int | None
    field: str = ""  # a field's name
    item: str = ""  # an item's id
    section: str = ""  # a section's key


def _under(prefix: str, path: str) -> bool:
    return path == prefix or (path.startswith(prefix) and path[len(prefix):][:1] in (".", "["))


def _names(each: Field) -> tuple[str, ...]:
    """The key paths a field answers to: its own, and its other names (`model` for `llm_model`)."""
    if len(each.spec.key) != 1 or not each.spec.aliases:
        return ()
    return tuple(format_path([*each.path[:-1], key]) for key in (each.spec.key[0], *each.spec.aliases))


def _section_of(problem: LocatedError) -> str:
    """The form's section for a problem no field or item shows."""
    file, first = problem.file, problem.key_path.split(".")[0].split("[")[0]
    if file.startswith("actors") or (file == SCENARIO_FILE and first == "actors"):
        return "actors"
    if file.startswith("background"):
        return "documents"
    return {SCENARIO_FILE: "scenario", METRICS_FILE: "metrics", RULES_FILE: "checks"}.get(file) or (
        first if file == EVENTS_FILE and first in EVENT_KINDS else "")


def place(problems: list[LocatedError], warnings: list[LocatedError], sections: list[Section] | None) -> list[Placed]:
    """Each problem and warning where the page shows it: at the field whose place it names, else the nearest field
    above or below that place, else the part (item) holding it, else its section; in the YAML view (no sections)
    at its file and line. At a field it reads without the key path, at an item with the path inside it."""
    fields: list[Field] = all_fields(sections) if sections else []
    items: list[Item] = all_items(sections) if sections else []
    out = []
    for level, found in (("problem", problems), ("warning", warnings)):
        for problem in found:
            where = problem.key_path
            placed = Placed(level, str(LocatedError("", where, None, problem.message, problem.suggestion)),
                            problem.file, problem.line)
            out.append(placed)
            if sections is None:
                continue
            mine = [f for f in fields if f.file == problem.file]
            above = [f for f in mine if _under(f.key_path, where) or where in _names(f)]
            below = [f for f in mine if where and _under(where, f.key_path)]
            owners = [i for i in items if i.file == problem.file and _under(format_path(list(i.path)), where)]
            if above or below:
                placed.field = (max(above, key=lambda f: len(f.key_path)) if above else below[0]).name
                placed.text = str(LocatedError("", "", None, problem.message, problem.suggestion))
            elif owners:
                owner = max(owners, key=lambda i: len(i.path))
                inside = where[len(format_path(list(owner.path))):].lstrip(".")
                placed.item = owner.id
                placed.text = str(LocatedError("", inside, None, problem.message, problem.suggestion))
            else:
                placed.section = _section_of(problem)
    return out


# ---- saving --------------------------------------------------------------------------------------------------------
def scenario_files(*, scenario: Scenario) -> dict[str, str]:
    """The scenario's folder as its last version holds it (as its author wrote it, comments included, when it
    was saved from the editor), else as the export writes it."""
    version = scenario_record_version(scenario=scenario)
    if version is not None:
        return dict(version.files)
    return scenario_folder_files(scenario_to_engine(scenario=scenario))


def scenario_template(*, scenario: Scenario) -> dict[str, str]:
    """A scenario's files to start a new one from: as its author wrote them, named "<name> (copy)"."""
    folder = Folder(scenario_files(scenario=scenario))
    try:
        data = folder.data("scenario.yaml")
    except YamlFileError:
        data = None
    if data is not None:
        data["name"] = safe_text(f"{scenario.name} (copy)")
        folder.changed("scenario.yaml")
    return folder.result()


def scenario_current_version(*, scenario: Scenario) -> int | None:
    """The number of the scenario's last version (what an editor page opened now edits)."""
    return scenario.versions.order_by("-number").values_list("number", flat=True).first()


def _normalised(files: dict[str, str]) -> dict[str, str]:
    return {path: text.replace("\r\n", "\n") for path, text in files.items()}


class ScenarioChanged(Exception):
    """The scenario was saved again since the editor page was opened."""

    def __init__(self, current: int | None) -> None:
        super().__init__(f"version {current} was saved since the page was opened")
        self.current = current


def scenario_save_files(*, scenario: Scenario, files: dict[str, str], opened_at: int | None = None) -> Scenario:
    """Store the scenario from its folder's files as edited on the site, their text kept as the new version.
    Raises ScenarioLoadError (every problem with its file, key and line) with nothing stored; ScenarioChanged
    when `opened_at` (the version the page was opened at) is no longer the last one."""
    config = load_files(files, label=scenario.slug)
    with transaction.atomic():
        Scenario.objects.select_for_update().filter(pk=scenario.pk).first()  # saves of one scenario in turn
        current = scenario_current_version(scenario=scenario)
        if opened_at is not None and opened_at != current:
            raise ScenarioChanged(current)
        return scenario_from_engine(config=config, slug=scenario.slug, files=_normalised(files))


def scenario_create(*, files: dict[str, str]) -> Scenario:
    """A new scenario from the editor's files (its slug from its name, made unique), its text as version 1.
    Raises ScenarioLoadError with nothing stored."""
    config = load_files(files, label="the new scenario")
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return scenario_from_engine(config=config, slug=free_slug(slugify(config.name)[:90] or "scenario"), files=_normalised(files),
                                            new=True)
        except (ScenarioSlugTaken, IntegrityError):
            continue  # someone took the slug since it was chosen: choose again
    raise ScenarioSlugTaken("could not find a free slug for the new scenario; try again")
