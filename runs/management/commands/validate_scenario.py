"""`manage.py validate_scenario SCENARIO`: load a stored scenario or a folder and report its problems.

Exit codes: 0 valid (warnings may be printed), 2 invalid or not found (every problem with its file, key and line).
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from engine.scenario.errors import ScenarioLoadError
from runs.management.commands.run_scenario import folder_scenario, load_problem, resolve_scenario


class Command(BaseCommand):
    help = "Validate a scenario (a stored one's slug or a folder): every problem with its file, key and line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("scenario", help="a stored scenario's slug (e.g. ai-summit) or a scenario folder")

    def handle(self, *args, **options) -> None:
        path = Path(options["scenario"])
        try:
            # A folder is validated as it is, without a database; a name is looked up among the stored ones.
            config, slug = folder_scenario(path) if path.is_dir() else resolve_scenario(options["scenario"])[1:]
        except ScenarioLoadError as exc:
            raise load_problem(exc) from None
        for warning in config.warnings:
            self.stdout.write(self.style.WARNING(f"warning: {warning}"))
        self.stdout.write(self.style.SUCCESS(
            f"{slug} is valid: {config.name}, {len(config.actors)} actors, {config.config.turns} turns."
        ))
