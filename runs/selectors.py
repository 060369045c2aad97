"""Reads about runs: lookups, whether a run has crashed, cost breakdowns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts.quotas import user_queue_priority
from engine.seats import HUMAN, open_proposals
from engine.state import Communication as EngineCommunication
from engine.state import WORLD
from runs.execution.mapping import communication_of
from runs.models import (
    Communication, CostRecord, Decision, HumanDecision, Run, RunEvent, RunRole, RunStatus,
)

CRASHED = "crashed"
RESUMABLE = {RunStatus.PAUSED, RunStatus.HALTED, RunStatus.FAILED, RunStatus.COMPLETED, RunStatus.WAITING_FOR_HUMAN}


def run_get(*, run_id: int) -> Run | None:
    return Run.objects.filter(pk=run_id).first()


RUN_LABEL = re.compile(r"^(?:(?P<scenario>[A-Za-z0-9][\w.-]*)[/:])?run-(?P<number>\d{1,9})/?$")


def run_by_label(label: str) -> Run:
    """The run a person names in a terminal: its id (`7`), its folder's name (`run-001`: unique across scenarios,
    else which scenario must be said), `ai-summit/run-001`, or a run folder's path (`output/ai-summit/run-001`).
    LookupError says why a label names no run, or several."""
    text = label.strip()
    if text.isdigit():
        run = Run.objects.filter(pk=int(text)).first()
        if run is None:
            raise LookupError(f"No run {text}.")
        return run
    match = RUN_LABEL.match("/".join(text.rstrip("/").split("/")[-2:]) if "/" in text else text)
    if match is None:
        raise LookupError(f"{label!r} is not a run: give its id (7) or its folder's name (run-001, ai-summit/run-001)")
    runs = Run.objects.filter(number=int(match["number"]))
    if match["scenario"]:
        runs = runs.filter(scenario_slug=match["scenario"])
    found = list(runs.order_by("scenario_slug")[:10])
    if not found:
        raise LookupError(f"No run {text}.")
    if len(found) > 1:
        choices = ", ".join(f"{run.scenario_slug}/{run.label}" for run in found)
        raise LookupError(f"{text} names a run of several scenarios ({choices}): say which, e.g. {found[0].scenario_slug}/{text}")
    return found[0]


def run_events_after(*, run_id: int, after: int, limit: int) -> list[dict]:
    """A run's stored events after a seq, in order, as the pages' messages are made from them."""
    rows = RunEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")[:limit]
    return [{"seq": e.seq, "type": e.type, "data": e.data, "timestamp": e.timestamp.timestamp()} for e in rows]


# What a quota's runs under way counts: runs that go on without anyone starting them again (a run waiting for a
# person goes back to the queue the moment they decide).
UNDER_WAY = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_FOR_HUMAN)


def runs_under_way(*, owner) -> int:
    return Run.objects.filter(owner=owner, status__in=UNDER_WAY).count()


def run_queue_priority(run: Run) -> int:
    """Where a run's task goes in the workers' queue, higher first (ties in the order queued): behind the runs its
    owner has queued or running ahead of it, so the runs of different owners take turns. However many runs one
    owner queues (a batch), another owner's run is next, and waits for at most one run to end. A staff-set
    priority (the owner's quota: accounts.quotas) puts every run of its owner ahead of lower ones."""
    ahead = Run.objects.filter(owner_id=run.owner_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING], pk__lt=run.pk).count()
    return user_queue_priority(run.owner) * QUEUE_PRIORITY_STEP - ahead


QUEUE_PRIORITY_STEP = 1_000_000  # a priority step outweighs any owner's queue


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


