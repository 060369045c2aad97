"""Runs side by side: what each cost, its metrics per turn, each actor's decisions at one turn, the final worlds.

A selector: it reads stored runs in a fixed number of queries, however many runs are compared, and returns a
typed, JSON-ready structure that the terminal (`compare_runs`), the compare page and the API render.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from engine.seats import HUMAN
from engine.llm.offline import played_by
from engine.run_names import run_folder_name
from engine.visibility import Viewpoint
from runs import selectors
from runs.execution.mapping import decision_of
from runs.models import CostRecord, Decision, MetricRecord, Run, Turn

MAX_RUNS = 20  # what a page or an API call compares at once; a table or chart wider than this reads badly
_LARGEST_ID = 2**63 - 1  # a larger id is no run's (and would overflow the database's integer)


class ComparisonError(ValueError):
    """Bad input: too few or too many runs, or a turn no run compared has reached. `field`: which input."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class RunNotFound(ComparisonError):
    """A run to compare does not exist, or is not among the runs the caller may compare."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="ids")


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
    models: tuple[str, ...]  # the seats' models
    seed: int
    credit_limit: float | None
    total_cost: float
    calls: int
    cost_by_actor: dict[str, float]  # "world" for calls made by the world, judge and QA models
    cost_by_phase: dict[str, float]
    final_turn: int  # the turn of the last stored world (0: the start)
    final_world: str

    @property
    def label(self) -> str:
        return f"#{self.id} {self.scenario} {run_folder_name(self.number)}"


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
    model: str  # "human" for a person's decision in a seat


@dataclass(frozen=True)
class ActorDecisions:
    """One actor's decision at the compared turn in each run; None where that run recorded none."""

    actor: str
    name: str
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
    last_turn: int  # the furthest any run compared got: decisions can be compared at turns 1 to this
    decision_turn: int | None  # None when the runs have no completed turn in common and none was asked for
    decisions: tuple[ActorDecisions, ...]
    world_diffs: tuple[WorldDiff, ...]  # every run after the first against the first
    actor_names: dict[str, str]  # short name -> name, over every run's seats

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def cost_rows(self, by: str) -> list[tuple[str, tuple[float | None, ...]]]:
        """The cost `by` "actor" or "phase" as table rows: a name, then its cost in each run (None: no such
        line in that run's ledger), names in first-seen order."""
        columns = [run.cost_by_actor if by == "actor" else run.cost_by_phase for run in self.runs]
        names = dict.fromkeys(name for costs in columns for name in costs)
        return [(name, tuple(costs.get(name) for costs in columns)) for name in names]

    def metric_charts(self) -> list[dict[str, Any]]:
        """Per metric, the turns it was recorded at and one line per run (numbers only; None is a gap): what
        a chart overlays. A metric with no number at all (text, yes/no) is left to the table."""
        charts: dict[str, dict[int, tuple[Any, ...]]] = {}
        for row in self.metrics:
            charts.setdefault(row.metric, {})[row.turn] = row.values
        result = []
        for metric, by_turn in charts.items():
            turns = sorted(by_turn)
            series = [
                {"run": run.id, "label": run.label,
                 "values": [_number(by_turn[turn][column]) for turn in turns]}
                for column, run in enumerate(self.runs)
            ]
            if any(value is not None for line in series for value in line["values"]):
                result.append({"metric": metric, "turns": turns, "series": series})
        return result


