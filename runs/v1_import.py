"""V1 run directories (a folder, or a zip of one) stored as runs, so old runs show on the run pages and the API.

Only `scenario-state.json` is read: it holds everything the other files of the folder were written from. The
run's scenario is the one named, else the folder at the state's `scenario_path` (found as `--resume` finds it:
`engine.v1.find_scenario_folder`), else a stored scenario of the same name. The import is one transaction: a run directory that cannot be stored whole stores nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
import zlib
from dataclasses import replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from engine import ScenarioState
from engine.scenario.errors import ScenarioLoadError
from engine.scenario.folder import Scenario as EngineScenario
from engine.state import ScenarioStatus
from engine.v1 import (
    STATE_FILE,
    RunDirectoryError,
    StateDocument,
    find_scenario_folder,
    read_run,
    read_state_document,
    scenario_folder_name,
)
from runs import services
from runs.models import Run, Turn
from runs.execution.store import store_state
from scenarios.archives import extract_safely
from scenarios.models import Scenario
from scenarios.selectors import scenario_get
from scenarios.services import ScenarioSlugTaken, scenario_import_folder, scenario_to_engine

# A run directory is mostly Markdown; long runs with real models reach tens of MB.
MAX_ZIP_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_ZIP_ENTRIES = 20_000

# V1's halt reasons (scenario-state.json `halt_reason`), as the run page shows them.
V1_HALT_REASONS = {
    "end_turn": "stopped after turn {turn} as asked (--end-turn)",
    "credit_limit": "the credit limit was reached",
    "rate_limit": "the model server's rate limit stopped it",
    "api_error": "a model server error stopped it",
    "manual": "stopped by hand",
    "error": "an error stopped it",
    "branched": "branched from another run",
}


class V1ImportError(ValueError):
    """A run directory that cannot be imported; the one-line message names the file and what to do."""


class V1ScenarioNotFound(V1ImportError):
    """The run's scenario could not be found: the caller must name it."""


class V1RunAlreadyImported(V1ImportError):
    """This V1 run is stored already (`run`); importing it again needs asking for."""

    def __init__(self, message: str, run: Run) -> None:
        super().__init__(message)
        self.run = run


# ---- the services ----------------------------------------------------------------------------------------------
def run_import_v1(*, folder: str | Path, scenario: Scenario | str | Path | None = None, owner=None, again: bool = False) -> Run:
    """Store the run of a V1 run directory with its turns, decisions, talks, ledger, metrics and QA findings.

    `scenario`: a stored scenario, a stored scenario's slug or a scenario folder; by default the one the run
    names. Raises V1ImportError (V1ScenarioNotFound, V1RunAlreadyImported unless `again`); nothing is stored then."""
    folder = Path(folder)
    return _import(folder, label=str(folder.resolve()) if folder.is_dir() else str(folder), scenario=scenario,
                   owner=owner, again=again, within=None)


def run_import_v1_zip(*, upload: IO[bytes] | bytes, scenario: Scenario | str | Path | None = None, owner=None,
                      again: bool = False) -> Run:
    """Store the run of a zipped V1 run directory (scenario-state.json at the top or in one folder of the zip).

    The zip is unpacked into a temporary folder with the scenario archives' rules (no absolute paths, '..',
    links or encrypted members; the bytes really unpacked are counted). The run's scenario folder is looked
    for inside the zip only, never elsewhere on this machine."""
    label = getattr(upload, "name", None) or "the uploaded archive"
    stream = io.BytesIO(upload) if isinstance(upload, bytes) else upload
    size = len(upload) if isinstance(upload, bytes) else getattr(upload, "size", None)
    if size is not None and size > MAX_ZIP_UNPACKED_BYTES:  # refused before a byte of it is read
        raise V1ImportError(f"{label} is {size:,} bytes; a zipped run directory has at most "
                            f"{MAX_ZIP_UNPACKED_BYTES // (1024 * 1024)} MB")
    with tempfile.TemporaryDirectory(prefix="v1-run-import-") as temporary:
        root = Path(temporary)
        try:
            with zipfile.ZipFile(stream) as archive:
                names = _unpack(archive, root, label)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, UnicodeDecodeError) as exc:
            raise V1ImportError(f"{label} is not a readable zip archive ({exc}); upload a .zip of the run directory") from None
        folder = _run_folder(root, names, label)
        inside = folder.relative_to(root).as_posix()
        return _import(folder, label=label if inside == "." else f"{label}/{inside}", scenario=scenario,
                       owner=owner, again=again, within=root)


