"""A V1-format scenario folder for tests: three delegations, three turns, every V1 file kind (engine, V1 command line
and site tests share it)."""

from __future__ import annotations

import textwrap
from pathlib import Path

SCENARIO = """\
name: River Compact
description: Three river states share one dwindling river.
system_prompt: You are a negotiator in a drought. Be concrete.
initial_world_state: |
  # River Compact - Season 1
  The river runs low. Upstream dams hold back water; downstream farms are failing.
  A compact on sharing the water is on the table, with a monitoring board and penalties.
num_turns: 3
turn_duration: 1 season
world_state_model: openai/gpt-4o-mini
context_window: 2
actors:
  - highland
  - valley
  - delta
black_swans:
  - a levee breaks
"""
ACTORS = {
    "highland": """\
name: Highland Republic
short_name: highland
model: openai/gpt-4o-mini
system_prompt: You speak for the upstream state that owns the dams.
goals: |
  - Keep control of the dams
  - Earn fees for stored water
constraints:
  - Farmers upstream vote in spring
expertise:
  hydrology: expert
decision_style: patient and transactional
""",
    "valley": """\
name: Valley Federation
short_name: valley
llm_model: openai/gpt-4o-mini
system_prompt: You speak for the midstream farming state.
goals:
  - Guarantee summer flow for irrigation
constraints: Cannot pay fees this year
expertise: agronomy and water law
decision_making_style: cautious
private_information: Its reservoirs are nearly empty.
""",
    "delta": """\
name: Delta Cities/Ports
short_name: delta
llm_model: openai/gpt-4o-mini
system_prompt: You speak for the coastal cities at the river mouth.
goals: A binding compact with penalties
constraints: []
control: ai
""",
}
METRICS_DICT = """\
metrics:
  flow_share:
    description: Share of flow promised downstream, in percent
    extraction_method: regex
    pattern: '(\\d+)\\s*(?:%|percent)'
    type: integer
  compact_signed:
    description: Whether the compact was signed
    extraction_method: regex
    pattern: '(compact)'
    type: boolean
  mood:
    extraction_method: manual
"""
METRICS_LIST = """\
metrics:
  - name: flow_share
    description: Share of flow promised downstream
    type: continuous
    range: [0, 100]
    unit: percent
    extraction:
      type: pattern
      pattern: '(\\d+)\\s*(?:%|percent)'
  - name: tension
    extraction:
      type: keyword
      keywords: [drought, dam, penalty]
      scoring: count
    thresholds:
      warning: 50
"""
RULES = """\
validation_model: openai/gpt-4o-mini
checks:
  actor_decision_consistency:
    enabled: true
    prompt_template: |
      Does this decision fit the actor?
      {actor_profile}
      Reasoning: {actor_reasoning}
      Action: {actor_action}
  world_state_coherence:
    enabled: true
"""
EVENTS = """\
scheduled_events:
  - name: heatwave
    description: A heatwave
    schedule:
      turns: [2]
    effect: A heatwave doubles evaporation from every reservoir.
random_events:
  - name: storm
    probability: 0.5
    effect: A storm refills the upper lakes.
"""


def write_v1_scenario(root: Path, *, metrics: str = "dict", name: str = "river-compact") -> Path:
    """The folder, with dict- or list-form metrics.yaml."""
    folder = root / name
    (folder / "actors").mkdir(parents=True)
    (folder / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    for short_name, text in ACTORS.items():
        (folder / "actors" / f"{short_name}.yaml").write_text(text, encoding="utf-8")
    (folder / "metrics.yaml").write_text(METRICS_DICT if metrics == "dict" else METRICS_LIST, encoding="utf-8")
    (folder / "validation-rules.yaml").write_text(RULES, encoding="utf-8")
    (folder / "exogenous-events.yaml").write_text(EVENTS, encoding="utf-8")
    (folder / "background").mkdir()
    (folder / "background" / "treaty.md").write_text(textwrap.dedent("""\
        # The 1950 treaty
        Each state keeps what falls on its land.
        """), encoding="utf-8")
    return folder
