"""Writes of stored scenarios: to and from the engine's Scenario, folder/zip/library import, zip export, copies."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_jsonable_python

from engine.scenario.errors import (
    FriendlyError,
    LocatedError,
    ScenarioLoadError,
    format_path,
    friendly,
    merge_alternatives,
)
from engine.scenario.export import actor_file_stems, scenario_folder_files
from engine.scenario.schema import BackgroundDocument as EngineDocument
from engine.scenario.folder import Scenario as EngineScenario
from engine.scenario.schema import SHORT_NAME, ActorConfig, CommunicationSettings, ExogenousEventsConfig, Features, RolesConfig, ScenarioConfig, ValidationRules
from engine.scenario.metrics import MetricsConfig
from scenarios.archives import (  # noqa: F401 - ScenarioImportError and the limits are part of this API
    MAX_ZIP_ENTRIES,
    MAX_ZIP_UNPACKED_BYTES,
    ScenarioImportError,
    extract_safely,
    scenario_root,
)
from scenarios.folders import authors_text
from scenarios.models import Actor, BackgroundDocument, Scenario, ScenarioVersion

# What a scenario.yaml column holds; everything else there goes to `extra`.
SCENARIO_COLUMNS = ("name", "description", "system_prompt", "initial_world_state", "turns", "turn_duration",
                    "world_state_model", "context_window_size", "credit_limit", "seed", "end_condition")
ACTOR_COLUMNS = ("name", "short_name", "llm_model", "system_prompt", "description", "goals", "constraints",
                 "information_access", "expertise", "decision_making_style", "control")
# The JSON columns and the engine model each one must satisfy.
JSON_FIELD_MODELS: dict[str, type[BaseModel]] = {
    "communication": CommunicationSettings,
    "features": Features,
    "metrics": MetricsConfig,
    "validation_rules": ValidationRules,
    "exogenous_events": ExogenousEventsConfig,
    "roles": RolesConfig,
}


class StoredScenarioError(ScenarioLoadError):
    """A stored scenario does not validate; each problem names the file it exports to, the key and the fault.

    A ScenarioLoadError, so whoever handles a bad folder handles a bad row the same way."""

    def __str__(self) -> str:
        count = len(self.errors)
        header = f"Stored scenario {self.folder!r} has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([header, *(f"  {error}" for error in self.errors)])


class ScenarioSlugTaken(ValueError):
    """An import would replace an existing scenario and the caller did not ask for that."""


# ---- pydantic errors as located problems ----------------------------------------------------------------------
def _key_path(data: Any, loc: tuple[Any, ...], *, missing: bool) -> str:
    """Follow a pydantic loc through the data; elements that are not in it (union tags) are skipped."""
    shown: list[Any] = []
    for position, element in enumerate(loc):
        if isinstance(data, dict) and element in data:
            data = data[element]
            shown.append(element)
        elif isinstance(data, list) and type(element) is int and 0 <= element < len(data):
            data = data[element]
            shown.append(element)
        elif missing and position == len(loc) - 1:
            shown.append(element)
    return format_path(shown)


def model_problems(model: type[BaseModel], value: Any, *, file: str = "") -> tuple[Any, list[LocatedError]]:
    """Validate `value` with an engine model: (the model or None, its problems in the loader's words)."""
    try:
        return model.model_validate(value), []
    except PydanticValidationError as exc:
        groups: dict[str, list[FriendlyError]] = {}
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            if model is MetricsConfig and loc[:1] == ("metrics",) and loc[1:2] in (("list",), ("legacy",)):
                loc = loc[:1] + loc[2:]  # the discriminated union's tag, never a key in the data
            missing = error["type"] == "missing"
            path = _key_path(value, loc, missing=missing)
            groups.setdefault(path, []).append(friendly(error, missing_list_item=missing and bool(loc)
                                                        and type(loc[-1]) is int))
        problems = []
        for path, explained in groups.items():
            typed = [item for item in explained if item.expected]
            merged = ([merge_alternatives(typed)] if typed else []) + [item for item in explained if not item.expected]
            problems.extend(LocatedError(file, path, None, item.message, item.suggestion)
                            for item in dict.fromkeys(merged))
        return None, problems


def json_field_problems(*, field: str, value: Any) -> list[str]:
    """Problems of one JSON column's value (admin forms), each naming the key inside the JSON."""
    if field == "extra":
        return _extra_problems(value, ScenarioConfig)
    if field == "actor_extra":
        return _extra_problems(value, ActorConfig)
    if value is None and field in ("metrics", "validation_rules", "exogenous_events"):
        return []
    _, problems = model_problems(JSON_FIELD_MODELS[field], value)
    messages = [str(problem) for problem in problems]
    if field == "features" and isinstance(value, dict) and "communications" in value:
        messages.append("communications: set these in the communication settings field, not here")
    return messages


def _extra_problems(value: Any, model: type[BaseModel]) -> list[str]:
    if not isinstance(value, dict):
        return ["expected a mapping of keys ({\"key\": value})"]
    known = [key for key in value if key in model.model_fields]
    return [f"{key}: a known key; set it in its own field" for key in known]


# ---- rows <-> engine ------------------------------------------------------------------------------------------
def _file_stem(actor: Actor) -> str:
    return actor.file_stem or actor.short_name


def scenario_to_engine(*, scenario: Scenario) -> EngineScenario:
    """The stored scenario as the engine's validated Scenario; raises StoredScenarioError listing every problem.

    scenario.yaml lists the actors' file stems, in position order, so order and file names survive export."""
    actors = list(scenario.actors.all())
    documents = list(scenario.background_documents.all())
    stems = [_file_stem(actor) for actor in actors]
    problems: list[LocatedError] = []

    features = dict(scenario.features or {}) if isinstance(scenario.features, dict) else scenario.features
    if isinstance(features, dict) and scenario.communication:
        features["communications"] = scenario.communication
    data: dict[str, Any] = {**(scenario.extra or {})} if isinstance(scenario.extra, dict) else {}
    data.update({column: getattr(scenario, column) for column in SCENARIO_COLUMNS})
    for unset in ("credit_limit", "end_condition"):
        if data[unset] in (None, ""):
            del data[unset]  # unset, as in a file without the key
    data["actors"] = stems
    if features:
        data["features"] = features
    if scenario.roles:
        data["roles"] = scenario.roles
    if scenario.extra and not isinstance(scenario.extra, dict):
        problems.append(LocatedError("scenario.yaml", "", None, "extra: expected a mapping of keys"))
    config, found = model_problems(ScenarioConfig, data, file="scenario.yaml")
    problems.extend(found)

    if not actors:
        problems.append(LocatedError("actors", "", None, "the scenario has no actors", "add at least one actor"))
    actor_configs = []
    for stem, actor in zip(stems, actors, strict=True):
        file = f"actors/{stem}.yaml"
        if not SHORT_NAME.match(stem):
            problems.append(LocatedError(file, "", None, f"{stem!r} cannot be an actor file name",
                                         "use letters, digits, '-', '_' or '.'"))
        if stems.count(stem) > 1:
            problems.append(LocatedError(file, "", None, "two actors would be written to this file",
                                         "give each actor its own file stem"))
        actor_data = {**actor.extra} if isinstance(actor.extra, dict) else {}
        actor_data.update({column: getattr(actor, column) for column in ACTOR_COLUMNS})
        for optional in ("information_access", "expertise"):
            if actor_data[optional] is None:
                del actor_data[optional]
        actor_config, found = model_problems(ActorConfig, actor_data, file=file)
        problems.extend(found)
        actor_configs.append(actor_config)

    parts: dict[str, Any] = {}
    for column, model, file in (("metrics", MetricsConfig, "metrics.yaml"),
                                ("validation_rules", ValidationRules, "validation-rules.yaml"),
                                ("exogenous_events", ExogenousEventsConfig, "exogenous-events.yaml")):
        value = getattr(scenario, column)
        parts[column], found = model_problems(model, value, file=file) if value is not None else (None, [])
        problems.extend(found)

    if problems:
        raise StoredScenarioError(scenario.slug, problems)
    return EngineScenario(
        config=config,
        actors=actor_configs,
        metrics=parts["metrics"],
        validation=parts["validation_rules"],
        exogenous_events=parts["exogenous_events"],
        background=[EngineDocument(name=doc.name, text=doc.text) for doc in documents],
    )


def _json(value: Any) -> Any:
    return to_jsonable_python(value)


def _part(model: BaseModel | None) -> Any:
    # Only what was set, so the stored JSON (and a later export) reads like the file it came from.
    return model.model_dump(mode="json", exclude_unset=True) if model is not None else None


def _clean(instance: Any, where: str, *, exclude: Iterable[str] = ()) -> None:
    try:
        instance.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        details = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
        raise ScenarioImportError(f"{where}: {details}") from None


@transaction.atomic
def scenario_from_engine(*, config: EngineScenario, slug: str | None = None, files: dict[str, str] | None = None,
                         new: bool = False) -> Scenario:
    """Create or update (by slug) the stored scenario; its actors and background documents are replaced.
    `files`: the folder's text as its author wrote it (comments, order), kept as the new version's files.
    `new`: only create; ScenarioSlugTaken if the slug is stored."""
    slug = slug or slugify(config.name)[:100] or "scenario"
    cfg = config.config
    row = Scenario.objects.select_for_update().filter(slug=slug).first()
    if row is not None and new:
        raise ScenarioSlugTaken(f"a scenario with slug {slug!r} already exists")
    row = row or Scenario(slug=slug)
    for column in SCENARIO_COLUMNS:
        setattr(row, column, getattr(cfg, column))
    row.end_condition = cfg.end_condition or ""
    features = cfg.features.model_dump(mode="json", exclude_unset=True)
    features.pop("communications", None)
    row.communication = cfg.features.communications.model_dump(mode="json")
    row.features = features
    row.roles = cfg.roles.model_dump(mode="json", exclude_unset=True)
    row.extra = _json(cfg.model_extra or {})
    row.metrics = _part(config.metrics)
    row.validation_rules = _part(config.validation)
    row.exogenous_events = _part(config.exogenous_events)
    _clean(row, f"scenario {slug!r}", exclude=["slug"] if row.pk else ())
    row.save()

    row.actors.all().delete()
    row.background_documents.all().delete()
    actors = []
    for position, (stem, actor) in enumerate(zip(actor_file_stems(config), config.actors, strict=True)):
        fields = {column: _json(getattr(actor, column)) for column in ACTOR_COLUMNS}
        item = Actor(scenario=row, position=position, file_stem=stem, extra=_json(actor.model_extra or {}), **fields)
        _clean(item, f"actor {actor.short_name!r}", exclude=["scenario"])
        actors.append(item)
    Actor.objects.bulk_create(actors)
    documents = []
    for position, document in enumerate(config.background):
        item = BackgroundDocument(scenario=row, position=position, name=document.name, text=document.text)
        _clean(item, f"background document {document.name!r}", exclude=["scenario"])
        documents.append(item)
    BackgroundDocument.objects.bulk_create(documents)
    scenario_record_version(scenario=row, files=files)
    return row


def scenario_record_version(*, scenario: Scenario, files: dict[str, str] | None = None) -> ScenarioVersion | None:
    """The scenario's current version: a new one when its files differ from the last one recorded (every save
    calls this), else the last one. `files`: the folder as its author wrote it, when known (the site's editor);
    else as the export writes it. A scenario that cannot run as stored (an admin edit without actors yet) gets
    none until it can."""
    try:
        exported = scenario_folder_files(scenario_to_engine(scenario=scenario))
    except (StoredScenarioError, ValueError):
        return None
    digest = hashlib.sha256(json.dumps(exported, sort_keys=True).encode()).hexdigest()
    with transaction.atomic():  # the scenario's row locked: two saves at once number their versions in turn
        Scenario.objects.select_for_update().filter(pk=scenario.pk).first()
        last = scenario.versions.order_by("-number").first()
        if last is not None and last.digest == digest and (files is None or files == last.files):
            return last  # the same scenario, and no new text of its author's
        return ScenarioVersion.objects.create(scenario=scenario, number=(last.number + 1) if last else 1,
                                              files=exported if files is None else files, digest=digest)


def scenario_validate(*, scenario: Scenario) -> list[str]:
    """Every problem of the stored scenario (file as exported, key, what is wrong); empty when it is valid."""
    try:
        scenario_to_engine(scenario=scenario)
    except StoredScenarioError as exc:
        return [str(error) for error in exc.errors]
    return []


# ---- import -----------------------------------------------------------------------------------------------
def _store(config: EngineScenario, slug: str, *, update: bool, files: dict[str, str] | None) -> Scenario:
    with transaction.atomic():
        if not update and Scenario.objects.filter(slug=slug).exists():
            raise ScenarioSlugTaken(f"a scenario with slug {slug!r} already exists; "
                                    "ask to update it or choose another slug")
        return scenario_from_engine(config=config, slug=slug, files=files)


def scenario_import_folder(*, path: str | Path, slug: str | None = None, update: bool = False) -> Scenario:
    """Load a scenario folder and store it (slug: the folder's name unless given).

    A folder that does not load raises ScenarioLoadError and stores nothing; an existing slug raises
    ScenarioSlugTaken unless `update`."""
    config = EngineScenario.load(path)
    slug = slug or slugify(Path(path).resolve().name)[:100] or slugify(config.name)[:100] or "scenario"
    return _store(config, slug, update=update, files=authors_text(Path(path), config))


def scenario_import_zip(*, upload: IO[bytes] | bytes, slug: str | None = None, update: bool = False) -> Scenario:
    """Store the scenario folder in a zip (at its top or in one top-level folder).

    Slug: given, else the top-level folder's name, else the archive's file name, else the scenario's name.
    Raises ScenarioImportError for archives it will not open, ScenarioLoadError (naming the archive) for a
    folder that does not load, ScenarioSlugTaken for an existing slug unless `update`; nothing is stored then."""
    label = getattr(upload, "name", None) or "the uploaded archive"
    stream = io.BytesIO(upload) if isinstance(upload, bytes) else upload
    size = getattr(upload, "size", None) if not isinstance(upload, bytes) else len(upload)
    if size is not None and size > MAX_ZIP_UNPACKED_BYTES:
        raise ScenarioImportError(f"{label} is larger than {MAX_ZIP_UNPACKED_BYTES // (1024 * 1024)} MB")
    with tempfile.TemporaryDirectory(prefix="scenario-import-") as temporary:
        target = Path(temporary)
        try:
            with zipfile.ZipFile(stream) as archive:
                names = extract_safely(archive, target)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, UnicodeDecodeError) as exc:
            # UnicodeDecodeError: a member name flagged UTF-8 that is not (a damaged or crafted archive).
            raise ScenarioImportError(f"{label} is not a readable zip archive ({exc})") from None
        root = scenario_root(target, names)
        try:
            config = EngineScenario.load(root)
        except ScenarioLoadError as exc:
            inside = f"{label}/{root.name}" if root != target else label
            raise ScenarioLoadError(inside, exc.errors) from None  # the archive's name, not a temporary path
        files = authors_text(root, config)
    if not slug:
        stem = root.name if root != target else Path(str(label)).stem
        slug = slugify(stem)[:100] or slugify(config.name)[:100] or "scenario"
    return _store(config, slug, update=update, files=files)


