"""`manage.py estimate_scenario SCENARIO`: the provider and cost estimate a run would show before starting.

Nothing is run or stored but the bundled library. Exit codes: 0, or 2 for bad input (one line saying what).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from engine.llm.routing import PROVIDER_CHOICES
from engine.scenario.errors import ScenarioLoadError
from runs.management.commands.run_scenario import bad_input, describe_plan, load_problem, resolve_scenario


class Command(BaseCommand):
    help = "Estimate what a run of a scenario would cost, low to high by actor and phase, without running it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("scenario", help="a stored scenario's slug (e.g. ai-summit) or a scenario folder")
        parser.add_argument("--turns", type=int, help="turns to play (default: the scenario's)")
        parser.add_argument("--credit-limit", type=float, help="USD the run may spend (default: the scenario's)")
        parser.add_argument("--model", help="play every seat, the world and the judge with this model")
        parser.add_argument("--provider", choices=PROVIDER_CHOICES, help="send every call to this server (default: by model)")
        parser.add_argument("--json", action="store_true", help="print the estimate as JSON (the API's shape)")

    def handle(self, *args, **options) -> None:
        from runs import services  # here: it loads the orchestrator, which `--help` does not need

        try:
            _, config, slug = resolve_scenario(options["scenario"])
        except ScenarioLoadError as exc:
            raise load_problem(exc) from None
        for warning in config.warnings:
            self.stderr.write(self.style.WARNING(warning))
        try:
            plan = services.run_plan(
                config=config,
                turns=options["turns"],
                credit_limit=options["credit_limit"],
                model=options["model"] or "",
                provider=options["provider"] or "",
            )
        except services.RunInputError as exc:
            raise bad_input(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps({"scenario": slug, **plan.estimate_summary()}, indent=2))
            return
        for line in describe_plan(plan, self.style):
            self.stdout.write(line)
