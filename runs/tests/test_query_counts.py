"""Query counts of the run pages, the runs API and the worker's writes: none may grow with the turns, actors,
events or runs shown (an N+1 is a test failure listing the SQL), and each stays under a ceiling.

Reads are measured on two runs played offline: one of 2 actors and 1 turn, one of 5 actors and 2 turns (more
events, ledger lines, metrics, findings). Counts include the session and user lookups of a signed-in page.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from engine import EventType, Scenario
from runs.execution import recorder as recording
from runs.execution import executor
from runs.models import Run, RunStatus
from runs.tests.factories import make_run, summit_config
from runs.tests.querycount import assert_flat, measure

pytestmark = pytest.mark.django_db


def two_actor_config() -> Scenario:
    summit = summit_config()
    return Scenario.model_validate({**summit.model_dump(), "actors": [a.model_dump() for a in summit.actors[:2]]})


@pytest.fixture
def owner(client) -> User:
    user = User.objects.create_user("owner", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def pair(owner) -> tuple[Run, Run]:
    """A small and a larger completed run of the owner's."""
    small = executor.run_execute(run_id=make_run(two_actor_config(), turns=1, owner=owner).pk)
    large = executor.run_execute(run_id=make_run(turns=2, owner=owner).pk)
    assert small.status == large.status == RunStatus.COMPLETED
    assert large.events.count() > 2 * small.events.count() and len(large.actors) > len(small.actors)
    return small, large


def compare(client, small_url: str, large_url: str, *, ceiling: int) -> None:
    assert_flat(measure(client.get, small_url), measure(client.get, large_url), ceiling=ceiling)


# ---- the run page, the run's API reads, comparisons -----------------------------------------------------------
# path, ceiling (session + user + the run + what the route reads; the run itself with its tags)
RUN_READS = [
    ("", 5), ("/turns", 4), ("/decisions", 4), ("/communications", 4), ("/costs", 7), ("/metrics", 4),
    ("/validations", 4), ("/events?after=3", 4), ("/events?after=3&limit=1000", 4), ("/metrics.csv", 4),
    ("/metrics.json", 4), ("/export", 11), ("/family", 4), ("/seats", 4),
]


def test_the_reads_of_a_run_cost_the_same_queries_whatever_its_size(client, pair, owner):
    """One test for every read, so the two runs are played once; every failure is listed."""
    small, large = pair
    third = executor.run_execute(run_id=make_run(two_actor_config(), turns=1, owner=owner).pk)
    two, three = f"ids={small.pk}&ids={third.pk}", f"ids={small.pk}&ids={third.pk}&ids={large.pk}"
    # The run page: the run's records, its ledger, the parts people hold in it (the seats table), its tags and
    # when its records were announced (their order).
    cases = [(reverse("runs:detail", args=[small.pk]), reverse("runs:detail", args=[large.pk]), 18),
             *[(f"/api/runs/{small.pk}{path}", f"/api/runs/{large.pk}{path}", ceiling) for path, ceiling in RUN_READS],
             (f"{reverse('runs:compare')}?{two}", f"{reverse('runs:compare')}?{three}", 8),
             (f"/api/runs/compare?{two}", f"/api/runs/compare?{three}", 8)]
    failures = []
    for small_url, large_url, ceiling in cases:
        try:
            compare(client, small_url, large_url, ceiling=ceiling)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures)


# ---- the run list: pages and API -----------------------------------------------------------------------------
def _more_runs(owner: User, count: int) -> None:
    """Runs of every kind a list shows: other statuses, a branch, one without its scenario row."""
    for i in range(count):
        run = make_run(owner=owner)
        Run.objects.filter(pk=run.pk).update(status=[RunStatus.PAUSED, RunStatus.RUNNING, RunStatus.COMPLETED][i % 3],
                                             heartbeat_at=timezone.now() if i % 2 else None)
    parent = Run.objects.filter(owner=owner).first()
    Run.objects.filter(pk=make_run(owner=owner).pk).update(parent=parent, branch_turn=1, scenario=None)


@pytest.mark.parametrize("staff", [False, True], ids=["owner", "staff"])
def test_listing_more_runs_costs_no_more_queries(client, owner, staff):
    if staff:
        client.force_login(User.objects.create_user("staff", password="pw", is_staff=True))
    # Every filter finds a run in the small set too (an empty page skips the last-event query).
    for status, heartbeat in [(RunStatus.RUNNING, None), (RunStatus.RUNNING, timezone.now())]:
        Run.objects.filter(pk=make_run(owner=owner).pk).update(status=status, heartbeat_at=heartbeat)
    # The page: session, user, the scenarios and tags its filters offer, the count, the page of runs, their tags.
    # The API: session, user, the page of runs, their tags, their last events.
    urls = {reverse("runs:list"): 7, f"{reverse('runs:list')}?model=openai/gpt-4o&sort=cost": 7, "/api/runs/": 5,
            "/api/runs/?status=running": 5, "/api/runs/?status=crashed": 5, "/api/runs/?owner=owner&scenario=ai-summit": 5,
            "/api/runs/?model=openai/gpt-4o&sort=oldest": 5}
    before = [measure(client.get, url) for url in urls]
    _more_runs(owner, 7)
    for small, (url, ceiling) in zip(before, urls.items(), strict=True):
        assert_flat(small, measure(client.get, url), ceiling=ceiling)


# ---- the family tree on the run page ---------------------------------------------------------------------
def _branch_chain(root: Run, depth: int, owner: User) -> Run:
    """`depth` generations of branches below `root` (two siblings at each level); the deepest one."""
    parent = root
    for _ in range(depth):
        children = [make_run(owner=owner) for _ in range(2)]
        Run.objects.filter(pk__in=[c.pk for c in children]).update(parent=parent, branch_turn=1)
        parent = children[0]
    return parent


