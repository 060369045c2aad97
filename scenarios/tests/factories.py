"""Plain factory functions for stored scenarios and the scenario folders and zips the tests import."""

from __future__ import annotations

import io
import textwrap
import zipfile
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
