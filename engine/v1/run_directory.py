"""A V1 run directory as the engine's persistence: every save writes the V1 files of the run so far.

Files of finished turns never change, so they are written once; `scenario-state.json` is rewritten after every
turn and when the run stops, and `costs.json`, `metrics.json` and `validation-summary.md` when it completes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.phases.persistence import write_atomically
from engine.scenario.schema import Scenario
from engine.state import RunStatus, ScenarioState
from engine.v1.files import (
    conversation_file_name,
    conversation_markdown,
    conversations,
    v1_costs,
    v1_metrics,
    validation_report_markdown,
    validation_summary_markdown,
)
from engine.v1.state_file import RunMetadata, V1StateError, state_from_v1, v1_state_document, v1_status
from engine.views.markdown import OFFLINE_NOTICE, decision_markdown, world_state_markdown

STATE_FILE = "scenario-state.json"


class RunDirectoryError(ValueError):
    """A run directory cannot be used; the message names the folder or file and what to do."""


def next_run_folder(scenario_output: Path) -> Path:
    """`run-NNN` one above the highest existing number (V1's rule: gaps are not reused)."""
    numbers = [0]
    if scenario_output.is_dir():
        for entry in scenario_output.iterdir():
            prefix, _, number = entry.name.partition("-")
            if prefix == "run" and number.isdigit() and entry.is_dir():
                numbers.append(int(number))
    return scenario_output / f"run-{max(numbers) + 1:03d}"


def read_state_document(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not folder.is_dir():
        raise RunDirectoryError(f"{folder} is not a run directory (no such folder)")
    if not path.is_file():
        raise RunDirectoryError(f"{folder} has no {STATE_FILE}; pass a run directory written by run_scenario.py")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirectoryError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(document, dict):
        raise RunDirectoryError(f"{path}: expected a JSON object")
    return document


def read_run_directory(folder: str | Path, *, scenario: Scenario | None = None) -> tuple[ScenarioState, dict[str, Any]]:
    """The run a directory holds (written by V1 or by this project) and its scenario-state.json document."""
    folder = Path(folder)
    document = read_state_document(folder)
    try:
        state, _ = state_from_v1(document, scenario=scenario)
    except (V1StateError, KeyError, TypeError, ValueError) as exc:
        raise RunDirectoryError(f"{folder / STATE_FILE}: {exc}") from None
    return state, document


def _parse_time(value: Any, default: datetime) -> datetime:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else default
    except ValueError:
        return default


class V1RunDirectory:
    """`StatePersistence` that writes V1's run files into one folder."""

    def __init__(
        self,
        folder: str | Path,
        scenario: Scenario,
        *,
        scenario_path: str,
        clock: Callable[[], datetime] = datetime.now,
        credit_limit: float | None = None,
        metadata: RunMetadata | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.scenario = scenario
        self.clock = clock
        self.credit_limit = credit_limit
        self.metadata = metadata or RunMetadata(
            scenario_path=scenario_path, output_path=str(self.folder), started_at=clock(), total_turns=scenario.config.turns, turn_times={}
        )

    @classmethod
    def reopen(cls, folder: str | Path, scenario: Scenario, document: dict[str, Any], **options: Any) -> V1RunDirectory:
        """Continue writing a directory: keep its start time, branch lineage and turn times."""
        clock = options.get("clock", datetime.now)
        now = clock()
        meta = document.get("execution_metadata") or {}
        engine = meta.get("engine") or {}
        turn_times = {int(t): _parse_time(v, now) for t, v in (engine.get("turn_times") or {}).items()}
        metadata = RunMetadata(
            scenario_path=str(document.get("scenario_path") or options.get("scenario_path") or ""),
            output_path=str(meta.get("output_path") or folder),
            started_at=_parse_time(meta.get("started_at"), now),
            total_turns=scenario.config.turns,
            branched_from=meta.get("branched_from"),
            branch_point=meta.get("branch_point"),
            turn_times=turn_times,
        )
        return cls(folder, scenario, metadata=metadata, **{**options, "scenario_path": metadata.scenario_path})

    # ---- StatePersistence -------------------------------------------------------------------------------
    async def save(self, state: ScenarioState) -> str:
        return await asyncio.to_thread(self.write, state)

    async def load(self, run_id: str) -> ScenarioState | None:
        if not (self.folder / STATE_FILE).is_file():
            return None
        state, _ = read_run_directory(self.folder, scenario=self.scenario)
        return state if state.run_id == run_id else None

    # ---- writing ----------------------------------------------------------------------------------------
    def write(self, state: ScenarioState) -> str:
        now = self.clock()
        meta = self.metadata
        for turn in range(1, state.turn + 1):
            meta.turn_times.setdefault(turn, now)  # type: ignore[union-attr]
        when = meta.time_of

        def put(name: str, turn: int | None, render: Callable[[], str]) -> None:
            path = self.folder / name
            if turn is None or turn >= state.turn or not path.exists():
                write_atomically(path, render())

        # V1's files had no place for it, but a reader must not mistake offline text for a model's.
        notice = f"\n{OFFLINE_NOTICE}\n" if state.providers == ("offline",) else ""
        for world in state.world_states:
            put(f"world-state-{world.turn:03d}.md", world.turn,
                lambda w=world: world_state_markdown(state, w.turn, generated_at=when(w.turn) if w.turn else meta.started_at) + notice)
        for decision in state.decisions:
            put(f"{decision.actor}-{decision.turn:03d}.md", decision.turn,
                lambda d=decision: decision_markdown(state, d, generated_at=when(d.turn)))
        names = {a.short_name: a.name for a in state.actors}
        for turn in sorted({m.turn for m in state.communications}):
            for (kind, participants), messages in conversations(state, turn).items():
                name = conversation_file_name(kind.value, (names.get(p, p) for p in participants), turn)
                put(name, turn, lambda k=kind, m=messages, t=turn: conversation_markdown(state, k, m, t, generated_at=when(t)))
        if self.scenario.validation is not None:
            for turn in range(1, state.turn + 1):
                put(f"validation-{turn:03d}.md", turn, lambda t=turn: validation_report_markdown(state, t, generated_at=when(t)))

        document = v1_state_document(state, meta, scenario=self.scenario, now=now)
        document["execution_metadata"]["engine"]["credit_limit"] = self.credit_limit
        if v1_status(state, meta.total_turns).status == "completed":
            write_atomically(self.folder / "costs.json", _json(v1_costs(state, self.scenario, started_at=meta.started_at, ended_at=now)))
            write_atomically(self.folder / "metrics.json", _json(v1_metrics(state, self.scenario)))
            if self.scenario.validation is not None:
                write_atomically(self.folder / "validation-summary.md", validation_summary_markdown(state, generated_at=now))
        # The state goes last: whoever finds it finds the files of the same moment beside it.
        state_path = self.folder / STATE_FILE
        write_atomically(state_path, _json(document))
        return str(state_path)


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def branch_run_directory(
    source: str | Path,
    at_turn: int,
    scenario: Scenario,
    *,
    target: str | Path | None = None,
    clock: Callable[[], datetime] = datetime.now,
) -> Path:
    """A new run directory holding `source`'s run up to `at_turn`, halted as `branched`, ready to resume.
    Nothing is executed; turns after the branch point, and their costs and metrics, are left behind."""
    source = Path(source)
    state, document = read_run_directory(source, scenario=scenario)
    if not 1 <= at_turn <= state.turn:
        raise RunDirectoryError(f"--branch-at-turn {at_turn}: {source} has completed turns 1 to {state.turn}; choose one of them")
    folder = Path(target) if target is not None else next_run_folder(source.parent)
    if (folder / STATE_FILE).exists():
        raise RunDirectoryError(f"{folder} already holds a run; choose another output folder")
    child = replace(state.with_history_until(at_turn), run_id=uuid.uuid4().hex).with_status(RunStatus.HALTED, reason="branched")
    source_engine = (document.get("execution_metadata") or {}).get("engine") or {}
    source_times = {int(t): _parse_time(v, clock()) for t, v in (source_engine.get("turn_times") or {}).items()}
    metadata = RunMetadata(
        scenario_path=str(document.get("scenario_path") or scenario.source or ""),
        output_path=str(folder),
        started_at=clock(),
        total_turns=scenario.config.turns,
        branched_from=str(source),
        branch_point=at_turn,
        turn_times={t: when for t, when in source_times.items() if t <= at_turn},
    )
    V1RunDirectory(folder, scenario, scenario_path=metadata.scenario_path, clock=clock,
                   credit_limit=source_engine.get("credit_limit"), metadata=metadata).write(child)
    return folder
