"""`manage.py import_v1_run RUN_DIR [--scenario SLUG_OR_FOLDER]`: store a V1 run directory as a run.

Exit codes: 0 imported, 2 bad input (one line naming the file and what to do).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from runs import selectors
from runs.models import RunStatus


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=2)


class Command(BaseCommand):
    help = ("Store a run directory written by V1's run_scenario.py (scenario-state.json and its files) as a run: "
            "its turns, decisions, talks, ledger and metrics appear on the run pages and in the API.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_dir", help="the V1 run directory (the folder holding scenario-state.json)")
        parser.add_argument("--scenario", metavar="SLUG_OR_FOLDER",
                            help="the scenario the run was played with: a stored scenario's slug or a scenario folder "
                                 "(default: the folder the run names, or a stored scenario of its name)")
        parser.add_argument("--owner", metavar="USERNAME", help="the person the run belongs to (default: staff only)")
        parser.add_argument("--again", action="store_true", help="import a run that was imported before, as a new run")

    def handle(self, *args, **options) -> None:
        # here: the importer loads the run services and the orchestrator, which `--help` does not need
        from runs.v1_import import V1ImportError, V1RunAlreadyImported, V1ScenarioNotFound, run_import_v1

        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise bad_input(f"--owner {options['owner']}: no such user; create them first or leave --owner out")
        try:
            run = run_import_v1(folder=options["run_dir"], scenario=options["scenario"], owner=owner, again=options["again"])
        except V1ScenarioNotFound as exc:
            raise bad_input(f"{exc} (pass --scenario SLUG_OR_FOLDER)") from None
        except V1RunAlreadyImported as exc:
            raise bad_input(f"{exc} (pass --again)") from None
        except V1ImportError as exc:
            raise bad_input(str(exc)) from None
        status = selectors.run_display_status(run)
        self.stdout.write(self.style.SUCCESS(f"Imported {options['run_dir']} as run {run.pk} ({run}) of scenario {run.scenario_slug}."))
        self.stdout.write(f"{status} after {run.turn} of {run.max_turns} turns" + (f": {run.halt_reason}" if run.halt_reason else "."))
        self.stdout.write(f"Ledger: {run.calls} calls, {run.total_tokens:,} tokens, ${run.total_cost:.4f}.")
        self.stdout.write(f"Run page: {settings.SITE_URL}{reverse('runs:detail', args=[run.pk])}")
        if run.status in (RunStatus.PAUSED, RunStatus.HALTED, RunStatus.FAILED):
            self.stdout.write(f"Resume it with: python manage.py run_scenario --resume {run.pk}")