def ledger_sums(lines: QuerySet[CostRecord], by: tuple[str, ...]) -> list[dict[str, Any]]:
    """The ledger lines summed by the fields `by` (of actor, phase, turn, run), in one query: each group's fields
    with its cost, tokens and calls. A call made for no actor is the world's (`WORLD`), as in the engine's own
    breakdown: every cost figure of pages, API, terminal and comparison comes from here."""
    rows = (lines.values(*by).annotate(cost=Sum("cost"), input=Sum("input_tokens"), output=Sum("output_tokens"),
                                       calls=Count("id")).order_by(*by))
    return [{**{field: (row[field] or WORLD) if field == "actor" else row[field] for field in by},
             "cost": row["cost"], "tokens": row["input"] + row["output"], "calls": row["calls"]} for row in rows]


def run_cost_breakdown(*, run: Run) -> dict[str, dict]:
    """Cost, tokens and calls by actor, phase and turn."""
    sums = ledger_sums(CostRecord.objects.filter(run=run), ("actor", "phase", "turn"))
    return {f"by_{field}": _folded(sums, field) for field in ("actor", "phase", "turn")}


def cost_breakdown_at(run: Run, seq: int) -> dict[str, Any]:
    """Totals of the ledger lines announced up to `seq` (and lines booked at a save, which have no event)."""
    sums = ledger_sums(_ledger_at(run, seq), ("actor", "phase"))
    return {"total": sum(s["cost"] for s in sums), "tokens": sum(s["tokens"] for s in sums),
            "calls": sum(s["calls"] for s in sums),
            "by_actor": {key: line["cost"] for key, line in _folded(sums, "actor").items()},
            "by_phase": {key: line["cost"] for key, line in _folded(sums, "phase").items()}}


def cost_lines_at(run: Run, seq: int) -> list[dict[str, Any]]:
    """The ledger up to `seq` summed by turn, actor and phase: what the cost-by-turn chart and table start from."""
    return ledger_sums(_ledger_at(run, seq), ("turn", "actor", "phase"))


def _ledger_at(run: Run, seq: int) -> QuerySet[CostRecord]:
    return CostRecord.objects.filter(run=run).filter(Q(seq__lte=seq) | Q(seq__isnull=True))


def _folded(sums: list[dict[str, Any]], field: str) -> dict[Any, dict[str, Any]]:
    """Finer sums folded into one entry per value of `field`, in that value's order."""
    folded: dict[Any, dict[str, Any]] = {}
    for line in sums:
        into = folded.setdefault(line[field], {"cost": 0.0, "tokens": 0, "calls": 0})
        for key in ("cost", "tokens", "calls"):
            into[key] += line[key]
    return dict(sorted(folded.items()))


def runs_for(user) -> QuerySet[Run]:
    """The runs a person may see: staff see every run, everyone else their own and those they have a part in
    (`RunRole`, theirs or their group's), anonymous visitors none."""
    if not user.is_authenticated:
        return Run.objects.none()
    runs = Run.objects.select_related("owner", "scenario")
    if user.is_staff:
        return runs
    shared = RunRole.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values("run_id")
    return runs.filter(Q(owner=user) | Q(pk__in=shared))


@dataclass(frozen=True)
class RunPart:
    """What someone who is not the run's owner holds in it, their own role and their groups' together: the
    strongest role, every seat they play, and the fullest view an observer's role gives them ("public" when
    none gives "full": beyond their seats, a player sees what is public)."""

    role: str
    seats: frozenset[str]
    view: str


_STRENGTH = {RunRole.Role.OBSERVER: 0, RunRole.Role.PLAYER: 1, RunRole.Role.FACILITATOR: 2}


def run_part(run: Run, user) -> RunPart | None:
    """`user`'s part in `run` (None: none), in one query. The owner and staff never need it: the rules ask
    for it only when neither applies."""
    if not user.is_authenticated:
        return None
    rows = list(RunRole.objects.filter(Q(user=user) | Q(group__in=user.groups.all()), run=run))
    if not rows:
        return None
    return RunPart(
        role=max((row.role for row in rows), key=_STRENGTH.__getitem__),
        seats=frozenset(seat for row in rows if row.role == RunRole.Role.PLAYER for seat in row.seats),
        view=RunRole.View.FULL if any(row.role != RunRole.Role.PLAYER and row.view == RunRole.View.FULL for row in rows)
        else RunRole.View.PUBLIC,
    )


