"""The seat desk of a run a worker executes: who holds each seat, read from the run's row at every turn, so a seat
taken over or handed back on the run's page is honoured by the next turn."""

from __future__ import annotations

from asgiref.sync import sync_to_async

from engine.seats import HumanDecision, SeatView
from engine.state import ScenarioState
from runs.models import Run


class StoredSeats:
    """The desk of a run executed by a worker: control as the run's row says now; decisions come later."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id

    async def control(self, state: ScenarioState, actor: str) -> str:
        actors = await sync_to_async(_actors, thread_sensitive=True)(self.run_id)
        return actors.get(actor, state.actor(actor).control)

    async def decision(self, view: SeatView) -> HumanDecision | None:
        return None


def _actors(run_id: int) -> dict[str, str]:
    return {a["short_name"]: a.get("control", "ai") for a in Run.objects.values_list("actors", flat=True).get(pk=run_id)}
