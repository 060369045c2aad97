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


# ---- V1's forms: the names and layouts the original program read --------------------------------------------
V1_SCENARIO = """\
name: Canal Tolls
description: Two boroughs share one canal and argue over its tolls.
system_prompt: You play one borough in a dispute over canal tolls.
initial_world_state: |
  The lock gates are failing and the tolls are frozen.
num_turns: 5
turn_duration: 2 weeks
world_state_model: openai/gpt-4o-mini
context_window: 2
enable_bilateral_communication: true
enable_coalition_formation: false
max_communications_per_turn: 1
actors:
  - east
  - west
black_swans:
  - name: flood
    description: The canal bursts its banks.
    probability: 0.1
author: Canal Office
"""
V1_EAST = """\
name: East Borough
short_name: east
model: openai/gpt-4o
system_prompt: You speak for the east bank.
goals: |
  - Lower the tolls
  - Repair the gates
constraints:
  - Cannot raise local taxes
expertise:
  engineering: expert
decision_making_style: Careful and slow
control: human
information_access:
  private:
    - Last year's toll receipts
private_information: The east gate will fail within a month.
favourite_boat: The Heron
"""
V1_WEST = """\
name: West Borough
short_name: west
llm_model: openai/gpt-4o-mini
goals: [Keep the tolls]
decision_style: bold
private_information:
  - Holds the bridge repair contract
  - Owes the east borough money
"""
V1_METRICS_TYPED = """\
scenario_name: Canal Tolls
metrics:
  toll_pence:
    description: The toll agreed, in pence
    type: integer
    extraction_method: regex
    pattern: 'toll of (\\d+) pence'
  dredged_volume:
    type: float
    extraction_method: regex
    pattern: '(\\d+(?:\\.\\d+)?\\^\\d+) cubic'
  gates_repaired:
    type: boolean
    extraction_method: regex
    pattern: 'gates? (?:were|was) repaired'
  stance:
    pattern: '(open|closed) canal'
  mood:
    type: string
    extraction_method: manual
    actor_specific: true
    actor: East Borough
"""
V1_METRICS_LIST = """\
metrics:
  - name: goodwill
    description: Goodwill between the boroughs
    type: continuous
    range: [0, 10]
    extraction:
      type: llm
      prompt: Rate the goodwill between the boroughs from 0 to 10.
    thresholds:
      warning: 3
      critical: 1
      direction: below
  - name: toll_talks
    type: categorical
    categories: [stalled, moving, settled]
    extraction:
      type: keyword
      keywords: [toll]
  - name: barges
    extraction:
      type: pattern
      pattern: '(\\d+) barges'
  - name: ombudsman_view
    extraction:
      type: manual
"""
V1_RULES = """\
validation_model: openai/gpt-4o-mini
checks:
  actor_decision_consistency:
    enabled: true
    prompt_template: |
      PROFILE:
      {actor_profile}
      WORLD:
      {world_state}
      DECISION: {actor_reasoning} / {actor_action}
  world_state_coherence:
    enabled: false
    prompt_template: "Before: {previous_world_state} After: {new_world_state}"
run_after_each_turn: true
generate_turn_reports: true
"""
V1_EVENTS_LIST = """\
exogenous_events:
  - type: trend
    name: Silt builds up
    description: Silt narrows the channel a little more.
    turn_range: [1, 6]
    frequency: 2
  - type: scheduled
    turn: 3
    name: Borough elections
    description: Both boroughs elect new councils.
    once: true
  - type: random
    name: Barge strike
    description: Barge crews strike for a week.
    probability: 0.2
    turn_range: [2, 5]
    once: false
  - type: conditional
    name: Canal closes
    description: The canal authority closes the canal to traffic.
    conditions:
      toll_pence: ">= 40"
      goodwill: "< 2"
    turn_range: [2, 9]
"""
