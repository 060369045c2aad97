"""Reads about runs: lookups, whether a run has crashed, cost breakdowns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from runs.models import CostRecord, Run, RunStatus

CRASHED = "crashed"
RESUMABLE = {RunStatus.PAUSED, RunStatus.HALTED, RunStatus.FAILED, RunStatus.COMPLETED, RunStatus.WAITING_FOR_HUMAN}


def run_get(*, run_id: int) -> Run | None:
    return Run.objects.filter(pk=run_id).first()


def run_is_crashed(run: Run, *, now: datetime | None = None) -> bool:
    """A running run whose worker stopped writing its heartbeat: the process died (kill -9, a reboot)."""
    if run.status != RunStatus.RUNNING:
        return False
    if run.heartbeat_at is None:
        return True
    return (now or timezone.now()) - run.heartbeat_at > timedelta(seconds=settings.RUN_STALE_SECONDS)


def runs_with_status(runs: QuerySet[Run], status: str) -> QuerySet[Run]:
    """Filter by the status people see: "crashed" is running with a stale heartbeat, "running" a live one."""
    stale = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
    crashed = Q(status=RunStatus.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))
    if status == CRASHED:
        return runs.filter(crashed)
    if status == RunStatus.RUNNING:
        return runs.filter(status=RunStatus.RUNNING).exclude(crashed)
    return runs.filter(status=status)


def run_display_status(run: Run) -> str:
    return CRASHED if run_is_crashed(run) else run.status


def run_is_resumable(run: Run) -> bool:
    return run.status in RESUMABLE or run_is_crashed(run)


def run_progress(run: Run) -> str:
    return f"{run.turn}/{run.max_turns}"


def run_cost_breakdown(*, run: Run) -> dict[str, dict]:
    """Cost, tokens and calls by actor, phase and turn, summed by the database from the ledger."""
    ledger = CostRecord.objects.filter(run=run)

    def grouped(field: str) -> dict:
        rows = ledger.values(field).annotate(cost=Sum("cost"), input=Sum("input_tokens"), output=Sum("output_tokens"), calls=Count("id"))
        return {
            (row[field] if row[field] != "" else "world"): {
                "cost": row["cost"], "tokens": row["input"] + row["output"], "calls": row["calls"],
            }
            for row in rows.order_by(field)
        }

    return {"by_actor": grouped("actor"), "by_phase": grouped("phase"), "by_turn": grouped("turn")}


def runs_for(user) -> QuerySet[Run]:
    """The runs a person may see: staff see every run, everyone else their own, anonymous visitors none."""
    if not user.is_authenticated:
        return Run.objects.none()
    runs = Run.objects.select_related("owner", "scenario")
    return runs if user.is_staff else runs.filter(owner=user)


def run_visible_to(run: Run, user) -> bool:
    return user.is_authenticated and (user.is_staff or run.owner_id == user.pk)


# ---- branches: lineage and family trees ----------------------------------------------------------------------
def intervention_changes(intervention: dict | None) -> list[str]:
    """A branch's recorded intervention (`runs.branching`) as lines a person reads: what changed, from what."""
    if not intervention:
        return []
    before = intervention.get("before") or {}
    lines = []
    for actor, change in (intervention.get("actors") or {}).items():
        was = (before.get("actors") or {}).get(actor, {})
        if "model" in change:
            lines.append(f"{actor}: model {was.get('model', '?')} → {change['model']}")
        if "control" in change:
            lines.append(f"{actor}: seat {'human' if change['control'] == 'human' else 'AI'}-controlled (was {was.get('control', '?')})")
        if "system_prompt" in change:
            lines.append(f"{actor}: system prompt rewritten")
        if "goals" in change:
            lines.append(f"{actor}: goals now {'; '.join(change['goals']) or '(none)'}")
    if "world_state" in intervention:
        lines.append("world text at the branch point rewritten")

    def usd(value) -> str:
        return "no limit" if value is None else f"${value:g}"

    if "credit_limit" in intervention:
        lines.append(f"credit limit {usd(before.get('credit_limit'))} → {usd(intervention['credit_limit'])}")
    if "seed" in intervention:
        lines.append(f"seed {before.get('seed', '?')} → {intervention['seed']}")
    if "end_turn" in intervention:
        lines.append(f"end turn {before.get('end_turn', '?')} → {intervention['end_turn']}")
    return lines


@dataclass(frozen=True)
class FamilyMember:
    """One run of a family tree: its depth below the root, and (for a branch) what was changed where."""

    run: Run
    depth: int
    changes: list[str]
    note: str
    current: bool
    status: str  # as people see it: crashed, not running, for a dead worker's run


def run_family(*, run: Run, user=None) -> list[FamilyMember]:
    """The family tree `run` belongs to, root first, each run followed by its branches (by branch turn, then
    age). With `user`, only runs that person may see: the tree starts at the oldest ancestor they may see, and
    a branch they may not see is left out with everything below it."""
    def visible(candidate: Run) -> bool:
        return user is None or run_visible_to(candidate, user)

    root, seen = run, {run.pk}
    while root.parent_id is not None and root.parent_id not in seen:
        parent = Run.objects.select_related("owner").filter(pk=root.parent_id).first()
        if parent is None or not visible(parent):
            break
        root = parent
        seen.add(root.pk)
    children: dict[int, list[Run]] = {}
    frontier, known = [root.pk], {root.pk}
    while frontier:
        found = [r for r in Run.objects.select_related("owner").filter(parent_id__in=frontier).order_by("branch_turn", "pk")
                 if r.pk not in known and visible(r)]
        for branch in found:
            children.setdefault(branch.parent_id, []).append(branch)
            known.add(branch.pk)
        frontier = [branch.pk for branch in found]

    members: list[FamilyMember] = []

    def add(member: Run, depth: int) -> None:
        note = (member.intervention or {}).get("note", "")
        members.append(FamilyMember(member, depth, intervention_changes(member.intervention), note, member.pk == run.pk,
                                   run_display_status(member)))
        for branch in children.get(member.pk, []):
            add(branch, depth + 1)

    add(root, 0)
    return members
