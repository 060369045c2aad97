"""Plain factory functions for stored scenarios and the scenario folders and zips the tests import."""

from __future__ import annotations

import io
import textwrap
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scenarios.models import Actor, BackgroundDocument, Scenario

_counter = iter(range(1, 1_000_000))


def make_scenario(*, actors: int = 2, **fields: Any) -> Scenario:
    """A valid stored scenario with `actors` actors and one background document."""
    number = next(_counter)
    values: dict[str, Any] = {
        "name": f"Harbour Dispute {number}",
        "slug": f"harbour-{number}",
        "description": "Two towns argue over a harbour.",
        "initial_world_state": "The harbour is silted up.\n",
        "turns": 3,
        "communication": {"enabled": True, "max_per_turn": 2},
    }
    values.update(fields)
    scenario = Scenario.objects.create(**values)
    for position in range(actors):
        make_actor(scenario=scenario, position=position)
    BackgroundDocument.objects.create(scenario=scenario, name="history", text="The harbour opened in 1820.\n")
    return scenario


def make_actor(*, scenario: Scenario, position: int = 0, **fields: Any) -> Actor:
    values: dict[str, Any] = {
        "name": f"Town {position + 1}",
        "short_name": f"town-{position + 1}",
        "file_stem": f"town-{position + 1}",
        "goals": ["Reopen the harbour"],
        "constraints": ["Small budget"],
        "information_access": {"private": ["The mayor owns a dredger"]},
    }
    values.update(fields)
    return Actor.objects.create(scenario=scenario, position=position, **values)


SCENARIO_YAML = """\
name: Harbour Dispute
description: Two towns argue over a harbour.
initial_world_state: |
  The harbour is silted up.
turns: 4
actors:
  - port-authority
  - fishers
harbour_master: Ingrid  # an unknown key, kept
"""
PORT_YAML = """\
name: Port Authority
short_name: port
goals: [Reopen the harbour]
information_access:
  private: [The dredger is broken]
"""
FISHERS_YAML = """\
name: Fishers' Union
short_name: fishers
goals: Keep fishing rights
decision_style: cautious
boats: 40
"""
METRICS_YAML = """\
metrics:
  boats_at_sea:
    extraction_method: regex
    pattern: '(\\d+) boats'
"""


def scenario_files(**overrides: str | bytes) -> dict[str, str | bytes]:
    """The files of a small valid folder (V1 dict-form metrics, unknown keys), relative path -> content."""
    files: dict[str, str | bytes] = {
        "scenario.yaml": SCENARIO_YAML,
        "actors/port-authority.yaml": PORT_YAML,
        "actors/fishers.yaml": FISHERS_YAML,
        "metrics.yaml": METRICS_YAML,
        "background/geography.md": "Two towns, one bay.\n",
    }
    files.update(overrides)
    return files


def write_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else textwrap.dedent(content).encode())
    return root


def make_zip(files: dict[str, str | bytes], *, prefix: str = "harbour/") -> bytes:
    """A zip of `files`, each under `prefix` (use "" for files at the archive's top)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative, content in files.items():
            archive.writestr(prefix + relative, content)
    return buffer.getvalue()


def make_zip_with(names: Iterable[str], *, files: dict[str, str | bytes] | None = None) -> bytes:
    """A zip of a valid folder under harbour/ (`files`, else scenario_files()), then a member for each of `names`
    in that order (a name may come twice), each a line of text."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of a name written twice, one of the shapes tested
        for relative, content in (scenario_files() if files is None else files).items():
            archive.writestr(f"harbour/{relative}", content)
        for name in names:
            archive.writestr(zipfile.ZipInfo(name), "" if name.endswith("/") else "x\n")
    return buffer.getvalue()


# Members no import may unpack beside the folder in harbour/: shape -> (the members, the one its refusal names,
# the other words of the refusal).
UNPACKABLE: dict[str, tuple[list[str], str, str]] = {
    "name-too-long": (["harbour/background/" + "n" * 256 + ".md"], "harbour/background/" + "n" * 256 + ".md",
                      "has a file or folder name of 259 bytes; shorten it to at most 255 bytes"),
    "name-too-long-in-utf8": (["harbour/background/" + "é" * 128 + ".md"], "harbour/background/" + "é" * 128 + ".md",
                              "has a file or folder name of 259 bytes"),
    "path-too-long": (["harbour/" + "/".join(["p" * 200] * 6) + "/x.md"],
                      "harbour/" + "/".join(["p" * 200] * 6) + "/x.md",
                      "is a path of 1218 bytes; keep paths within 1024 bytes"),
    "too-deep": (["harbour/" + "d/" * 40 + "x.md"], "harbour/" + "d/" * 40 + "x.md",
                 "is 41 folders deep; keep files within 32 folders"),
    "file-then-folder": (["harbour/notes", "harbour/notes/a.md"], "harbour/notes",
                         "is a file, but 'harbour/notes/a.md' needs a folder of that name; rename one of them"),
    "folder-then-file": (["harbour/notes/a.md", "harbour/notes"], "harbour/notes",
                         "is a file, but 'harbour/notes/a.md' needs a folder of that name; rename one of them"),
    "file-where-the-actors-folder-is": (["harbour/actors"], "harbour/actors", "is a file, but 'harbour/actors/"),
    "same-name-twice": (["harbour/notes.md", "harbour/notes.md"], "harbour/notes.md",
                        "is in the archive twice; keep one of them"),
    "folder-and-file-of-one-name": (["harbour/notes/", "harbour/notes"], "harbour/notes",
                                    "is in the archive twice (also as 'harbour/notes/'); keep one of them"),
    "control-character": (["harbour/background/a\nb.md"], "harbour/background/a\nb.md",
                          "has a control character in its name; rename it"),
    "no-name": (["."], ".", "names no file or folder; leave it out"),
}
