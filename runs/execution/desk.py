"""The seat desk of a stored run: who holds each seat, read from the run's row at every turn (a seat taken over
or handed back on the run's page is honoured by the next turn), and the answers people gave on its pages."""

from __future__ import annotations

from asgiref.sync import sync_to_async

from engine.seats import HumanDecision, SeatView
from engine.state import ScenarioState
from runs.execution.store import human_decision_for
from runs.models import Run


class StoredSeats:
    """The desk of a run executed here or by a worker: control as the run's row says now; a person's decision
    once they have given it (else None, and the run waits for it, stored)."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._read: tuple[ScenarioState, dict[str, str]] | None = None

    async def control(self, state: ScenarioState, actor: str) -> str:
        # A phase asks for every actor with the same state: one read of the row serves them all.
        if self._read is None or self._read[0] is not state:
            self._read = state, await sync_to_async(_actors, thread_sensitive=True)(self.run_id)
        return self._read[1].get(actor, state.actor(actor).control)

    async def decision(self, view: SeatView) -> HumanDecision | None:
        return await sync_to_async(human_decision_for, thread_sensitive=True)(self.run_id, view.turn, view.actor)


def _actors(run_id: int) -> dict[str, str]:
    return {a["short_name"]: a.get("control", "ai") for a in Run.objects.values_list("actors", flat=True).get(pk=run_id)}
