"""V1's command line, over the new engine: `python legacy_v1/run_scenario.py SCENARIO_DIR [options]`.

Same options, same run directories and files as V1 (see engine/v1). There is no turn loop here: the engine
plays the run and `V1RunDirectory` writes V1's files as its persistence.

Exit codes: 0 completed (or stopped at --end-turn, or branched), 1 failed, 2 bad input, 3 halted by the credit
limit, a QA finding or a metric threshold set to halt (V1 had no word for the last two: scenario-state.json
says `halt_reason: error`, the engine's reason beside it), 4 halted by provider trouble (rate limit, API
errors), 5 waiting for a person (a `control: human` actor, no terminal to ask at), 130 Ctrl-C. Every halt is
resumable with --resume.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Event, EventType, Runner, Scenario  # noqa: E402
from engine.estimate import estimate_run_cost  # noqa: E402
from engine.seats import TerminalSeats  # noqa: E402
from engine.llm.routing import RoutingError, provider_from_environment  # noqa: E402
from engine.scenario.errors import ScenarioLoadError  # noqa: E402
from engine.state import ScenarioStatus, ScenarioState  # noqa: E402
from engine.v1 import (  # noqa: E402
    STATE_FILE,
    RunDirectoryError,
    V1Reading,
    V1RunDirectory,
    branch_run_directory,
    find_scenario_folder,
    next_run_folder,
    read_run,
    scenario_folder_name,
    v1_status,
)

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
EXIT = {"completed": 0, "end_turn": 0, "branched": 0, "credit_limit": 3, "rate_limit": 4, "api_error": 4, "manual": 130, "error": 1}
WAITING_FOR_PERSON = 5  # a `control: human` actor and no terminal to ask at
HALTED_BY_FINDING = 3  # a QA finding or a metric threshold: V1's `error`, but the run did what it was told
log = logging.getLogger("scenario_lab")


class BadInput(Exception):
    """Exit 2 with this message."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_scenario.py",
        description="Run a Scenario Lab scenario (V1 command line). Output: output/<scenario>/run-NNN/ unless -o is given.",
    )
    parser.add_argument("scenario", nargs="?", metavar="SCENARIO_DIR", help="the scenario folder (not needed with --resume or --branch-from)")
    parser.add_argument("-o", "--output", metavar="RUN_DIR", help="write the run here instead of output/<scenario>/run-NNN")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a halted run (written by V1 or by this program)")
    parser.add_argument("--branch-from", metavar="RUN_DIR", help="start a new run from RUN_DIR's state at --branch-at-turn")
    parser.add_argument("--branch-at-turn", type=int, metavar="N", help="the completed turn to branch at (0: the initial state)")
    parser.add_argument("--end-turn", "--max-turns", dest="end_turn", type=int, metavar="N", help="stop after turn N (an absolute turn)")
    parser.add_argument("--credit-limit", type=float, metavar="USD", help="halt before a call could take the run past this cost")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug output in the terminal")
    return parser


# ---- finding things --------------------------------------------------------------------------------------
def default_output(scenario_arg: str) -> Path:
    """output/<basename of SCENARIO_DIR>/run-NNN; a folder's `definition/` is named after the folder holding it."""
    return next_run_folder(Path("output") / scenario_folder_name(Path(scenario_arg).resolve()))


def scenario_for_run(run_dir: Path, given: str | None, reading: V1Reading) -> tuple[Scenario, str]:
    """The scenario a run was played from: the one given, else `scenario_path` as V1 stored it (relative to the
    folder V1 was started in, which may be the current folder or one above the run directory)."""
    if given:
        return Scenario.load(given), given
    stored = reading.document.scenario_path or ""
    if not stored:
        raise BadInput(f"{run_dir / STATE_FILE} does not say which scenario it ran; pass SCENARIO_DIR before --resume")
    found = find_scenario_folder(stored, run_dir, Path.cwd())
    if found is None:
        raise BadInput(f"the scenario folder {stored!r} recorded in {run_dir / STATE_FILE} was not found; "
                       f"pass it: run_scenario.py SCENARIO_DIR --resume {run_dir}")
    return Scenario.load(found), stored