def _library_folders() -> list[Path]:
    library = Path(settings.SCENARIO_LIBRARY_DIR)
    return sorted(path for path in library.iterdir()
                  if path.is_dir() and not path.name.startswith((".", "_"))) if library.is_dir() else []


def scenario_import_library(*, update: bool = False) -> list[Scenario]:
    """Store every bundled scenario (slug: its folder's name) and return those created or updated.

    Idempotent: existing slugs are left alone unless `update`. Every folder is loaded before anything is
    stored, so a broken one raises ScenarioLoadError with nothing stored."""
    folders = _library_folders()
    if not update:  # run_scenario calls this on every run: only read the folders not stored yet
        names = [folder.name for folder in folders]
        present = set(Scenario.objects.filter(slug__in=names).values_list("slug", flat=True))
        folders = [folder for folder in folders if folder.name not in present]
    loaded = [(folder.name, EngineScenario.load(folder), folder) for folder in folders]
    stored = []
    with transaction.atomic():
        for slug, config, folder in loaded:
            if update or not Scenario.objects.filter(slug=slug).exists():
                try:
                    stored.append(scenario_from_engine(config=config, slug=slug, files=authors_text(folder, config)))
                except IntegrityError:
                    if update:
                        raise
                    # Another process stored it since the check (two first runs at once): theirs is as good.
    return stored


