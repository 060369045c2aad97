"""Reads a scenario folder and validates each file, reporting every problem with its file and line; the parts
become a `Scenario` in `engine.scenario.folder`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


from engine.scenario.conditions import parse_condition
from engine.scenario.errors import (
    LocatedError,
    ScenarioLoadError,
    Spot,
    closest,
)
from engine.scenario.schema import ActorConfig, BackgroundDocument, ExogenousEventsConfig, ScenarioConfig, ValidationRules
from engine.scenario.metrics import MetricsConfig

from engine.scenario.reader import ACTOR_NAME, YAML_SUFFIXES, Document, Reader, listing, locate_at


# ---- actors -----------------------------------------------------------------------------------------------
def _actor_files(reader: Reader) -> dict[str, Path]:
    folder = reader.folder("actors")
    files: dict[str, Path] = {}
    for path in listing(folder):  # sorted, so for the same stem ".yaml" is seen before ".yml" and wins
        if path.suffix in YAML_SUFFIXES and path.is_file():
            if path.stem in files:
                reader.warnings.append(f"{reader.rel(path)}: ignored because {reader.rel(files[path.stem])} also exists")
            files.setdefault(path.stem, path)
    return files


def _resolve_listed(reader: Reader, doc: Document, listed: list[Any], files: dict[str, Path]) -> list[Path]:
    """The files named by scenario.yaml's `actors:` list, in order; V1 sometimes named them by short_name."""
    by_short_name: dict[str, Path] | None = None
    chosen: list[Path] = []
    for index, item in enumerate(listed):
        if not isinstance(item, str):
            continue  # the schema reports it
        spot = locate_at(doc, ("actors", index))
        name = re.sub(r"\.ya?ml$", "", item.strip())
        suggestion = closest(name, files, cutoff=0.5)
        hint = f"did you mean '{suggestion}'?" if suggestion else None
        if not ACTOR_NAME.match(name) or ".." in name:
            reader.errors.append(LocatedError(doc.rel, spot.key_path, spot.line,
                                              f"'{item}' is not an actor file name; expected the name of a file in "
                                              "actors/ without folders, '/' or '..'", hint))
            continue
        path = files.get(name)
        if path is None:
            if by_short_name is None:
                by_short_name = {}
                for candidate in files.values():
                    peeked, _ = reader.parse(candidate, ActorConfig)
                    short = peeked.data.get("short_name") if peeked else None
                    if isinstance(short, str):
                        by_short_name.setdefault(short, candidate)
            path = by_short_name.get(name)
        if path is None:
            available = ", ".join(files) or "none"
            actors_folder = reader.rel(reader.folder("actors"))
            reader.errors.append(LocatedError(doc.rel, spot.key_path, spot.line,
                                              f"no actor file {actors_folder}/{name}.yaml (actor files: {available})",
                                              hint))
        elif path in chosen:
            reader.errors.append(LocatedError(doc.rel, spot.key_path, spot.line,
                                              f"actor '{name}' is listed more than once", "remove the repeated entry"))
        else:
            chosen.append(path)
    return chosen


def _load_actors(reader: Reader, doc: Document | None) -> list[ActorConfig]:
    files = _actor_files(reader)
    listed = doc.data.get("actors") if doc else None
    if listed is not None and not isinstance(listed, list):
        return []  # the schema says `actors` must be a list; guessing which files were meant would mislead
    paths = _resolve_listed(reader, doc, listed, files) if doc and listed else [files[stem] for stem in sorted(files)]
    if not paths and not listed:
        reader.errors.append(LocatedError("actors", "", None, "the scenario has no actors",
                                          "add one YAML file per actor in actors/, e.g. actors/mayor.yaml"))
    actors: list[ActorConfig] = []
    owners: dict[str, str] = {}
    for path in paths:
        actor = reader.load(path, ActorConfig, defaults={"short_name": path.stem})  # older files named it so
        if actor is None:
            continue
        rel = reader.rel(path)
        if actor.short_name in owners:
            document, _ = reader.parse(path, ActorConfig)
            spot = locate_at(document, ("short_name",)) if document else Spot("short_name", None, ())
            reader.errors.append(LocatedError(rel, spot.key_path, spot.line,
                                              f"short_name '{actor.short_name}' is already used by "
                                              f"{owners[actor.short_name]}; each actor needs its own",
                                              "give one of the two actors a different short_name"))
            continue
        owners[actor.short_name] = rel
        actors.append(actor)
    return actors


# ---- the folder -------------------------------------------------------------------------------------------
def _folder_problem(folder: Path) -> LocatedError | None:
    if folder.is_dir():
        return None
    if folder.exists():
        return LocatedError("", "", None, f"{folder} is a file, not a scenario folder",
                            f"pass the folder that holds scenario.yaml, e.g. {folder.parent}")
    siblings = [entry.name for entry in listing(folder.parent) if entry.is_dir()]
    match = closest(folder.name, siblings, cutoff=0.6)
    return LocatedError("", "", None, f"the folder {folder} does not exist",
                        f"did you mean '{match}'?" if match else None)


DEFINITION = "definition"  # V1 sometimes kept a scenario's files in <scenario>/definition/


def _has_scenario_file(folder: Path) -> bool:
    return any((folder / f"scenario{suffix}").is_file() for suffix in YAML_SUFFIXES)


def _scenario_home(folder: Path) -> tuple[Path, Path]:
    """(the scenario folder, the folder holding scenario.yaml).

    Usually both are the folder given. In V1's layout the files sit in <scenario>/definition/: given the
    scenario folder or the definition/ folder itself, files are read from definition/, and the metrics,
    validation rules, exogenous events, actors/ or background/ it lacks from the scenario folder."""
    if not _has_scenario_file(folder) and _has_scenario_file(folder / DEFINITION):
        return folder, folder / DEFINITION
    if folder.name == DEFINITION and _has_scenario_file(folder) and folder.parent != folder:
        return folder.parent, folder
    return folder, folder


