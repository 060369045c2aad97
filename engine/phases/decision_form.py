"""A decision's form: the fields a model or a person in a seat fills in, and the prompts that ask for them.

The decision phase and a human seat (`engine.seats`) share them, so a person sees what a model would and is held
to the same rules.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, ValidationError

from engine.llm.parsing import NonBlankText
from engine.phases.prompts import actor_system_prompt, situation
from engine.scenario.folder import Scenario
from engine.scenario.schema import ActorConfig
from engine.state import ScenarioState


class DecisionOutput(BaseModel):
    """What a model (or a human in the seat) must return for a decision."""

    long_term_goals: list[NonBlankText] = Field(min_length=1, max_length=8, description="Goals for the whole scenario.")
    short_term_priorities: list[NonBlankText] = Field(min_length=1, max_length=8, description="Priorities for this turn.")
    reasoning: NonBlankText = Field(description="Why this action, given the situation and messages.")
    action: NonBlankText = Field(description="What the actor does this turn, concretely.")

    @classmethod
    def from_markdown(cls, text: str) -> DecisionOutput | None:
        """V1's answer format: **LONG-TERM GOALS:** / **SHORT-TERM PRIORITIES:** / **REASONING:** / **ACTION:**
        sections. Weak local models often manage this when they cannot manage JSON."""
        sections: dict[str, str] = {}
        for match in _V1_SECTION.finditer(text):
            sections[match.group(1).upper()] = match.group(2).strip()
        items = lambda body: [line.lstrip("-*• ").strip() for line in body.splitlines() if line.strip()]  # noqa: E731
        try:
            return cls(
                long_term_goals=items(sections.get("LONG-TERM GOALS", "")),
                short_term_priorities=items(sections.get("SHORT-TERM PRIORITIES", "")),
                reasoning=sections.get("REASONING", ""),
                action=sections.get("ACTION", ""),
            )
        except ValidationError:
            return None


_V1_SECTION = re.compile(
    r"^\W*(LONG-TERM GOALS|SHORT-TERM PRIORITIES|REASONING|ACTION)\W*:?\W*$\n?(.*?)(?=^\W*(?:LONG-TERM GOALS|SHORT-TERM PRIORITIES|REASONING|ACTION)\W*:?\W*$|\Z)",
    re.I | re.M | re.S,
)


DECISION_INSTRUCTIONS = (
    "Decide what you do this turn. Answer with a JSON object with keys `long_term_goals` (list of text), "
    "`short_term_priorities` (list of text), `reasoning` (text) and `action` (text: concrete, public "
    "steps you take this turn, in your own voice)."
)


def decision_prompts(state: ScenarioState, scenario: Scenario, actor: ActorConfig, *, max_turns: int | None) -> tuple[str, str]:
    """(system, user) for an actor's decision: what a model reads, and what a human in the seat is shown."""
    user = f"{situation(state, scenario, actor.short_name, max_turns=max_turns)}\n\n{DECISION_INSTRUCTIONS}"
    return actor_system_prompt(scenario, actor), user
