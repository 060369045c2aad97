"""`manage.py run_scenario ai-summit`: run a scenario end to end in the terminal (or on a worker).

Exit codes: 0 completed (or queued with --background), 1 failed, 2 bad input, 3 halted (credit limit or a
halting finding), 4 paused by provider trouble (resumable), 5 waiting for a human seat (decide on its page,
then it goes on), 130 interrupted with Ctrl-C (paused, resumable).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils.text import slugify

from engine.events import EventType
from engine.llm.routing import PROVIDER_CHOICES
from engine.scenario.errors import ScenarioLoadError
from accounts.quotas import QuotaExceeded
from accounts.selectors import user_get
from engine.scenario.folder import Scenario
from runs import selectors
from runs.models import Run, RunStatus

# What only running needs (the run services, the orchestrator behind them, seats) is imported where it is
# used, so `--help` and bad input answer without loading it (the start-up test checks this).
if TYPE_CHECKING:
    from engine.events import Event
    from runs import services

EXIT_CODES = {
    RunStatus.COMPLETED: 0, RunStatus.FAILED: 1, RunStatus.HALTED: 3, RunStatus.PAUSED: 4, RunStatus.CANCELLED: 1,
    RunStatus.WAITING_FOR_HUMAN: 5,
}
INTERRUPTED = 130


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def acting_user(username: str | None):
    """The user `--as` names (what starts is theirs, within their quota), or None: the machine's operator, unlimited."""
    if username is None:
        return None
    user = user_get(username=username)
    if user is None:
        raise bad_input(f"--as {username}: no such user (create one with `manage.py createsuperuser`, or in the admin)")
    return user


def load_problem(exc: ScenarioLoadError) -> CommandError:
    """Bad input for a scenario that does not load: one line for one problem, else the loader's list."""
    if len(exc.errors) == 1:
        return bad_input(f"{exc.folder}: {exc.errors[0]}")
    return bad_input(str(exc))


def describe_plan(plan: services.RunPlan, style) -> list[str]:
    """What a run will be, as the terminal shows it before starting: scenario, provider, estimate, limit."""
    lines = [
        style.MIGRATE_HEADING(f"{plan.config.name} — {len(plan.config.actors)} actors, {plan.max_turns} turns"),
        f"Provider: {plan.choice.description}",
        plan.estimate.describe(),
    ]
    if plan.estimate.max_cost > 0:
        lines.append(plan.estimate.table())
    if plan.list_prices is not None:
        from runs.services import list_prices_sentence

        lines.append(list_prices_sentence(plan.list_prices))
    limit = f"${plan.credit_limit:.2f}" if plan.credit_limit is not None else "none"
    lines.append(f"Credit limit: {limit}")
    return lines


def folder_scenario(path: Path) -> tuple[Scenario, str]:
    """A scenario folder's engine config and the slug it is stored under (its folder's name)."""
    folder = path.resolve()
    name = folder.parent.name if folder.name == "definition" else folder.name  # V1 kept some scenarios in definition/
    return Scenario.load(path), slugify(name) or "scenario"


def resolve_scenario(name: str) -> tuple[object | None, Scenario, str]:
    """(stored scenario or None, its engine config, slug) for a stored or bundled scenario's slug or a folder."""
    from scenarios.selectors import scenario_get
    from scenarios.services import scenario_import_library, scenario_to_engine

    try:
        scenario_import_library()  # bundled scenarios are there on a fresh database; idempotent
    except DatabaseError as exc:  # a database never migrated (or one the settings cannot reach)
        raise bad_input(f"the database is not ready ({type(exc).__name__}: {str(exc).strip()[:120]}): "
                        "run `make migrate` (manage.py migrate) first, or check DATABASE_URL") from None
    stored = scenario_get(slug=name)
    if stored is not None:
        return stored, scenario_to_engine(scenario=stored), stored.slug
    if Path(name).is_dir():
        return None, *folder_scenario(Path(name))
    from scenarios.selectors import scenario_list

    known = ", ".join(s.slug for s in scenario_list()) or "none"
    raise bad_input(f"No scenario {name!r}: give a stored one ({known}) or the path of a scenario folder.")


