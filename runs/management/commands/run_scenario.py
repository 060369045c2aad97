"""`manage.py run_scenario ai-summit`: run a bundled scenario (or a folder) in the terminal."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from engine import EventBus, EventType, FilesystemPersistence, Runner, Scenario
from engine.estimate import estimate_run_cost
from engine.events import Event
from engine.llm.cache import CachingProvider, SqliteResponseCache
from engine.llm.routing import PROVIDER_CHOICES, RoutingError, provider_from_environment, with_model
from engine.scenario.errors import ScenarioLoadError


def resolve_scenario_path(name: str) -> Path:
    """A bundled scenario's slug, or a path to a scenario folder."""
    bundled = Path(settings.SCENARIO_LIBRARY_DIR) / name
    if bundled.is_dir():
        return bundled
    path = Path(name)
    if path.is_dir():
        return path
    available = sorted(p.name for p in Path(settings.SCENARIO_LIBRARY_DIR).iterdir() if p.is_dir())
    raise CommandError(f"No scenario {name!r}: give a bundled one ({', '.join(available)}) or a scenario folder.")


class Command(BaseCommand):
    help = "Run a scenario end to end and write its state and Markdown views to the output folder."

    def add_arguments(self, parser) -> None:
        parser.add_argument("scenario", help="a bundled scenario (e.g. ai-summit) or a path to a scenario folder")
        parser.add_argument("--turns", type=int, help="turns to play (default: the scenario's)")
        parser.add_argument("--credit-limit", type=float, help="stop before spending more than this many USD")
        parser.add_argument("--seed", type=int, help="seed for outside events and the offline provider")
        parser.add_argument("--output", type=Path, help="folder for run folders (default: output/)")
        parser.add_argument("--model", help="play every seat, the world and the judge with this model (e.g. local/gemma)")
        parser.add_argument("--provider", choices=PROVIDER_CHOICES, help="send every call to this server (default: by model)")
        parser.add_argument("--no-cache", action="store_true", help="do not answer from, or store in, the response cache")

    def handle(self, *args, **options) -> None:
        path = resolve_scenario_path(options["scenario"])
        try:
            scenario = Scenario.load(path)
        except ScenarioLoadError as exc:
            raise CommandError(str(exc)) from None
        for warning in scenario.warnings:
            self.stderr.write(self.style.WARNING(warning))
        if options["model"]:
            scenario = with_model(scenario, options["model"])
        try:
            choice = provider_from_environment(scenario, provider=options["provider"])
        except (RoutingError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        run_id = uuid.uuid4().hex
        provider = choice.provider
        cache_scope = os.environ.get("SCENARIOLAB_CACHE", "run")  # run | shared | off
        if not choice.offline and not options["no_cache"] and cache_scope != "off":
            cache = SqliteResponseCache(Path(settings.DATA_DIR) / "llm-cache.sqlite3")
            provider = CachingProvider(provider, cache, scope=run_id if cache_scope == "run" else None)
        turns = options["turns"] or scenario.config.turns
        estimate = estimate_run_cost(scenario, provider, turns=turns)
        self.stdout.write(self.style.MIGRATE_HEADING(f"{scenario.name} — {len(scenario.actors)} actors, {turns} turns"))
        self.stdout.write(f"Provider: {choice.description}")
        self.stdout.write(estimate.describe())
        if estimate.max_cost > 0:
            self.stdout.write(estimate.table())

        output_root = options["output"] or Path(settings.RUNS_OUTPUT_DIR) / path.name
        bus = EventBus()
        bus.on("*", self._progress)
        runner = Runner(provider=provider, bus=bus, persistence=FilesystemPersistence(output_root))
        try:
            state = asyncio.run(
                runner.run_async(scenario, max_turns=turns, credit_limit=options["credit_limit"], seed=options["seed"], run_id=run_id)
            )
        except ValueError as exc:  # a nonsense credit limit, say
            raise CommandError(str(exc)) from None
        folder = output_root / state.run_id
        style = self.style.SUCCESS if state.status.value == "completed" else self.style.ERROR
        self.stdout.write(style(f"Run {state.status.value} after {state.turn} turns."))
        if state.halt_reason or state.error:
            self.stdout.write(state.halt_reason or state.error or "")
        self.stdout.write(f"Cost: ${state.total_cost:.4f} over {len(state.costs)} calls ({state.total_tokens:,} tokens).")
        self.stdout.write(f"Output: {folder} (summary.md, world-state-NNN.md, one file per actor and turn)")

    def _progress(self, event: Event) -> None:
        data = event.data
        if event.type is EventType.TURN_STARTED:
            self.stdout.write(f"Turn {data['turn']}…")
        elif event.type is EventType.ACTOR_DECISION_COMPLETED:
            self.stdout.write(f"  {data['actor']}: {str(data['action'])[:110]}")
        elif event.type is EventType.CREDIT_LIMIT_WARNING:
            self.stdout.write(self.style.WARNING(f"  80% of the credit limit spent (${data['spent']:.4f} of ${data['limit']:.2f})"))
        elif event.type is EventType.TURN_COMPLETED:
            self.stdout.write(f"  turn {data['turn']} done, ${data['total_cost']:.4f} so far")
