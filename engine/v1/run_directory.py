"""A V1 run directory as the engine's persistence: every save writes the V1 files of the run so far.

Files of finished turns never change, so they are written once; `scenario-state.json` is rewritten after every
turn and when the run stops, and `costs.json`, `metrics.json` and `validation-summary.md` when it completes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from engine.phases.persistence import write_atomically
from engine.phases.validation import checks_to_do
from engine.run_names import highest_run_number, run_folder_name
from engine.scenario.loader import DEFINITION
from engine.scenario.reader import YAML_SUFFIXES
from engine.scenario.folder import Scenario
from engine.state import ScenarioStatus, ScenarioState
from engine.v1.files import (
    conversation_file_name,
    conversation_markdown,
    conversations,
    v1_costs,
    v1_metrics,
    validation_report_markdown,
    validation_summary_markdown,
)
from engine.v1.state_file import STATE_FILE, RunMetadata, v1_state_document, v1_status
from engine.v1.state_reading import V1Reading, metadata_from_reading, state_from_v1
from engine.v1.state_schema import V1StateError
from engine.views.markdown import OFFLINE_NOTICE, decision_markdown, world_state_markdown

log = logging.getLogger(__name__)


class RunDirectoryError(ValueError):
    """A run directory cannot be used; the message names the folder or file and what to do."""


def next_run_folder(scenario_output: Path) -> Path:
    """`run-NNN` one above the highest existing number (V1's rule: gaps are not reused)."""
    return scenario_output / run_folder_name(highest_run_number(scenario_output) + 1)


def read_state_document(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not folder.is_dir():
        raise RunDirectoryError(f"{folder} is not a run directory (no such folder)")
    if not path.is_file():
        raise RunDirectoryError(f"{folder} has no {STATE_FILE}; pass a run directory written by run_scenario.py")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON, an integer too long
        raise RunDirectoryError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(document, dict):
        raise RunDirectoryError(f"{path}: expected a JSON object")
    return document


def read_run(folder: str | Path, *, scenario: Scenario | None = None, document: dict[str, Any] | None = None) -> V1Reading:
    """The run a directory holds (written by V1 or by this project), with the file's keys typed and checked.
    `document`: the folder's scenario-state.json, when the caller has read it already."""
    folder = Path(folder)
    try:
        return state_from_v1(read_state_document(folder) if document is None else document, scenario=scenario)
    except V1StateError as exc:
        raise RunDirectoryError(f"{folder / STATE_FILE}: {exc}") from None


def read_run_directory(folder: str | Path, *, scenario: Scenario | None = None) -> tuple[ScenarioState, dict[str, Any]]:
    """The run a directory holds and its scenario-state.json document (checked: every key the reader uses
    has the type it expects)."""
    document = read_state_document(Path(folder))
    return read_run(folder, scenario=scenario, document=document).state, document


def scenario_folder_name(path: PurePath) -> str:
    """The name a scenario folder goes by (its run directories' `output/<name>/`, its slug when imported): a
    `definition/` folder, V1's layout, is named after the folder holding it."""
    return path.parent.name if path.name == DEFINITION and path.parent.name else path.name


def find_scenario_folder(stored: str, run_dir: Path, cwd: Path | None, *, within: Path | None = None) -> Path | None:
    """The folder a run's `scenario_path` names, as V1 meant it: relative to the folder V1 was started in,
    which is `cwd` or one of the run directory's parents (V1 wrote runs under output/<scenario>/run-NNN).
    `cwd` None: not looked for in the current folder; `within`: only inside that folder (an unpacked archive).
    A folder counts when the loader finds a scenario in it: scenario.yaml, or V1's definition/scenario.yaml."""
    if not stored:
        return None
    path = Path(stored.replace("\\", "/"))  # V1 run on Windows
    if path.is_absolute():
        candidates = [path]
    else:
        bases = ([cwd] if cwd is not None else []) + list(run_dir.resolve().parents)
        candidates = [base / path for base in bases]
    for candidate in candidates:
        if within is not None and not candidate.resolve().is_relative_to(within.resolve()):
            continue
        if any((candidate / sub / f"scenario{suffix}").is_file() for sub in (".", DEFINITION) for suffix in YAML_SUFFIXES):
            return candidate
    return None


class RunFilesNotWritten(OSError):
    """Some of a save's files (Markdown, costs.json, metrics.json) could not be written; scenario-state.json was."""


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
    def reopen(cls, folder: str | Path, scenario: Scenario, reading: V1Reading, **options: Any) -> V1RunDirectory:
        """Continue writing a directory read with `read_run`: keep its start time, branch lineage, turn times,
        the decisions' answers as written, and its files of completed turns."""
        clock = options.get("clock", datetime.now)
        metadata = metadata_from_reading(reading, scenario_path=options.get("scenario_path") or "", output_path=str(folder),
                                            total_turns=scenario.config.turns, now=clock())
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
        """Write the run's files. A Markdown file that cannot be written does not stop the others, nor
        scenario-state.json (so the run stays resumable from what was played); RunFilesNotWritten then names
        the files that are missing."""
        now = self.clock()
        meta = self.metadata
        for turn in range(1, state.turn + 1):
            meta.turn_times.setdefault(turn, now)  # type: ignore[union-attr]
        when = meta.time_of
        failed: list[str] = []
        inside = self.folder.resolve()
        whole = -1 if meta.opened_after_turn is None else meta.opened_after_turn

        def put(name: str, turn: int | None, render: Callable[[], str]) -> None:
            path = self.folder / name
            # A turn's files can be written while it is under way, so those of the last turn are rewritten;
            # files of turns complete when the directory was opened were written whole and stay as they are.
            if path.exists() and turn is not None and (turn < state.turn or turn <= whole):
                return
            try:
                if path.resolve().parent != inside:  # names come from the state: never a file elsewhere
                    raise OSError("the name leads outside the run directory")
                write_atomically(path, render())
            except OSError as exc:
                log.error("could not write %s: %s", path, exc)
                failed.append(f"{name} ({exc.strerror or exc})")

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
                # A turn's checks play alongside the next turn's talks: its report waits for them.
                if turn < state.turn or not checks_to_do(replace(state, turn=turn - 1), self.scenario):
                    put(f"validation-{turn:03d}.md", turn if turn < state.turn - 1 else None,
                        lambda t=turn: validation_report_markdown(state, t, generated_at=when(t)))

        document = v1_state_document(state, meta, scenario=self.scenario, now=now)
        document["execution_metadata"]["engine"]["credit_limit"] = self.credit_limit
        if v1_status(state, meta.total_turns).status == "completed":
            put("costs.json", None, lambda: _json(v1_costs(state, self.scenario, started_at=meta.started_at, ended_at=now)))
            put("metrics.json", None, lambda: _json(v1_metrics(state, self.scenario)))
            if self.scenario.validation is not None:
                put("validation-summary.md", None, lambda: validation_summary_markdown(state, generated_at=now))
        # The state goes last: whoever finds it finds the files of the same moment beside it.
        state_path = self.folder / STATE_FILE
        write_atomically(state_path, _json(document))
        if failed:
            raise RunFilesNotWritten(f"{self.folder}: could not write {'; '.join(failed)}; {STATE_FILE} was written")
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
    """A new run directory holding `source`'s run up to `at_turn` (0: the initial state), halted as `branched`,
    ready to resume. Nothing is executed; turns after the branch point, and their costs and metrics, are left
    behind."""
    source = Path(source)
    reading = read_run(source, scenario=scenario)
    state = reading.state
    if not 0 <= at_turn <= state.turn:
        raise RunDirectoryError(f"--branch-at-turn {at_turn}: {source} has completed turns 1 to {state.turn}; choose one "
                                "of them, or 0 to branch from the initial state")
    folder = Path(target) if target is not None else next_run_folder(source.parent)
    if (folder / STATE_FILE).exists():
        raise RunDirectoryError(f"{folder} already holds a run; choose another output folder")
    child = replace(state.with_history_until(at_turn), run_id=uuid.uuid4().hex).with_status(ScenarioStatus.HALTED, reason="branched")
    metadata = replace(
        metadata_from_reading(reading, scenario_path=scenario.source or "", output_path=str(folder),
                                 total_turns=scenario.config.turns, now=clock(), until=at_turn),
        output_path=str(folder), started_at=clock(), branched_from=str(source), branch_point=at_turn,
    )
    engine = reading.document.engine
    V1RunDirectory(folder, scenario, scenario_path=metadata.scenario_path, clock=clock,
                   credit_limit=engine.credit_limit if engine else None, metadata=metadata).write(child)
    return folder
