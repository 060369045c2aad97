"""Persistence: where a run's state goes after every turn and when it stops.

The engine only knows the `StatePersistence` protocol. It ships `FilesystemPersistence` (state JSON plus
Markdown views in a folder); the Django side implements the same protocol with the ORM.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from engine.events import EventBus, EventType
from engine.state import ScenarioState, ScenarioStatus
from engine.views.markdown import run_views


@runtime_checkable
class StatePersistence(Protocol):
    async def save(self, state: ScenarioState) -> str:
        """Store the state; return where it went (a path, a row id) for the STATE_SAVED event."""
        ...

    async def load(self, run_id: str) -> ScenarioState | None:
        ...


def write_atomically(path: Path, content: str | Callable[[TextIO], None]) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file behind. `content` is
    the text, or a function writing it to the open file (a large document streamed, never held whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if callable(content):
                content(handle)
            else:
                handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FilesystemPersistence:
    """`<root>/<run_id>/state.json` plus Markdown views of every turn and a run summary. With
    `state_when_stopped`, state.json is written only when the run stops (paused, halted, ended): for a run whose
    state a database keeps as it goes, rewriting the whole state every turn would cost more each turn."""

    def __init__(self, root: str | Path, *, per_run_folder: bool = True, state_when_stopped: bool = False) -> None:
        self.root = Path(root)
        self.per_run_folder = per_run_folder
        self.state_when_stopped = state_when_stopped

    def folder(self, run_id: str) -> Path:
        return self.root / run_id if self.per_run_folder else self.root

    async def save(self, state: ScenarioState) -> str:
        return await asyncio.to_thread(self._save, state)

    def _save(self, state: ScenarioState) -> str:
        folder = self.folder(state.run_id)
        for view in run_views(state):
            # Views of earlier turns never change: write them once, so a save costs one turn, not the run.
            path = folder / view.name
            if view.turn is None or view.turn >= state.turn or not path.exists():
                write_atomically(path, view.render())
        # The state goes last: a reader that finds it finds the views of the same moment beside it.
        state_path = folder / "state.json"
        if not self.state_when_stopped or state.status is not ScenarioStatus.RUNNING:
            write_atomically(state_path, state.write_json)
        return str(state_path)

    async def load(self, run_id: str) -> ScenarioState | None:
        path = self.folder(run_id) / "state.json"
        if not path.exists():
            return None
        raw = await asyncio.to_thread(path.read_text, encoding="utf-8")
        return ScenarioState.from_dict(json.loads(raw))


async def save_state(persistence: StatePersistence, state: ScenarioState, bus: EventBus) -> None:
    location = await persistence.save(state)
    await bus.emit(
        EventType.STATE_SAVED,
        {"turn": state.turn, "status": state.status.value, "location": location},
        run_id=state.run_id,
        source="persistence",
    )