def run_comparison(*, run_ids: Sequence[int], turn: int | None = None, among: QuerySet[Run] | None = None,
                   viewpoint_of: Callable[[Run], Viewpoint]) -> RunComparison:
    """Compare two or more stored runs in the order given (a run named twice is compared once). `turn`: whose
    decisions to compare (default: the last turn every run completed). `among`: the runs that may be compared
    (a person's, `selectors.runs_for`); any other is reported exactly like one that does not exist.
    `viewpoint_of`: what the reader may know of each run (`runs.reading`); decisions show no more.

    Raises RunNotFound for a run that is not there, ComparisonError for other bad input."""
    run_ids = list(dict.fromkeys(run_ids))
    if len(run_ids) < 2:
        raise ComparisonError("Name at least two different runs to compare.", field="ids")
    if len(run_ids) > MAX_RUNS:
        raise ComparisonError(f"Compare at most {MAX_RUNS} runs at once, not {len(run_ids)}.", field="ids")
    candidates = Run.objects.all() if among is None else among
    found = candidates.in_bulk([run_id for run_id in run_ids if 1 <= run_id <= _LARGEST_ID])
    missing = [str(run_id) for run_id in run_ids if run_id not in found]
    if missing:
        raise RunNotFound(f"No run {', '.join(missing)}.")
    runs = [found[run_id] for run_id in run_ids]
    reached = max(run.turn for run in runs)
    if turn is not None and not 1 <= turn <= reached:
        turns = ", ".join(str(run.turn) for run in runs)
        if reached:
            message = f"--turn {turn}: pick a turn from 1 to {reached} (the runs completed turns {turns})."
        else:
            message = f"--turn {turn}: none of the runs has completed a turn yet."
        raise ComparisonError(message, field="turn")
    if turn is None:
        common = min(run.turn for run in runs)
        turn = common if common >= 1 else None
    names = {seat["short_name"]: seat.get("name") or seat["short_name"] for run in runs for seat in run.actors}
    worlds = _last_worlds(runs)
    return RunComparison(
        runs=_compared(runs, worlds),
        metrics=_metrics(runs),
        last_turn=reached,
        decision_turn=turn,
        decisions=_decisions(runs, turn, names, viewpoint_of) if turn is not None else (),
        world_diffs=_world_diffs(runs, worlds),
        actor_names=names,
    )


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _costs_by(runs: list[Run], field: str) -> dict[int, dict[str, float]]:
    """Each run's cost summed by `field` in one query for all runs (`ledger_sums`)."""
    costs: dict[int, dict[str, float]] = {run.pk: {} for run in runs}
    for line in selectors.ledger_sums(CostRecord.objects.filter(run__in=runs), ("run", field)):
        costs[line["run"]][line[field]] = line["cost"]
    return costs


def _compared(runs: list[Run], worlds: dict[int, Turn]) -> tuple[ComparedRun, ...]:
    by_actor, by_phase = _costs_by(runs, "actor"), _costs_by(runs, "phase")
    compared = []
    for run in runs:
        world = worlds.get(run.pk)
        compared.append(ComparedRun(
            id=run.pk,
            scenario=run.scenario_slug,
            scenario_name=run.scenario_name,
            number=run.number,
            status=selectors.run_display_status(run),
            turn=run.turn,
            max_turns=run.max_turns,
            provider=run.provider,
            offline=run.offline,
            models=tuple(sorted({seat["model"] for seat in run.actors if seat.get("model")})),
            seed=run.seed,
            credit_limit=run.credit_limit,
            total_cost=run.total_cost,
            calls=run.calls,
            cost_by_actor=by_actor[run.pk],
            cost_by_phase=by_phase[run.pk],
            final_turn=world.turn if world else 0,
            final_world=world.world_state if world else "",
        ))
    return tuple(compared)


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


def _decisions(runs: list[Run], turn: int, names: dict[str, str],
               viewpoint_of: Callable[[Run], Viewpoint]) -> tuple[ActorDecisions, ...]:
    column = {run.pk: index for index, run in enumerate(runs)}
    viewpoints = {run.pk: viewpoint_of(run) for run in runs}
    # Seats in each run's order first, then anyone who decided without a seat listed (an older snapshot).
    actors = {seat["short_name"]: [None] * len(runs) for run in runs for seat in run.actors}
    for row in Decision.objects.filter(run__in=runs, turn=turn).order_by("position"):
        decision = viewpoints[row.run_id].decision(decision_of(row))
        text = DecisionText(
            action=decision.action,
            reasoning=decision.reasoning,
            short_term_priorities=tuple(str(item) for item in decision.short_term_priorities or ()),
            model=HUMAN if decision.provider == HUMAN else played_by(decision.model, decision.provider),
        )
        actors.setdefault(decision.actor, [None] * len(runs))[column[row.run_id]] = text
    return tuple(ActorDecisions(actor=actor, name=names.get(actor, actor), decisions=tuple(cells))
                 for actor, cells in actors.items())


def _last_worlds(runs: list[Run]) -> dict[int, Turn]:
    """Each run's last stored world, in one query: only the last turn's text is read, however long the runs."""
    last = Turn.objects.filter(run=OuterRef("run")).order_by("-turn").values("turn")[:1]
    return {world.run_id: world for world in Turn.objects.filter(run__in=runs, turn=Subquery(last))}


