"""The standard turn: the engine's phases in the order they play."""

from __future__ import annotations

from engine.phases.base import Phase
from engine.phases.communication import CommunicationPhase
from engine.phases.decision import DecisionPhase
from engine.phases.metrics import MetricsPhase
from engine.phases.summary import SummaryPhase
from engine.phases.validation import ValidationPhase
from engine.phases.world_update import WorldUpdatePhase


def standard_phases() -> list[Phase]:
    """The phases of a turn, in order. The summary of turns older than the context window comes first, so
    every prompt of the turn reads the same one."""
    return [SummaryPhase(), CommunicationPhase(), DecisionPhase(), WorldUpdatePhase(), MetricsPhase(), ValidationPhase()]