def v1_public_statements(config: ScenarioConfig) -> ScenarioConfig:
    """A scenario.yaml without `features` is V1's form, and V1 had no public statements: its actors talked in
    bilateral and coalition conversations only. So such a folder plays as it did in V1, wherever it is run,
    unless it asks for them (`enable_public_statements: true`, or 'public' in `communication_types`)."""
    communications = config.features.communications
    if "public" in communications.model_fields_set:
        return config
    features = config.features.model_copy(update={"communications": communications.model_copy(update={"public": False})})
    return config.model_copy(update={"features": features})


def _check_condition_names(reader: Reader, doc: Document, text: str, metrics: MetricsConfig | None) -> None:
    """An end condition reads the scenario's metrics (those of the world, one value a turn) and `turns`."""
    known = {m.name for m in (metrics.definitions if metrics else []) if not m.actor_specific}
    unknown = sorted(parse_condition(text).names - known)
    if not unknown:
        return
    written = ("scenario_length", "condition") if isinstance(doc.data.get("scenario_length"), dict) else ("end_condition",)
    spot = locate_at(doc, written)
    names = ", ".join(sorted(known)) or "none (metrics.yaml defines none)"
    suggestion = closest(unknown[0], known, cutoff=0.6)
    reader.errors.append(LocatedError(doc.rel, spot.key_path, spot.line,
                                      f"the end condition reads {', '.join(map(repr, unknown))}, which is no metric of "
                                      f"the world (metrics: {names}; and `turns`)",
                                      f"did you mean '{suggestion}'?" if suggestion else None))


def _check_player_seats(reader: Reader, doc: Document, config: ScenarioConfig, actors: list[ActorConfig]) -> None:
    """The seats `roles.players` gives groups are the scenario's actors."""
    known = [actor.short_name for actor in actors]
    for group, seats in config.roles.players.items():
        for seat in seats:
            if seat in known:
                continue
            spot = locate_at(doc, ("roles", "players", group))
            suggestion = closest(seat, known, cutoff=0.6)
            reader.errors.append(LocatedError(doc.rel, spot.key_path, spot.line,
                                              f"group {group!r} is given seat {seat!r}, which is no actor of the "
                                              f"scenario (actors: {', '.join(known)})",
                                              f"did you mean '{suggestion}'?" if suggestion else None))


def read_scenario_folder(path: str | Path) -> dict[str, Any]:
    """Read and validate every file of a scenario folder: the parts of its `Scenario`, by field (see
    `engine.scenario.folder`); raise ScenarioLoadError listing all problems."""
    try:
        folder = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # e.g. a NUL byte in the path, or a symlink loop
        raise ScenarioLoadError(str(path), [LocatedError("", "", None, f"cannot use this path: {exc}")]) from None
    problem = _folder_problem(folder)
    if problem:
        raise ScenarioLoadError(str(folder), [problem])
    root, base = _scenario_home(folder)
    reader = Reader(root, base)
    folder = root
    if base == root and _has_scenario_file(root / DEFINITION):
        reader.warnings.append(f"{DEFINITION}/: not loaded, as this folder has its own scenario.yaml; pass "
                               f"{root / DEFINITION} to load the one in {DEFINITION}/")

    config_path = reader.find("scenario")
    doc: Document | None = None
    config: ScenarioConfig | None = None
    if config_path is None:
        others = [entry.name for entry in listing(folder) if entry.suffix in YAML_SUFFIXES]
        match = closest("scenario.yaml", others, cutoff=0.6)
        reader.errors.append(LocatedError("scenario.yaml", "", None,
                                          f"the folder has no scenario.yaml (nor {DEFINITION}/scenario.yaml); every "
                                          "scenario needs one (with name, initial_world_state and turns)",
                                          f"did you mean '{match}'? rename it to scenario.yaml" if match else None))
    else:
        doc, problems = reader.parse(config_path, ScenarioConfig)
        reader.errors.extend(problems)
        config = reader.validate(doc, ScenarioConfig) if doc else None
        if config is not None and doc is not None and "features" not in doc.data:
            config = v1_public_statements(config)

    actors = _load_actors(reader, doc)
    optional: dict[str, Any] = {}
    for stem, model in (("metrics", MetricsConfig), ("validation-rules", ValidationRules),
                        ("exogenous-events", ExogenousEventsConfig)):
        found = reader.find(stem)
        optional[stem] = reader.load(found, model) if found else None

    if config is not None and doc is not None and config.end_condition is not None:
        _check_condition_names(reader, doc, config.end_condition, optional["metrics"])
    if config is not None and doc is not None and actors:
        _check_player_seats(reader, doc, config, actors)

    background: list[BackgroundDocument] = []
    for document_path in listing(reader.folder("background")):
        if document_path.suffix == ".md" and document_path.is_file():
            problems = []
            text = reader.read_text(document_path, problems)
            reader.errors.extend(problems)
            if text is not None:
                background.append(BackgroundDocument(name=document_path.stem, text=text))

    if reader.errors or config is None:
        # Group by file (in the order files were read) and sort by line, so the report reads top to bottom.
        files = list(dict.fromkeys(error.file for error in reader.errors))
        ordered = sorted(reader.errors, key=lambda error: (files.index(error.file), error.line or 0))
        raise ScenarioLoadError(str(folder), ordered)
    return {
        "config": config,
        "actors": actors,
        "metrics": optional["metrics"],
        "validation": optional["validation-rules"],
        "exogenous_events": optional["exogenous-events"],
        "background": background,
        "source": str(base),
        "warnings": reader.warnings,
    }