# ---- importing -------------------------------------------------------------------------------------------------
def _import(folder: Path, *, label: str, scenario, owner, again: bool, within: Path | None) -> Run:
    def named(message: str) -> str:  # the folder as the person knows it, not a temporary path
        return message.replace(str(folder), label)

    try:
        document = read_state_document(folder)
        parsed = read_run(folder, document=document).document
    except RunDirectoryError as exc:
        raise V1ImportError(named(str(exc))) from None
    state_file = f"{label}/{STATE_FILE}"
    key = _run_key(document, folder / STATE_FILE)
    with transaction.atomic():
        earlier = Run.objects.filter(imported_from__key=key).order_by("pk").first()
        if earlier is not None and not again:
            raise V1RunAlreadyImported(
                f"{state_file}: this V1 run was imported already as run {earlier.pk} ({earlier}); "
                "delete that run or ask to import it again", earlier)
        stored = _scenario_for(parsed, folder, scenario, state_file=state_file, within=within)
        try:
            config = scenario_to_engine(scenario=stored)
        except ScenarioLoadError as exc:
            raise V1ImportError(f"scenario {stored.slug!r} does not validate ({_first_problem(exc)}); fix it before importing runs of it") from None
        try:
            state = read_run(folder, scenario=config, document=document).state
        except RunDirectoryError as exc:
            raise V1ImportError(named(str(exc))) from None
        _check_actors(state, config, stored, state_file=state_file)
        max_turns = max(parsed.total_turns or config.config.turns, state.turn, 1)
        state = _storable(state, parsed, max_turns=max_turns)
        run = _create_run(state, parsed, config, stored, owner=owner, max_turns=max_turns, label=label, key=key)
        store_state(run, state, source="v1_import", location=f"imported from {label}")
        _mark_imported(run, parsed)
    run.refresh_from_db()
    return run


def _run_key(document: dict[str, Any], state_path: Path) -> str:
    """What tells one V1 run from another, however far it got: its start time (and the engine's run id when
    this project wrote it); a file with neither is known by its bytes. V1's branch keeps its parent's start
    time, so a branch is also known by where it came from and where it was written."""
    meta = document.get("execution_metadata") or {}
    engine = meta.get("engine") or {}
    if meta.get("started_at") or engine.get("run_id"):
        identity = [document.get("scenario_name"), meta.get("started_at"), engine.get("run_id")]
        if meta.get("branched_from") or meta.get("branch_point") is not None:
            identity += [meta.get("branched_from"), meta.get("branch_point"), meta.get("output_path")]
        text = json.dumps(identity)
    else:
        text = state_path.read_bytes().decode("utf-8", "replace")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _first_problem(exc: ScenarioLoadError) -> str:
    return str(exc.errors[0]) if exc.errors else str(exc)


# ---- the scenario --------------------------------------------------------------------------------------------
def _scenario_for(document: StateDocument, folder: Path, given, *, state_file: str, within: Path | None) -> Scenario:
    if isinstance(given, Scenario):
        return given
    if given:
        stored = scenario_get(slug=str(given))
        if stored is not None:
            return stored
        if Path(given).is_dir():
            return _stored_or_imported(Path(given))
        known = ", ".join(Scenario.objects.order_by("slug").values_list("slug", flat=True)[:20]) or "none stored"
        raise V1ScenarioNotFound(f"scenario {str(given)!r}: no stored scenario has this slug and it is not a folder; "
                                 f"give a stored scenario's slug ({known}) or a scenario folder")
    written = document.scenario_path or ""
    found = find_scenario_folder(written, folder, None if within is not None else Path.cwd(), within=within)
    if found is not None:
        return _stored_or_imported(found)
    name = document.scenario_name or ""
    slug = slugify(scenario_folder_name(PurePosixPath(written.replace("\\", "/"))))[:100] if written else ""
    stored = Scenario.objects.filter(Q(slug=slug, slug__gt="") | Q(name=name, name__gt="")).order_by("pk")
    if stored:  # the slug V1's folder would have been stored under wins over a name
        return next((s for s in stored if s.slug == slug), stored[0])
    where = "inside the archive" if within is not None else "from the current folder or the run directory's parent folders"
    raise V1ScenarioNotFound(f"{state_file}: its scenario folder {written or '(none given)'!r} was not found {where}, "
                             f"and no stored scenario is named {name!r}; name the scenario the run was played with")


def _stored_or_imported(path: Path) -> Scenario:
    """The stored scenario of this folder's slug or scenario name, else the folder imported."""
    slug = slugify(scenario_folder_name(path.resolve()))[:100] or "scenario"
    stored = scenario_get(slug=slug)
    if stored is not None:
        return stored
    try:
        config = EngineScenario.load(path)
        stored = Scenario.objects.filter(name=config.name).order_by("pk").first()
        return stored if stored is not None else scenario_import_folder(path=path, slug=slug)
    except ScenarioLoadError as exc:
        raise V1ImportError(f"{exc.folder}: {_first_problem(exc)}; fix the scenario folder or name another scenario") from None
    except ScenarioSlugTaken as exc:  # stored meanwhile by someone else
        raise V1ImportError(str(exc)) from None


def _check_actors(state: ScenarioState, config: EngineScenario, stored: Scenario, *, state_file: str) -> None:
    in_run = sorted(a.short_name for a in state.actors)
    in_scenario = sorted(a.short_name for a in config.actors)
    if in_run != in_scenario:
        raise V1ImportError(f"{state_file}: the run's actors ({', '.join(in_run)}) are not scenario {stored.slug!r}'s "
                            f"({', '.join(in_scenario)}); name the scenario the run was played with")