def test_the_family_tree_costs_the_same_queries_however_deep(client, owner):
    shallow_root, deep_root = make_run(owner=owner), make_run(owner=owner)
    shallow = _branch_chain(shallow_root, 1, owner)
    deep = _branch_chain(deep_root, 5, owner)
    small = measure(client.get, reverse("runs:detail", args=[shallow.pk]))
    assert_flat(small, measure(client.get, reverse("runs:detail", args=[deep.pk])), ceiling=19)  # the run page + the tree
    # From the root, the whole tree (11 runs) is listed, with every member's link.
    html = client.get(reverse("runs:detail", args=[deep_root.pk])).content.decode()
    assert html.count('id="family-run-') == 11


# ---- the worker: queries per stored event, per save, per turn ------------------------------------------------
def test_the_worker_stores_every_turn_with_the_same_queries(monkeypatch):
    """A 4-turn run, measured around the real `record_events` and `save_run_state` (they are wrapped to count,
    not replaced): a batch of events costs the same queries whatever its size and turn, each save costs the
    same at turn 4 as at turn 1, and what a turn costs outside them (the seats' control reads) does not grow
    either. A turn is measured from the end of one save to the end of the next: the recorder stores every
    event emitted before a save ahead of it, so nothing of a turn falls into another's count.

    Counts include the savepoint pair of each transaction (the test runs inside one). Figures on SQLite:
    4 per batch of progress events (the executor's claim checked, its run's row locked; 1 INSERT of them all), 7 per
    batch holding cost events (the claim, the events, the check that a save did not book a line first, the ledger
    lines, the run's totals), 1 more for a batch holding traced calls (1 INSERT of their traces), 15 per save (the run
    locked, 5 deletes of a partial turn, 5 inserts, the ledger's totals, the run's progress); a turn's QA findings are
    stored with the next turn's save, since they are asked alongside its talks."""
    real_record, real_save = recording.store_batch, recording.save_run_state
    per_batch: dict[tuple[bool, bool], set[int]] = defaultdict(set)  # (holds a cost, holds a call): counts
    sizes: list[int] = []
    saves: list[tuple[int, int]] = []
    ends: list[int] = []
    inside: Counter[int] = Counter()

    def logged() -> int:
        return len(connection.queries_log)

    def record(run_id, batch, **kwargs):
        before = logged()
        outcomes = real_record(run_id, batch, **kwargs)
        kinds = {event.type for event, _ in batch}
        per_batch[EventType.COST_INCURRED in kinds, EventType.MODEL_CALLED in kinds].add(logged() - before)
        sizes.append(len(batch))
        inside[len(ends)] += logged() - before
        return outcomes

    def save(run_id, state, **kwargs):
        before = logged()
        real_save(run_id, state, **kwargs)
        saves.append((state.turn, logged() - before))
        inside[len(ends)] += logged() - before
        ends.append(logged())

    monkeypatch.setattr(recording, "store_batch", record)
    monkeypatch.setattr(recording, "save_run_state", save)
    connection.queries_log.clear()
    with CaptureQueriesContext(connection):  # logs every query, as DEBUG would
        run = executor.run_execute(run_id=make_run(turns=4).pk)
        end = logged()
    assert run.status == RunStatus.COMPLETED and [turn for turn, _ in saves][:4] == [1, 2, 3, 4]
    assert end < connection.queries_log.maxlen

    assert max(sizes) > 1, "no batch held more than one event: nothing shows a batch costs the same whatever its size"
    assert all(len(counts) == 1 for counts in per_batch.values()), f"a batch costs more queries at times: {dict(per_batch)}"
    ceilings = {(False, False): 4, (True, False): 7, (False, True): 5, (True, True): 8}
    assert all(max(counts) <= ceilings[kind] for kind, counts in per_batch.items()), dict(per_batch)
    # The last save also ends the run; turn 1's stores no QA findings (they come with turn 2's save).
    by_turn = [n for turn_number, n in saves[1:-1]]
    assert len(set(by_turn)) == 1 and by_turn[0] <= 15, saves
    assert saves[0][1] <= by_turn[0] and saves[-1][1] <= by_turn[0], saves

    # Turn 1 starts the run, turn 4 ends it: turns 2 and 3 are the ones in the middle.
    outside = {n: ends[n] - ends[n - 1] - inside[n] for n in (1, 2)}
    assert outside[1] == outside[2] <= 2 * len(run.actors), outside


# ---- human seats: the runs waiting for a person --------------------------------------------------------------
def _waiting_run(owner: User) -> Run:
    run = executor.run_execute(run_id=make_run(turns=2, owner=owner, human_seats=("norvale", "meridian")).pk)
    assert run.status == RunStatus.WAITING_FOR_HUMAN
    return run


def test_more_waiting_runs_cost_no_more_queries(client, owner):
    first = _waiting_run(owner)
    urls = ["/api/runs/seats/pending", f"/api/runs/{first.pk}/seats", reverse("runs:detail", args=[first.pk])]
    before = [measure(client.get, url) for url in urls]
    assert len(client.get(urls[0]).json()) == 2
    for _ in range(2):
        _waiting_run(owner)
    assert len(client.get(urls[0]).json()) == 6
    # My seats reads the waiting runs' parts and the person's groups besides the runs and their decisions.
    for small, url, ceiling in zip(before, urls, [6, 4, 19], strict=True):
        assert_flat(small, measure(client.get, url), ceiling=ceiling)
