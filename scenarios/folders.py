"""A scenario folder's files between the file system and the database: loading files (as the site's editor
holds them) through the engine from a temporary folder, and reading a folder's text as its author wrote it."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from engine.scenario.errors import ScenarioLoadError
from engine.scenario.export import scenario_folder_files
from engine.scenario.folder import Scenario as EngineScenario
from scenarios.archives import ScenarioImportError

# The files the engine reads from a folder in its own layout.
READ_FILES = re.compile(r"^(?:scenario|metrics|validation-rules|exogenous-events)\.yaml$"
                        r"|^actors/[^./][^/]*\.ya?ml$|^background/[^./][^/]*\.md$")


def load_files(files: dict[str, str], *, label: str) -> EngineScenario:
    """The scenario the files make, loaded by the engine from a temporary folder; raises ScenarioLoadError naming
    `label` (every problem with its file, key and line), ScenarioImportError for a path outside the folder."""
    with tempfile.TemporaryDirectory(prefix="scenario-edit-") as temporary:
        root = Path(temporary).resolve()
        for relative, text in files.items():
            path = (root / relative).resolve()
            if root not in path.parents:  # names come from a form: never a file elsewhere
                raise ScenarioImportError(f"{relative!r} is not a file of the scenario's folder")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text.replace("\r\n", "\n"), encoding="utf-8")
            except (OSError, ValueError) as exc:  # a name the file system refuses, a file where a folder must go
                raise ScenarioImportError(f"{relative[:80]!r} cannot be a file of the scenario's folder ({exc})") from None
        try:
            return EngineScenario.load(root)
        except ScenarioLoadError as exc:
            raise ScenarioLoadError(label, exc.errors) from None


def authors_text(folder: Path, config: EngineScenario) -> dict[str, str] | None:
    """The folder's files as its author wrote them (comments, order, quoting), to keep as the version a site
    editor opens: only when they make exactly the scenario loaded from the folder (the engine's own layout, no
    file it would skip); else None, and the export's text is kept instead."""
    files: dict[str, str] = {}
    others = False  # a file the editor would not keep (a V1 definition/ folder, a .yml name, hidden, notes)
    try:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder).as_posix()
            if not path.is_file():
                continue
            if READ_FILES.match(relative):
                files[relative] = path.read_text(encoding="utf-8")
            else:
                others = True
    except (OSError, UnicodeDecodeError):
        return None
    if "scenario.yaml" not in files:
        return None
    if not others and not any("\r" in text for text in files.values()):
        return files  # the folder is these files, byte for byte: they load as it did
    files = {path: text.replace("\r\n", "\n") for path, text in files.items()}
    try:
        same = scenario_folder_files(load_files(files, label=folder.name)) == scenario_folder_files(config)
    except (ScenarioLoadError, ScenarioImportError, ValueError):
        return None
    return files if same else None
