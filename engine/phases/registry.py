"""A turn's phases: keyed by `PhaseType`, run in that type's order, the engine's `Phase`s and the V2 document's
`PhaseService`s alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from engine.phases.base import Phase, PhaseService
from engine.state import PhaseType

AnyPhase = Phase | PhaseService


def in_turn_order(phases: Iterable[Phase] | Mapping[PhaseType, AnyPhase]) -> dict[PhaseType, AnyPhase]:
    """Phases by type in the order a turn runs them; `Phase`s given as a list are keyed by their `name`."""
    pairs = phases.items() if isinstance(phases, Mapping) else ((phase.name, phase) for phase in phases)
    keyed = {PhaseType(kind): phase for kind, phase in pairs}
    return {kind: keyed[kind] for kind in PhaseType if kind in keyed}


def typed_phase(phase_or_type: AnyPhase | PhaseType | str, service: AnyPhase | None = None) -> tuple[PhaseType, AnyPhase]:
    """(type, phase) from `(PhaseType.X, service)` or from a `Phase` alone (its `name` is its type)."""
    if service is None:
        kind, service = getattr(phase_or_type, "name", None), phase_or_type  # type: ignore[assignment]
        if not isinstance(kind, PhaseType):
            raise ValueError("register_phase(phase) needs a Phase with a PhaseType `name`; "
                             "give the type of a PhaseService: register_phase(PhaseType.X, service)")
    else:
        kind = PhaseType(phase_or_type)  # type: ignore[arg-type]
    if not callable(getattr(service, "run", None)) and not callable(getattr(service, "execute", None)):
        raise TypeError(f"{service!r} is no phase: a phase has `async execute(state)` or `async run(state, ctx)`")
    return kind, service
