"""`manage.py import_scenarios [PATH ...] [--update]`: store scenario folders (default: the bundled library)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from engine.scenario import Scenario as EngineScenario
from engine.scenario import ScenarioLoadError
from scenarios.selectors import scenario_slug_exists
from scenarios.services import ScenarioImportError, scenario_from_engine, scenario_import_library

BAD_INPUT = 2


def _load_problem(path: str, exc: ScenarioLoadError) -> str:
    """One line for one problem; a folder with several gets the loader's list, one problem a line."""
    if len(exc.errors) == 1:
        return f"{path}: {exc.errors[0]}"
    return str(exc)


class Command(BaseCommand):
    help = ("Store scenario folders in the database; with no PATH, the bundled library. Existing scenarios "
            "(same slug: the folder's name) are left alone unless --update.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="*", metavar="PATH", help="scenario folders (default: the bundled library)")
        parser.add_argument("--update", action="store_true", help="replace scenarios that already exist")

    def handle(self, *args, **options) -> None:
        update: bool = options["update"]
        try:
            if not options["paths"]:
                stored = scenario_import_library(update=update)
                self._report([s.slug for s in stored], [])
                return
            # Every folder is loaded before anything is stored: one bad folder stores nothing.
            loaded = []
            for path in options["paths"]:
                try:
                    loaded.append((slugify(Path(path).resolve().name)[:100], EngineScenario.load(path)))
                except ScenarioLoadError as exc:
                    raise CommandError(_load_problem(path, exc), returncode=BAD_INPUT) from None
            slugs = [slug for slug, _ in loaded]
            repeated = sorted({slug for slug in slugs if slugs.count(slug) > 1})
            if repeated:
                raise CommandError(f"several folders would be stored as {', '.join(repeated)}; rename one",
                                   returncode=BAD_INPUT)
            stored, skipped = [], []
            with transaction.atomic():
                for slug, config in loaded:
                    if scenario_slug_exists(slug=slug) and not update:
                        skipped.append(slug)
                    else:
                        stored.append(scenario_from_engine(config=config, slug=slug).slug)
            self._report(stored, skipped)
        except ScenarioLoadError as exc:  # a broken bundled scenario
            raise CommandError(str(exc), returncode=BAD_INPUT) from None
        except ScenarioImportError as exc:
            raise CommandError(str(exc), returncode=BAD_INPUT) from None

    def _report(self, stored: list[str], skipped: list[str]) -> None:
        for slug in stored:
            self.stdout.write(f"stored {slug}")
        for slug in skipped:
            self.stdout.write(f"skipped {slug}: already stored (use --update to replace it)")
        if not stored and not skipped:
            self.stdout.write("nothing to store: every scenario is already stored (use --update to replace them)")