def checked_credit_limit(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise BadInput(f"--credit-limit {value}: must be a positive number of USD")
    return value


# ---- output ------------------------------------------------------------------------------------------------
def attach_log(folder: Path, verbose: bool, stream: TextIO) -> list[logging.Handler]:
    """scenario.log at debug level always; the terminal at info (debug with -v)."""
    folder.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(folder / "scenario.log", encoding="utf-8")
    to_file.setLevel(logging.DEBUG)
    to_file.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%d %H:%M:%S"))
    to_terminal = logging.StreamHandler(stream)
    to_terminal.setLevel(logging.DEBUG if verbose else logging.INFO)
    to_terminal.setFormatter(logging.Formatter("%(message)s"))
    # Only our loggers: an HTTP library's debug lines could carry request headers.
    for name in ("scenario_lab", "engine"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(to_file)
    log.addHandler(to_terminal)
    log.propagate = False
    return [to_file, to_terminal]


def detach_log(handlers: list[logging.Handler]) -> None:
    for name in ("scenario_lab", "engine"):
        for handler in handlers:
            logging.getLogger(name).removeHandler(handler)
    for handler in handlers:
        handler.close()


def log_event(event: Event) -> None:
    data = dict(event.data)
    kind = event.type
    if kind is EventType.TURN_STARTED:
        log.info("\n%s\nTURN %s\n%s", "=" * 60, data["turn"], "=" * 60)
    elif kind is EventType.PHASE_STARTED:
        log.info("  Phase: %s", str(data["phase"]).replace("_", " "))
    elif kind is EventType.COMMUNICATION_SENT and data.get("kind") != "public":
        log.info("  → %s message from %s to %s", data["kind"], data["sender"], ", ".join(data.get("recipients") or ()))
    elif kind is EventType.ACTOR_DECISION_COMPLETED:
        log.info("  ✓ %s decided", data.get("actor"))
    elif kind is EventType.TURN_COMPLETED:
        log.info("  Turn %s complete; cost so far $%.4f", data["turn"], data.get("total_cost") or 0.0)
    elif kind in (EventType.CREDIT_LIMIT_WARNING, EventType.CREDIT_LIMIT_EXCEEDED, EventType.PHASE_FAILED):
        log.warning("  ! %s: %s", kind.value.replace("_", " "), data)
    log.debug("event %s #%s %s", kind.value, event.seq, data)


def resume_command(run_dir: Path, *, credit: bool) -> str:
    command = f"python legacy_v1/run_scenario.py --resume {shlex.quote(str(run_dir))}"
    return command + (" --credit-limit <higher USD>" if credit else "")


# ---- the three things the command does ---------------------------------------------------------------------
def branch(args: argparse.Namespace, out: TextIO) -> int:
    if args.branch_at_turn is None:
        raise BadInput("--branch-from needs --branch-at-turn N (the completed turn to branch at, 0 for the start)")
    source = Path(args.branch_from)
    scenario, _ = scenario_for_run(source, args.scenario, read_run(source))
    folder = branch_run_directory(source, args.branch_at_turn, scenario, target=args.output)
    print(f"Branched {source} at turn {args.branch_at_turn} into {folder} (nothing was run).", file=out)
    print(f"Resume it with: {resume_command(folder, credit=False)}", file=out)
    return 0


def play(args: argparse.Namespace, out: TextIO) -> int:
    resuming = args.resume is not None
    checked_credit_limit(args.credit_limit)  # before anything is created
    if resuming:
        folder = Path(args.resume)
        scenario, scenario_path = scenario_for_run(folder, args.scenario, read_run(folder))
        reading = read_run(folder, scenario=scenario)  # again, in the scenario's actor order
        state = reading.state
        stored_limit = reading.document.engine.credit_limit if reading.document.engine else None
        credit_limit = args.credit_limit if args.credit_limit is not None else stored_limit
        persistence = V1RunDirectory.reopen(folder, scenario, reading, scenario_path=scenario_path, credit_limit=credit_limit)
    else:
        if not args.scenario:
            raise BadInput("give SCENARIO_DIR (a scenario folder), or --resume RUN_DIR, or --branch-from RUN_DIR")
        scenario, scenario_path = Scenario.load(args.scenario), args.scenario
        folder = Path(args.output) if args.output else default_output(args.scenario)
        if (folder / STATE_FILE).exists():
            raise BadInput(f"{folder} already holds a run; resume it with --resume {folder}, or choose another -o")
        state, credit_limit = None, args.credit_limit
        persistence = V1RunDirectory(folder, scenario, scenario_path=scenario_path, credit_limit=credit_limit)

    end_turn = args.end_turn if args.end_turn is not None else scenario.config.turns
    if not 1 <= end_turn <= scenario.config.turns:
        raise BadInput(f"--end-turn {end_turn}: the scenario has turns 1 to {scenario.config.turns}")
    if state is not None and state.turn >= end_turn:
        print(f"{folder} has already completed turn {state.turn}; nothing to do (raise --end-turn to continue).", file=out)
        return 0

    try:
        choice = provider_from_environment(scenario)
    except RoutingError as exc:
        raise BadInput(str(exc)) from None
    handlers = attach_log(folder, args.verbose, out)
    try:
        first = (state.turn if state else 0) + 1
        log.info("Scenario: %s (%s)", scenario.name, scenario_path)
        log.info("Output: %s", folder)
        log.info("Models: %s", choice.description)
        estimate = estimate_run_cost(scenario, choice.provider, turns=end_turn - first + 1)
        log.info("%s\n%s", estimate.describe(), estimate.table())
        if credit_limit is not None:
            log.info("Credit limit: $%.4f (spent so far: $%.4f)", credit_limit, state.total_cost if state else 0.0)
        log.info("%s turns %s to %s", "Resuming:" if resuming else "Running", first, end_turn)
        # V1's `control: human` actors are asked here, at the prompt; with no terminal the run halts for them.
        seats = TerminalSeats() if sys.stdin.isatty() and any(a.control == "human" for a in scenario.actors) else None
        runner = Runner(provider=choice.provider, persistence=persistence, seats=seats)
        runner.on("*")(log_event)
        try:
            final = asyncio.run(runner.run_async(scenario, max_turns=end_turn, credit_limit=credit_limit, state=state))
        except KeyboardInterrupt:
            log.info("\nInterrupted: the run is saved as halted (manual).")
            log.info("Resume with: %s", resume_command(folder, credit=False))
            return EXIT["manual"]
        return report(final, folder, persistence, out)
    except ValueError as exc:  # e.g. the run's actors are not the scenario's
        raise BadInput(str(exc)) from None
    finally:
        detach_log(handlers)


def report(final: ScenarioState, folder: Path, persistence: V1RunDirectory, out: TextIO) -> int:
    status = v1_status(final, persistence.metadata.total_turns)
    log.info("\n%s", "=" * 60)
    offline = " (offline provider: no model was called)" if final.providers == ("offline",) else ""
    log.info("Run %s after turn %s%s: total cost $%.4f, %s tokens%s.", status.status, final.turn,
             f" ({status.halt_reason})" if status.halt_reason else "", final.total_cost, f"{final.total_tokens:,}", offline)
    if final.halt_reason and status.halt_reason not in ("end_turn", None):
        log.info("Reason: %s", final.halt_reason)
    if final.error:
        log.info("Error: %s", final.error)
    log.info("Files: %s", folder)
    if final.status is ScenarioStatus.WAITING_FOR_HUMAN:
        log.info("A person plays %s: resume in a terminal to be asked for the decision.",
                 ", ".join(a.name for a in final.actors if a.control == "human"))
    if status.status != "completed":
        log.info("Resume with: %s", resume_command(folder, credit=status.halt_reason == "credit_limit"))
    return exit_code(final, persistence.metadata.total_turns)


def exit_code(final: ScenarioState, total_turns: int) -> int:
    status = v1_status(final, total_turns)
    if status.halt_reason == "error" and final.status is ScenarioStatus.HALTED:
        return HALTED_BY_FINDING
    if final.status is ScenarioStatus.WAITING_FOR_HUMAN:
        return WAITING_FOR_PERSON
    return EXIT[status.halt_reason or "completed"]


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        if args.branch_from and args.resume:
            raise BadInput("use --resume or --branch-from, not both")
        if args.branch_at_turn is not None and not args.branch_from:
            raise BadInput("--branch-at-turn needs --branch-from RUN_DIR")
        return branch(args, out) if args.branch_from else play(args, out)
    except ScenarioLoadError as exc:
        print(str(exc), file=err)
        return 2
    except (BadInput, RunDirectoryError) as exc:
        print(f"error: {exc}", file=err)
        return 2


if __name__ == "__main__":
    # Ctrl-C saves the run as halted even when a shell started this in the background, which ignores SIGINT
    # (as the manage.py commands do).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