# ---- the run -------------------------------------------------------------------------------------------------
def _halt_text(reason: str, turn: int) -> str:
    explained = V1_HALT_REASONS.get(reason)
    return f"{reason}: V1 {explained.format(turn=turn)}" if explained else f"V1 halted it: {reason}"


def _storable(state: ScenarioState, document: StateDocument, *, max_turns: int) -> ScenarioState:
    """The state as the site keeps runs: a status a person and a resume understand, message ids that fit their
    column. A turn in progress (in this project's files) stays as it was: a resume continues it."""
    v1_status = document.status or ""
    v1_reason = document.halt_reason or ""
    engine_written = document.engine is not None and document.engine.status is not None
    if state.status is ScenarioStatus.COMPLETED and state.turn >= max_turns:
        state = state.with_status(ScenarioStatus.COMPLETED)
    elif engine_written and state.status in (ScenarioStatus.PAUSED, ScenarioStatus.HALTED, ScenarioStatus.FAILED, ScenarioStatus.CANCELLED):
        pass  # this project wrote it, with its own reason
    elif v1_status == "running" or state.status in (ScenarioStatus.RUNNING, ScenarioStatus.CREATED):
        state = state.with_status(ScenarioStatus.PAUSED, reason=f"the V1 run stopped while running after turn {state.turn} "
                                  "(interrupted or crashed); resume it to play on")
    else:
        reason = v1_reason or ("end_turn" if state.status is ScenarioStatus.COMPLETED else "error")
        state = state.with_status(ScenarioStatus.HALTED, reason=_halt_text(reason, state.turn), error=state.error)
    return state


def _create_run(state: ScenarioState, document: StateDocument, config: EngineScenario, stored: Scenario, *,
                owner, max_turns: int, label: str, key: str) -> Run:
    """The run row as `run_create` makes every run (number, snapshot, seats, turn 0), described as imported."""
    meta = document.execution_metadata
    engine = document.engine
    offline = state.providers == ("offline",)
    try:
        plan = services.run_plan(
            config=config, turns=max_turns, provider="offline", seed=state.seed if engine else config.config.seed,
            credit_limit=engine.credit_limit if engine else None,
        )
    except services.RunInputError as exc:
        raise V1ImportError(f"{label}/{STATE_FILE}: {exc}") from None
    models = sorted(({r.model for r in state.costs} | {a.model for a in state.actors}) - {""})
    description = plan.choice.description if offline else f"V1 run imported from {label} (models: {', '.join(models) or 'unknown'})"
    # The plan is of what the run was: no override, so a resume is served as any run of these models is.
    plan = replace(plan, provider="", choice=replace(plan.choice, description=description, offline=offline))
    run = services.run_create(plan=plan, slug=stored.slug, scenario=stored, owner=owner)
    started = meta.started_at if meta else None
    run.imported_from = {
        "format": "v1", "folder": label, "key": key, "status": document.status,
        "halt_reason": document.halt_reason, "scenario_path": document.scenario_path,
        "started_at": started.isoformat() if started else None,
    }
    run.started_at = _aware(started)
    run.save(update_fields=["imported_from", "started_at"])
    initial = next((w for w in state.world_states if w.turn == 0), None)
    if initial is not None:  # V1's own turn-0 text, not the scenario's as stored today
        Turn.objects.filter(run=run, turn=0).update(world_state=initial.content)
    return run


def _mark_imported(run: Run, document: StateDocument) -> None:
    """When V1 last wrote the run."""
    finished = _aware(document.execution_metadata.last_updated if document.execution_metadata else None)
    if finished is not None:
        Run.objects.filter(pk=run.pk).update(finished_at=finished)


def _aware(moment: datetime | None) -> datetime | None:
    """V1 wrote local times without a zone; they are read as this site's time zone."""
    if moment is None:
        return None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


# ---- zips ------------------------------------------------------------------------------------------------------
def _unpack(archive: zipfile.ZipFile, target: Path, label: str) -> list[str]:
    return extract_safely(
        archive, target, error=V1ImportError, label=label, holding="a run directory", max_entries=MAX_ZIP_ENTRIES,
        max_bytes=MAX_ZIP_UNPACKED_BYTES, refusal_prefix=f"{label}: ", refusal_hint="; zip the run directory as it is on disk",
    )


def _run_folder(root: Path, names: list[str], label: str) -> Path:
    """The one folder of the archive holding scenario-state.json."""
    folders = sorted({PurePosixPath(name).parent for name in names if PurePosixPath(name).name == STATE_FILE})
    if not folders:
        raise V1ImportError(f"{label} holds no {STATE_FILE}; zip the run directory V1 wrote (e.g. output/<scenario>/run-001)")
    if len(folders) > 1:
        shown = ", ".join(str(f) for f in folders[:5])
        raise V1ImportError(f"{label} holds {len(folders)} run directories ({shown}); upload one at a time")
    return root / folders[0]