def _world_diffs(runs: list[Run], worlds: dict[int, Turn]) -> tuple[WorldDiff, ...]:
    base = runs[0]
    base_world = worlds.get(base.pk)
    base_text, base_turn = (base_world.world_state, base_world.turn) if base_world else ("", 0)
    diffs = []
    for run in runs[1:]:
        world = worlds.get(run.pk)
        text, turn = (world.world_state, world.turn) if world else ("", 0)
        lines = difflib.unified_diff(
            base_text.splitlines(), text.splitlines(),
            fromfile=f"run {base.pk}, turn {base_turn}", tofile=f"run {run.pk}, turn {turn}", lineterm="",
        )
        diffs.append(WorldDiff(base_run=base.pk, base_turn=base_turn, run=run.pk, turn=turn, diff="\n".join(lines)))
    return tuple(diffs)


# ---- a unified diff as people read it: each line marked, and within a changed line the words that changed -------
@dataclass(frozen=True)
class DiffLine:
    kind: str  # "file" (the ---/+++ lines), "hunk" (@@), "context", "removed" or "added"
    sign: str  # the diff's first column: "-", "+", " ", or "" for file and hunk lines
    segments: tuple[tuple[bool, str], ...]  # (changed, text): the words that differ from the paired line


_WORDS = re.compile(r"\s+|[^\s]+")
_MOST_WORD_PAIRS = 250_000  # beyond this a pair of lines is marked as a whole: matching words grows as their product


def diff_lines(diff: str) -> list[DiffLine]:
    """Read a unified diff (as `WorldDiff.diff`) into marked lines. A block of removed lines followed by a
    block of added ones is paired line by line, and each pair marks the words that changed; the text itself
    is left as it is (escaping is the template's)."""
    lines = diff.splitlines()
    result: list[DiffLine] = [DiffLine("file", "", ((False, line),)) for line in lines[:2]]
    removed: list[str] = []
    added: list[str] = []

    def flush() -> None:
        for index in range(max(len(removed), len(added))):
            old = removed[index] if index < len(removed) else None
            new = added[index] if index < len(added) else None
            if old is not None and new is not None:
                old_segments, new_segments = _changed_words(old, new)
            else:
                old_segments = ((False, old),) if old is not None else ()
                new_segments = ((False, new),) if new is not None else ()
            if old is not None:
                result.append(DiffLine("removed", "-", old_segments))
            if new is not None:
                result.append(DiffLine("added", "+", new_segments))
        removed.clear()
        added.clear()

    for line in lines[2:]:
        sign, text = line[:1], line[1:]
        if sign == "-" and not added:
            removed.append(text)
        elif sign == "+":
            added.append(text)
        else:
            flush()
            if sign == "-":  # a removed line right after added ones starts a new block
                removed.append(text)
            elif line.startswith("@@"):
                result.append(DiffLine("hunk", "", ((False, line),)))
            else:
                result.append(DiffLine("context", " ", ((False, text),)))
    flush()
    return result


def _changed_words(old: str, new: str) -> tuple[tuple[tuple[bool, str], ...], tuple[tuple[bool, str], ...]]:
    old_words, new_words = _WORDS.findall(old), _WORDS.findall(new)
    if len(old_words) * len(new_words) > _MOST_WORD_PAIRS:
        return ((True, old),), ((True, new),)
    old_segments: list[tuple[bool, str]] = []
    new_segments: list[tuple[bool, str]] = []
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        changed = tag != "equal"
        if old_end > old_start:
            old_segments.append((changed, "".join(old_words[old_start:old_end])))
        if new_end > new_start:
            new_segments.append((changed, "".join(new_words[new_start:new_end])))
    return _joined(old_segments), _joined(new_segments)


def _joined(segments: list[tuple[bool, str]]) -> tuple[tuple[bool, str], ...]:
    """Spaces between two changed words count as changed, so a changed phrase is marked as one."""
    joined: list[tuple[bool, str]] = []
    for index, (changed, text) in enumerate(segments):
        between_changes = 0 < index < len(segments) - 1 and segments[index - 1][0] and segments[index + 1][0]
        changed = changed or (between_changes and not text.strip())
        if joined and joined[-1][0] == changed:
            joined[-1] = (changed, joined[-1][1] + text)
        else:
            joined.append((changed, text))
    return tuple(joined)
