"""`manage.py compare_runs RUN RUN [...]`: stored runs side by side in the terminal; a run by its id or its
folder's name (`run-001`, `ai-summit/run-001`).

Per run its scenario, status, turns and costs; metrics per turn; each actor's decision at one turn; the final
worlds as a unified diff against the first run's. Exit codes: 0, or 2 for bad input (one line saying what).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from engine.run_names import run_folder_name
from engine.visibility import FULL
from runs.comparison import ComparisonError, RunComparison, run_comparison
from runs.management.commands.run_scenario import bad_input
from runs.selectors import run_by_label

ACTION_WIDTH = 110
CELL_WIDTH = 12


class Command(BaseCommand):
    help = "Compare runs: costs by actor and phase, metrics per turn, decisions at a turn, a diff of the final worlds."

    def add_arguments(self, parser) -> None:
        parser.add_argument("runs", nargs="+", metavar="RUN",
                            help="two or more runs: ids (7) or folder names (run-001, ai-summit/run-001)")
        parser.add_argument("--turn", type=int, help="whose decisions to compare (default: the last turn every run completed)")
        parser.add_argument("--json", action="store_true", help="print the comparison as JSON")

    def handle(self, *args, **options) -> None:
        try:
            run_ids = [run_by_label(label).pk for label in options["runs"]]
        except LookupError as exc:
            raise bad_input(str(exc)) from None
        if len(set(run_ids)) < 2:
            raise bad_input("Give at least two different runs to compare (ids or folder names, as `run_scenario` prints them).")
        try:
            # The terminal is the machine's operator: every run in full, as staff read them.
            comparison = run_comparison(run_ids=run_ids, turn=options["turn"], viewpoint_of=lambda run: FULL)
        except ComparisonError as exc:
            raise bad_input(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(comparison.as_dict(), indent=2))
            return
        for line in self.render(comparison):
            self.stdout.write(line)

    def render(self, comparison: RunComparison) -> list[str]:
        heading = self.style.MIGRATE_HEADING
        runs = comparison.runs
        lines: list[str] = []
        for run in runs:
            offline = " (offline)" if run.offline else ""
            lines.append(heading(f"Run {run.id}: {run.scenario} {run_folder_name(run.number)}, {run.status}, "
                                 f"{run.turn} of {run.max_turns} turns, ${run.total_cost:.4f} over {run.calls} calls{offline}"))
            lines.append(f"  provider: {run.provider}")
            for label, costs in (("by actor", run.cost_by_actor), ("by phase", run.cost_by_phase)):
                lines.append(f"  cost {label}: {', '.join(f'{k} ${v:.4f}' for k, v in costs.items()) or 'nothing'}")

        lines.append(heading("Metrics per turn"))
        if comparison.metrics:
            width = min(40, max(len(row.metric) for row in comparison.metrics))
            lines.append(f"  {'metric':<{width}} {'turn':>4}" + "".join(f"{'run ' + str(r.id):>{CELL_WIDTH}}" for r in runs))
            for row in comparison.metrics:
                cells = "".join(f"{_cell(value):>{CELL_WIDTH}}" for value in row.values)
                lines.append(f"  {row.metric[:width]:<{width}} {row.turn:>4}{cells}")
        else:
            lines.append("  no metrics recorded")

        if comparison.decision_turn is None:
            lines.append(heading("Decisions: the runs have no completed turn in common"))
        else:
            lines.append(heading(f"Decisions at turn {comparison.decision_turn}"))
            for actor in comparison.decisions:
                lines.append(f"  {actor.actor}")
                for run, decision in zip(runs, actor.decisions):
                    action = decision.action.replace("\n", " ")[:ACTION_WIDTH] if decision else "(no decision)"
                    lines.append(f"    run {run.id}: {action}")

        for world in comparison.world_diffs:
            lines.append(heading(f"Final world: run {world.run} (turn {world.turn}) against "
                                 f"run {world.base_run} (turn {world.base_turn})"))
            lines.append(world.diff or "  the same")
        return lines


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return text if len(text) < CELL_WIDTH else text[: CELL_WIDTH - 2] + "…"