class Command(BaseCommand):
    help = "Run a scenario end to end: live progress here, records in the database, Markdown files for review."
    # The models' checks only: the default (all) loads the URL configuration, every view and API schema
    # (~0.15 s of start-up before the first model call) to check URLs a run never serves. `manage.py check`,
    # migrate, runserver and the tests still run every check.
    requires_system_checks = [Tags.models]

    def add_arguments(self, parser) -> None:
        parser.add_argument("scenario", nargs="?", help="a stored scenario's slug (e.g. ai-summit) or a scenario folder")
        turns = parser.add_mutually_exclusive_group()
        turns.add_argument("--turns", "--max-turns", dest="turns", type=int,
                           help="turns to play (default: the scenario's; with --resume: that many more)")
        turns.add_argument("--end-turn", type=int, help="stop after this turn")
        parser.add_argument("--credit-limit", type=float, help="never spend more than this many USD (default: the scenario's)")
        parser.add_argument("--model", help="play every seat, the world and the judge with this model (e.g. local/gemma)")
        parser.add_argument("--provider", choices=PROVIDER_CHOICES, help="send every call to this server (default: by model)")
        parser.add_argument("--seed", type=int, help="seed for outside events and the offline provider")
        parser.add_argument("--resume", type=int, metavar="RUN_ID", help="continue a paused, halted, failed or crashed run")
        parser.add_argument("--no-cache", action="store_true", help="do not answer from, or store in, the response cache")
        parser.add_argument("--background", action="store_true", help="queue the run for a worker (make serve) instead of running it here")
        parser.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout (progress goes to stderr)")
        parser.add_argument("--human", action="append", default=[], metavar="ACTOR",
                            help="play this actor yourself: its decisions are asked here, at the prompt (repeatable)")
        parser.add_argument("--as", dest="as_user", metavar="USERNAME",
                            help="act for this user: the run is theirs (their run list) and within their quota")

    def handle(self, *args, **options) -> None:
        from runs import services
        from runs.execution import executor

        executor.headless()
        self.json = options["json"]
        self.out = self.stderr if self.json else self.stdout
        self.owner = acting_user(options["as_user"])
        if options["resume"] is not None:
            run = self.resume(options)
        else:
            run = self.create(options)
        if options["background"]:
            services.run_enqueue(run=run)  # after run_submit's commit: the worker finds it stored
            self.say(f"Run {run.pk} queued for a worker (start one with `make serve`). Follow it at {self.page(run)}")
            self.finish(run, 0)
            return
        self.credit_limit = run.credit_limit
        controls = executor.RunControls()

        def on_ctrl_c(*_) -> None:
            # The first Ctrl-C pauses cleanly (the run is saved); a second one quits at once, as usual.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.say(self.style.WARNING("Pausing after saving the run (Ctrl-C again to quit at once)…"))
            controls.interrupt()

        previous = signal.signal(signal.SIGINT, on_ctrl_c)
        try:
            # A person at this terminal decides for human seats here; with no one to ask (no terminal, --json,
            # --background), a human seat makes the run wait for its page instead.
            ask_here = sys.stdin.isatty() and not self.json and any(a.get("control") == "human" for a in run.actors)
            from engine.seats import TerminalSeats
            from runs.execution.desk import StoredSeats

            desk = TerminalSeats(out=sys.stdout, controls=StoredSeats(run.pk)) if ask_here else None
            executed = executor.run_execute(run_id=run.pk, progress=self.progress, controls=controls, seats=desk)
        finally:
            signal.signal(signal.SIGINT, previous)
        if executed is None:
            raise CommandError(f"run {run.pk} was claimed by another process; follow it at {self.page(run)}")
        if controls.interrupted:
            self.say(self.style.WARNING(f"Interrupted: run {run.pk} is paused after turn {executed.turn}, every paid call kept."))
            self.say(f"Resume it with: python manage.py run_scenario --resume {run.pk}")
            self.finish(executed, INTERRUPTED)
        self.summary(executed)
        self.finish(executed, EXIT_CODES.get(executed.status, 1))

    # ---- starting ------------------------------------------------------------------------------------------
    def create(self, options) -> Run:
        from runs import services

        if not options["scenario"]:
            raise bad_input("Name a scenario (e.g. ai-summit) or a scenario folder, or --resume RUN_ID.")
        try:
            stored, config, slug = resolve_scenario(options["scenario"])
        except ScenarioLoadError as exc:
            raise load_problem(exc) from None
        for warning in config.warnings:
            self.stderr.write(self.style.WARNING(warning))
        try:
            plan = services.run_plan(
                config=config,
                turns=options["turns"] if options["turns"] is not None else options["end_turn"],
                credit_limit=options["credit_limit"],
                seed=options["seed"],
                model=options["model"] or "",
                provider=options["provider"] or "",
                use_cache=not options["no_cache"],
            )
        except services.RunInputError as exc:
            raise bad_input(str(exc)) from None
        for line in describe_plan(plan, self.style):
            self.say(line)
        try:
            return services.run_submit(plan=plan, slug=slug, scenario=stored, owner=self.owner, human_seats=options["human"],
                                       credit_limit=options["credit_limit"], enqueue=False)
        except (services.RunInputError, QuotaExceeded) as exc:
            raise bad_input(str(exc)) from None

    def resume(self, options) -> Run:
        from runs import services

        run = selectors.run_get(run_id=options["resume"])
        if run is None:
            raise bad_input(f"No run {options['resume']}.")
        if options["turns"] is not None and options["turns"] < 1:
            raise bad_input(f"--turns must be at least 1, not {options['turns']}")
        max_turns = options["end_turn"] if options["turns"] is None else run.turn + options["turns"]
        try:
            run = services.run_resume(run=run, credit_limit=options["credit_limit"], max_turns=max_turns, enqueue=False,
                                      by=self.owner)
        except (services.RunConflict, services.RunInputError, QuotaExceeded) as exc:
            raise bad_input(str(exc)) from None
        self.say(self.style.MIGRATE_HEADING(f"Resuming {run} after turn {run.turn} of {run.max_turns}, ${run.total_cost:.4f} spent"))
        self.say(f"Provider: {run.provider}")
        return run

    # ---- output ----------------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.out.write(text)

    def page(self, run: Run) -> str:
        # Written out rather than reversed: reverse() loads the site's URL configuration, every view and API
        # schema (0.3 s at the end of every run here). A test keeps the two equal.
        return f"{settings.SITE_URL}/runs/{run.pk}/"

    def progress(self, event: Event) -> None:
        data = event.data
        if event.type is EventType.TURN_STARTED:
            self.say(f"Turn {data['turn']}…")
        elif event.type is EventType.ACTOR_DECISION_COMPLETED:
            self.say(f"  {data['actor']}: {str(data.get('action', ''))[:110]}")
        elif event.type is EventType.ACTOR_DECISION_FAILED:
            self.say(self.style.WARNING(f"  {data['actor']}: no decision ({data.get('error', '')})"))
        elif event.type is EventType.CREDIT_LIMIT_WARNING:
            self.say(self.style.WARNING(f"  80% of the credit limit spent (${data['spent']:.4f} of ${data['limit']:.2f})"))
        elif event.type is EventType.TURN_COMPLETED:
            limit = f" of ${self.credit_limit:.2f}" if self.credit_limit else ""
            self.say(f"  turn {data['turn']} done, ${data['total_cost']:.4f} spent{limit}")
        elif event.type is EventType.PHASE_FAILED:
            self.say(self.style.WARNING(f"  {data['phase']} failed (attempt {data.get('attempt')}): {data.get('error')}"))

    def summary(self, run: Run) -> None:
        status = selectors.run_display_status(run)
        style = self.style.SUCCESS if status == RunStatus.COMPLETED else self.style.ERROR
        self.say(style(f"Run {run.pk} {status} after {run.turn} of {run.max_turns} turns."))
        if run.halt_reason or run.error:
            self.say(run.halt_reason or run.error)
        self.say(f"Cost: ${run.total_cost:.4f} over {run.calls} calls ({run.total_tokens:,} tokens){' — offline, no model called' if run.offline else ''}.")
        breakdown = selectors.run_cost_breakdown(run=run)
        for label in ("by_actor", "by_phase"):
            parts = ", ".join(f"{k} ${v['cost']:.4f}" for k, v in breakdown[label].items())
            self.say(f"  {label.replace('_', ' ')}: {parts or 'nothing'}")
        self.say(f"Markdown files: {run.output_dir}/ (summary.md, world-state-NNN.md, one file per actor and turn)")
        self.say(f"Run page: {self.page(run)}")
        if run.status == RunStatus.WAITING_FOR_HUMAN:
            self.say(f"Waiting for a person: decide on the run page ({self.page(run)}); the run then goes on on a worker.")
        if run.status in (RunStatus.PAUSED, RunStatus.HALTED, RunStatus.FAILED):
            hint = " --credit-limit USD" if run.status == RunStatus.HALTED else ""
            self.say(f"Resume it with: python manage.py run_scenario --resume {run.pk}{hint}")

    def finish(self, run: Run, code: int) -> None:
        if self.json:
            self.stdout.write(json.dumps(self.as_json(run), indent=2))
        if code:
            sys.stdout.flush()
            raise SystemExit(code)

    def as_json(self, run: Run) -> dict:
        return {
            "run": run.pk,
            "scenario": run.scenario_slug,
            "status": selectors.run_display_status(run),
            "turn": run.turn,
            "max_turns": run.max_turns,
            "provider": run.provider,
            "offline": run.offline,
            "credit_limit": run.credit_limit,
            "total_cost": run.total_cost,
            "total_tokens": run.total_tokens,
            "calls": run.calls,
            "halt_reason": run.halt_reason or None,
            "error": run.error or None,
            "costs": selectors.run_cost_breakdown(run=run),
            "output_dir": run.output_dir,
            "page": self.page(run),
        }
