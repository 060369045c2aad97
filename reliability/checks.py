"""Checks several scenarios make of a run they have played: each a problem found, or "" when it held."""

from __future__ import annotations

from runs.models import Decision, Run, Turn


def turns_and_decisions_once(run: Run, turns: int) -> str:
    """Turns 0..`turns` stored once each, and every actor's decision of every turn once."""
    stored = list(Turn.objects.filter(run=run).order_by("turn").values_list("turn", flat=True))
    if stored != list(range(turns + 1)):
        return f"turns stored {stored}, expected each of 0..{turns} once"
    decisions = list(Decision.objects.filter(run=run).values_list("turn", "actor"))
    expected = len(run.actors) * turns
    if len(decisions) != expected or len(set(decisions)) != expected:
        return f"{len(decisions)} decisions stored ({len(set(decisions))} distinct), expected {expected}"
    return ""