def run_roles(run: Run) -> list[RunRole]:
    return list(RunRole.objects.filter(run=run).select_related("user", "group"))


def run_role(*, run: Run, role_id: int) -> RunRole | None:
    return RunRole.objects.filter(run=run, pk=role_id).select_related("user", "group").first()


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
        if "goals" in change:  # None: rewritten, in words the reader may not see (`runs.reading`)
            goals = change["goals"]
            lines.append(f"{actor}: goals rewritten" if goals is None else f"{actor}: goals now {'; '.join(goals) or '(none)'}")
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


# A guard against a cycle of parents (rows edited by hand): no real family is this deep.
FAMILY_MAX_DEPTH = 1000


def _seer(user):
    """Whether `user` may see a run (by id and owner id) of a family: `runs_for`'s rule, the runs shared with them
    read once, and only if a run is not theirs."""
    shared: set[int] | None = None

    def may_see(run_id: int, owner_id: int | None) -> bool:
        nonlocal shared
        if user is None or (user.is_authenticated and (user.is_staff or owner_id == user.pk)):
            return True
        if not user.is_authenticated:
            return False
        if shared is None:
            shared = set(RunRole.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values_list("run_id", flat=True))
        return run_id in shared

    return may_see


def _ancestors(run: Run) -> list[tuple[int, int | None]]:
    """(id, owner id) of `run`'s ancestors, parent first: one recursive query, however deep the family."""
    if run.parent_id is None:
        return []
    table = connection.ops.quote_name(Run._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE up(id, parent_id, owner_id, depth) AS ("
            f" SELECT id, parent_id, owner_id, 1 FROM {table} WHERE id = %s"
            f" UNION ALL SELECT r.id, r.parent_id, r.owner_id, up.depth + 1 FROM {table} r JOIN up ON r.id = up.parent_id"
            f" WHERE up.depth < %s)"
            f" SELECT id, owner_id FROM up ORDER BY depth",
            [run.parent_id, FAMILY_MAX_DEPTH],
        )
        return [(row[0], row[1]) for row in cursor.fetchall()]


def _descendants_and_self(root_id: int) -> QuerySet[Run]:
    """`root_id`'s run and every run below it, in one query (UNION, not UNION ALL: a cycle ends)."""
    table = connection.ops.quote_name(Run._meta.db_table)
    below = RawSQL(f"WITH RECURSIVE down(id) AS (SELECT id FROM {table} WHERE id = %s UNION SELECT r.id FROM {table} r JOIN down ON r.parent_id = down.id)"
                   f" SELECT id FROM down", [root_id])
    return Run.objects.select_related("owner").filter(pk__in=below)


def _share_relations(run: Run, rows: dict[int, Run]) -> None:
    """Owners and parents already read with the family, cached on its runs: a page showing `run.owner` or a
    member's `parent` does not read them again."""
    owner, parent = Run._meta.get_field("owner"), Run._meta.get_field("parent")
    fetched = rows.get(run.pk)
    if fetched is not None and fetched.owner_id == run.owner_id and not owner.is_cached(run):
        owner.set_cached_value(run, fetched.owner)
    for member in [*rows.values(), run]:
        if member.parent_id in rows and not parent.is_cached(member):
            parent.set_cached_value(member, rows[member.parent_id])


def run_family(*, run: Run, user=None) -> list[FamilyMember]:
    """The family tree `run` belongs to, root first, each run followed by its branches (by branch turn, then
    age). With `user`, only runs that person may see: the tree starts at the oldest ancestor they may see, and
    a branch they may not see is left out with everything below it. Two queries, whatever the tree's depth (a
    third for someone who does not own every run of it: the runs shared with them)."""
    root_id, seen = run.pk, {run.pk}
    may_see = _seer(user)
    for ancestor_id, owner_id in _ancestors(run):
        if ancestor_id in seen or not may_see(ancestor_id, owner_id):
            break
        root_id = ancestor_id
        seen.add(ancestor_id)
    rows = {member.pk: member for member in _descendants_and_self(root_id)}
    _share_relations(run, rows)
    rows[run.pk] = run  # the caller's object: it may hold what the page has just read
    if root_id not in rows:  # deleted between the two reads
        root_id = run.pk
    below: dict[int, list[Run]] = {}
    for member in sorted(rows.values(), key=lambda r: (-1 if r.branch_turn is None else r.branch_turn, r.pk)):
        if member.parent_id is not None and member.pk != root_id:
            below.setdefault(member.parent_id, []).append(member)
    children: dict[int, list[Run]] = {}
    frontier, known = [root_id], {root_id}
    while frontier:
        found = [branch for pk in frontier for branch in below.get(pk, [])
                 if branch.pk not in known and may_see(branch.pk, branch.owner_id)]
        for branch in found:
            children.setdefault(branch.parent_id, []).append(branch)
            known.add(branch.pk)
        frontier = [branch.pk for branch in found]
    root = rows[root_id]

    members: list[FamilyMember] = []

    def add(member: Run, depth: int) -> None:
        note = (member.intervention or {}).get("note", "")
        members.append(FamilyMember(member, depth, intervention_changes(member.intervention), note, member.pk == run.pk,
                                   run_display_status(member)))
        for branch in children.get(member.pk, []):
            add(branch, depth + 1)

    add(root, 0)
    return members


# ---- human seats ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PendingSeat:
    run: Run
    actor: str
    name: str
    turn: int
    waiting_since: datetime | None


def _pending_in(runs: list[Run]) -> list[PendingSeat]:
    """`pending_human_seats` of each waiting run, read from its rows as `load_run_state` builds them (seats from
    `actors`, the turn being played after `turn`, its stored decisions and the answers people gave): one query
    for all, not each whole state."""
    waiting = [run for run in runs if run.status == RunStatus.WAITING_FOR_HUMAN]
    if not waiting:
        return []
    playing = {run.turn + 1 for run in waiting}
    # A seat whose person has answered is no longer pending, though its executor has not applied the answer yet.
    keys = ("run_id", "turn", "actor")
    decided = set(Decision.objects.filter(run__in=waiting, turn__in=playing).order_by().values_list(*keys).union(
        HumanDecision.objects.filter(run__in=waiting, turn__in=playing).order_by().values_list(*keys)))
    return [PendingSeat(run, a["short_name"], a["name"], run.turn + 1, run.waiting_since)
            for run in waiting for a in run.actors
            if a.get("control", "ai") == HUMAN and (run.pk, run.turn + 1, a["short_name"]) not in decided]


def run_pending_seats(*, run: Run) -> list[PendingSeat]:
    """The seats a waiting run waits for (none unless it is WAITING_FOR_HUMAN)."""
    return _pending_in([run])


def seat_proposals(*, run: Run, actor: str, turn: int) -> tuple[EngineCommunication, ...]:
    """The proposals of `turn` that `actor` has yet to answer: what a person's decision must reply to."""
    return open_proposals([communication_of(row) for row in Communication.objects.filter(run=run, turn=turn)], actor)


def seats_pending(*, runs) -> list[PendingSeat]:
    """Every pending seat of `runs` (a queryset the caller may see), oldest wait first."""
    pending = _pending_in(list(runs.filter(status=RunStatus.WAITING_FOR_HUMAN).defer("snapshot")))
    return sorted(pending, key=lambda seat: (seat.waiting_since or timezone.now(), seat.run.pk))


# ---- a run's records, as the API reads them ------------------------------------------------------------------
def runs_readable(user) -> QuerySet[Run]:
    """The runs `user` may read: every run when reading is public (SCENARIOLAB_PUBLIC_READ), else `runs_for`."""
    return Run.objects.select_related("owner", "scenario") if settings.PUBLIC_READ else runs_for(user)


def run_by_id(run_id: int) -> Run | None:
    return Run.objects.select_related("owner", "scenario").filter(pk=run_id).first()
