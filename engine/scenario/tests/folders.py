"""Scenario folders written by the tests: small, original, valid unless a test breaks one."""

from __future__ import annotations
import textwrap
from pathlib import Path
import pytest
from engine.scenario import LocatedError, ScenarioLoadError, load_scenario_folder


SCENARIO = """\
name: Harbour Dispute
description: Two towns argue over a harbour.
initial_world_state: |
  The harbour is silted up.
turns: 4
turn_duration: 1 week
actors:
  - port-authority
  - fishers
features:
  communications:
    max_per_turn: 3
"""
PORT = """\
name: Port Authority
short_name: port
goals:
  - Reopen the harbour
constraints: |
  - Small budget
  - Must consult the towns
"""
FISHERS = """\
name: Fishers' Union
short_name: fishers
goals: Keep fishing rights
decision_style: cautious
"""
METRICS_LIST = """\
metrics:
  - name: dredging_budget
    extraction:
      type: pattern
      pattern: '(\\d+) dredges'
  - name: tension
    extraction:
      type: keyword
      keywords: [strike, blockade]
"""
METRICS_DICT = """\
metrics:
  boats_at_sea:
    description: Boats fishing this turn
    extraction_method: regex
    pattern: '(\\d+) boats'
  mood:
    extraction_method: manual
"""
RULES = """\
validation_model: openai/gpt-4o-mini
checks:
  goal_consistency:
    severity: HIGH
    description: Actors follow their goals.
severity_thresholds:
  high: halt
"""
EVENTS = """\
random_events:
  - name: storm
    probability: 0.2
    turn_range: [1, 3]
    effect: A storm closes the harbour for a week.
scheduled_events:
  - name: election
    schedule:
      turns: [3]
    effect: The towns elect new councils.
"""


def make_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write a scenario folder; text values are dedented so fixtures can be indented in the test body."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


def valid_files(**overrides: str | bytes) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {
        "scenario.yaml": SCENARIO,
        "actors/port-authority.yaml": PORT,
        "actors/fishers.yaml": FISHERS,
    }
    files.update(overrides)
    return files


def load_errors(folder: Path) -> tuple[LocatedError, ...]:
    with pytest.raises(ScenarioLoadError) as caught:
        load_scenario_folder(folder)
    return caught.value.errors


def only_error(folder: Path) -> LocatedError:
    errors = load_errors(folder)
    assert len(errors) == 1, errors
    return errors[0]
