"""Runs side by side: what each cost, its metrics per turn, each actor's decisions at one turn, the final worlds.

A selector: it reads stored runs and returns a typed, JSON-ready structure that the terminal (`compare_runs`)
prints and that a page or the API can render the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runs import selectors
from runs.models import Decision, MetricRecord, Run, Turn


class ComparisonError(ValueError):
    """A run to compare does not exist, or no run compared has reached the turn asked for."""


@dataclass(frozen=True)
class ComparedRun:
    id: int
    scenario: str  # the slug
    scenario_name: str
    number: int
    status: str  # as people see it: "crashed" for a running run whose worker died
    turn: int  # last completed turn
    max_turns: int
    provider: str
    offline: bool
    total_cost: float
    calls: int
    cost_by_actor: dict[str, float]  # "world" for calls made by the world, judge and QA models
    cost_by_phase: dict[str, float]


@dataclass(frozen=True)
class MetricRow:
    """One metric at one turn: a value per run, in the comparison's order; None where a run has none."""

    metric: str  # "name", or "name (actor)" for an actor's metric
    turn: int
    values: tuple[Any, ...]


@dataclass(frozen=True)
class DecisionText:
    action: str
    reasoning: str
    short_term_priorities: tuple[str, ...]


@dataclass(frozen=True)
class ActorDecisions:
    """One actor's decision at the compared turn in each run; None where that run recorded none."""

    actor: str
    decisions: tuple[DecisionText | None, ...]


@dataclass(frozen=True)
class WorldDiff:
    """A run's last world against the first run's, as a unified diff; empty when the two are the same."""

    base_run: int
    base_turn: int
    run: int
    turn: int
    diff: str


@dataclass(frozen=True)
class RunComparison:
    runs: tuple[ComparedRun, ...]
    metrics: tuple[MetricRow, ...]
    decision_turn: int | None  # None when the runs have no completed turn in common and none was asked for
    decisions: tuple[ActorDecisions, ...]
    world_diffs: tuple[WorldDiff, ...]  # every run after the first against the first

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_comparison(*, run_ids: Sequence[int], turn: int | None = None) -> RunComparison:
    """Compare stored runs in the order given. `turn`: whose decisions to compare (default: the last turn every
    run completed). Raises ComparisonError for an unknown run or a turn no run has reached."""
    run_ids = list(dict.fromkeys(run_ids))  # a run named twice is compared once
    if not run_ids:
        raise ComparisonError("Name at least one run to compare.")
    found = Run.objects.in_bulk(run_ids)
    missing = [str(run_id) for run_id in run_ids if run_id not in found]
    if missing:
        raise ComparisonError(f"No run {', '.join(missing)}.")
    runs = [found[run_id] for run_id in run_ids]
    reached = max(run.turn for run in runs)
    if turn is not None and not 1 <= turn <= reached:
        turns = ", ".join(str(run.turn) for run in runs)
        raise ComparisonError(f"--turn {turn}: pick a turn from 1 to {reached} (the runs completed turns {turns}).")
    if turn is None:
        common = min(run.turn for run in runs)
        turn = common if common >= 1 else None
    return RunComparison(
        runs=tuple(_compared(run) for run in runs),
        metrics=_metrics(runs),
        decision_turn=turn,
        decisions=_decisions(runs, turn) if turn is not None else (),
        world_diffs=_world_diffs(runs),
    )


def _compared(run: Run) -> ComparedRun:
    breakdown = selectors.run_cost_breakdown(run=run)
    return ComparedRun(
        id=run.pk,
        scenario=run.scenario_slug,
        scenario_name=run.scenario_name,
        number=run.number,
        status=selectors.run_display_status(run),
        turn=run.turn,
        max_turns=run.max_turns,
        provider=run.provider,
        offline=run.offline,
        total_cost=run.total_cost,
        calls=run.calls,
        cost_by_actor={name: row["cost"] for name, row in breakdown["by_actor"].items()},
        cost_by_phase={name: row["cost"] for name, row in breakdown["by_phase"].items()},
    )


def _metrics(runs: list[Run]) -> tuple[MetricRow, ...]:
    column = {run.pk: index for index, run in enumerate(runs)}
    cells: dict[str, dict[int, list[Any]]] = {}  # metric -> turn -> a value per run; metrics in first-seen order
    records = MetricRecord.objects.filter(run__in=runs).order_by("turn", "position")
    for record in sorted(records, key=lambda r: column[r.run_id]):  # stable: turn and position order kept per run
        name = f"{record.name} ({record.actor})" if record.actor else record.name
        values = cells.setdefault(name, {}).setdefault(record.turn, [None] * len(runs))
        values[column[record.run_id]] = record.value
    return tuple(
        MetricRow(metric=name, turn=turn, values=tuple(values))
        for name, turns in cells.items()
        for turn, values in sorted(turns.items())
    )


def _decisions(runs: list[Run], turn: int) -> tuple[ActorDecisions, ...]:
    column = {run.pk: index for index, run in enumerate(runs)}
    # Seats in each run's order first, then anyone who decided without a seat listed (an older snapshot).
    actors = {seat["short_name"]: [None] * len(runs) for run in runs for seat in run.actors}
    for decision in Decision.objects.filter(run__in=runs, turn=turn).order_by("position"):
        text = DecisionText(
            action=decision.action,
            reasoning=decision.reasoning,
            short_term_priorities=tuple(str(item) for item in decision.short_term_priorities or ()),
        )
        actors.setdefault(decision.actor, [None] * len(runs))[column[decision.run_id]] = text
    return tuple(ActorDecisions(actor=actor, decisions=tuple(cells)) for actor, cells in actors.items())


def _world_diffs(runs: list[Run]) -> tuple[WorldDiff, ...]:
    last: dict[int, Turn] = {}
    for world in Turn.objects.filter(run__in=runs).order_by("turn"):
        last[world.run_id] = world  # the highest turn wins
    base = runs[0]
    base_world = last.get(base.pk)
    base_text, base_turn = (base_world.world_state, base_world.turn) if base_world else ("", 0)
    diffs = []
    for run in runs[1:]:
        world = last.get(run.pk)
        text, turn = (world.world_state, world.turn) if world else ("", 0)
        lines = difflib.unified_diff(
            base_text.splitlines(), text.splitlines(),
            fromfile=f"run {base.pk}, turn {base_turn}", tofile=f"run {run.pk}, turn {turn}", lineterm="",
        )
        diffs.append(WorldDiff(base_run=base.pk, base_turn=base_turn, run=run.pk, turn=turn, diff="\n".join(lines)))
    return tuple(diffs)
