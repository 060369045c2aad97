"""Writes a Scenario back out as a scenario folder that loads to an equal Scenario (unknown keys included)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from engine.scenario.folder import Scenario

_YAML_SUFFIX = re.compile(r"\.ya?ml$")


class _BlockDumper(yaml.SafeDumper):
    """Safe YAML that writes multi-line text as `|` blocks, so prompts and world states stay readable."""


# With allow_unicode PyYAML writes these unescaped except in double quotes, and reading turns them into
# plain line breaks or spaces: only double quotes keep them.
_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029", "\ufeff")


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted scalar by itself when a block cannot hold the text exactly.
    style = "|" if "\n" in value else None
    if any(char in value for char in _UNICODE_BREAKS):
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_text)


def _plain(value: Any) -> Any:
    """Tuples (turn ranges) become lists: safe YAML has no tuple. Dates and other YAML scalars stay as they are."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _dump(model: BaseModel) -> str:
    # Only what was set: defaults are not written, so an exported file looks like the one that was loaded.
    data = _plain(model.model_dump(mode="python", exclude_unset=True))
    return yaml.dump(data, Dumper=_BlockDumper, default_flow_style=False, sort_keys=False, allow_unicode=True,
                     width=100)


def actor_file_stems(scenario: Scenario) -> list[str]:
    """The actors/<stem>.yaml name of each actor, in the scenario's order.

    Listed actors keep their listed name (V1 sometimes listed short names: a file named after the short name
    is found first). Unlisted actors load in file-name order, so their files are named to keep that order."""
    listed = [_YAML_SUFFIX.sub("", name.strip()) for name in scenario.config.actors]
    if listed:
        if len(listed) != len(scenario.actors):
            raise ValueError(f"scenario.yaml lists {len(listed)} actors but the scenario has {len(scenario.actors)}")
        return listed
    stems = [actor.short_name for actor in scenario.actors]
    if sorted(f"{stem}.yaml" for stem in stems) == [f"{stem}.yaml" for stem in stems]:
        return stems
    width = len(str(len(stems)))
    return [f"{index:0{width}d}-{stem}" for index, stem in enumerate(stems, start=1)]


def scenario_folder_files(scenario: Scenario) -> dict[str, str]:
    """Every file of the scenario's folder: relative path -> text."""
    files = {"scenario.yaml": _dump(scenario.config)}
    for stem, actor in zip(actor_file_stems(scenario), scenario.actors, strict=True):
        files[f"actors/{stem}.yaml"] = _dump(actor)
    for name, part in (("metrics.yaml", scenario.metrics), ("validation-rules.yaml", scenario.validation),
                       ("exogenous-events.yaml", scenario.exogenous_events)):
        if part is not None:
            files[name] = _dump(part)
    for document in scenario.background:
        if not document.name or "/" in document.name or "\\" in document.name or document.name in (".", ".."):
            raise ValueError(f"background document name {document.name!r} cannot be a file name")
        files[f"background/{document.name}.md"] = document.text
    return files


def export_scenario_folder(scenario: Scenario, folder: Path) -> Path:
    """Write the scenario's folder (created if needed; files of the same names are replaced)."""
    folder = Path(folder)
    for relative, text in scenario_folder_files(scenario).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))  # bytes: background text keeps its own line endings
    return folder


__all__ = ["actor_file_stems", "export_scenario_folder", "scenario_folder_files"]