# ---- export and copies ---------------------------------------------------------------------------------------
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed times: the same scenario always exports to the same bytes


def scenario_export_zip(*, scenario: Scenario) -> bytes:
    """The scenario's folder as a zip with one top-level folder named after its slug.

    Raises StoredScenarioError if the stored scenario does not validate (an export must load again)."""
    files = scenario_folder_files(scenario_to_engine(scenario=scenario))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative, text in files.items():
            info = zipfile.ZipInfo(f"{scenario.slug}/{relative}", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()


# Addresses of the scenario pages themselves (/scenarios/new/): never a scenario's slug when one is chosen here.
RESERVED_SLUGS = frozenset({"new", "check", "gallery"})


def free_slug(stem: str) -> str:
    """`stem`, or `stem-2`, `stem-3`, ...: the first no scenario has (nor a page of the scenario list)."""
    candidate, number = stem, 2
    while candidate in RESERVED_SLUGS or Scenario.objects.filter(slug=candidate).exists():
        candidate, number = f"{stem}-{number}", number + 1
    return candidate


@transaction.atomic
def scenario_duplicate(*, scenario: Scenario) -> Scenario:
    """A copy under a new slug ("<slug>-copy", "<slug>-copy-2", ...), row for row, valid or not."""
    actors = list(scenario.actors.all())
    documents = list(scenario.background_documents.all())
    copy = Scenario.objects.get(pk=scenario.pk)
    copy.pk = None
    copy.slug = free_slug(f"{scenario.slug[:95]}-copy")
    copy.name = f"{scenario.name} (copy)"[:200]
    copy.save(force_insert=True)
    for item in [*actors, *documents]:
        item.pk = None
        item.scenario = copy
    Actor.objects.bulk_create(actors)
    BackgroundDocument.objects.bulk_create(documents)
    scenario_record_version(scenario=copy)  # a copy starts its own history at version 1
    return copy
