"""Query counts of the run pages, the runs API and the worker's writes: none may grow with the turns, actors,
events or runs shown (an N+1 is a test failure listing the SQL), and each stays under a ceiling.

Reads are measured on two runs played offline: one of 2 actors and 1 turn, one of 5 actors and 2 turns (more
events, ledger lines, metrics, findings). Counts include the session and user lookups of a signed-in page.
"""

from __future__ import annotations


import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from engine import Scenario
from runs import services
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
    small = services.run_execute(run_id=make_run(two_actor_config(), turns=1, owner=owner).pk)
    large = services.run_execute(run_id=make_run(turns=2, owner=owner).pk)
    assert small.status == large.status == RunStatus.COMPLETED
    assert large.events.count() > 2 * small.events.count() and len(large.actors) > len(small.actors)
    return small, large


def compare(client, small_url: str, large_url: str, *, ceiling: int) -> None:
    assert_flat(measure(client.get, small_url), measure(client.get, large_url), ceiling=ceiling)


# ---- the run page and the run's API reads --------------------------------------------------------------------
def test_the_run_page_costs_the_same_queries_for_a_longer_run_with_more_actors(client, pair):
    small, large = pair
    compare(client, reverse("runs:detail", args=[small.pk]), reverse("runs:detail", args=[large.pk]), ceiling=16)


# path, ceiling (session + user + the run + what the route reads)
RUN_READS = [
    ("", 4), ("/turns", 4), ("/decisions", 4), ("/communications", 4), ("/costs", 7), ("/metrics", 4),
    ("/validations", 4), ("/events?after=3", 4), ("/events?after=3&limit=1000", 4), ("/metrics.csv", 4),
    ("/metrics.json", 4), ("/export", 11),
]


def test_the_api_reads_of_a_run_cost_the_same_queries_whatever_its_size(client, pair):
    small, large = pair
    failures = []
    for path, ceiling in RUN_READS:
        try:
            compare(client, f"/api/runs/{small.pk}{path}", f"/api/runs/{large.pk}{path}", ceiling=ceiling)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures)


def test_comparing_more_runs_costs_no_more_queries(client, pair, owner):
    small, large = pair
    third = services.run_execute(run_id=make_run(turns=1, owner=owner).pk)
    two = f"ids={small.pk}&ids={large.pk}"
    three = f"{two}&ids={third.pk}"
    compare(client, f"{reverse('runs:compare')}?{two}", f"{reverse('runs:compare')}?{three}", ceiling=8)
    compare(client, f"/api/runs/compare?{two}", f"/api/runs/compare?{three}", ceiling=8)


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
    urls = [reverse("runs:list"), "/api/runs/", "/api/runs/?status=running", "/api/runs/?status=crashed",
            "/api/runs/?owner=owner&scenario=ai-summit"]
    before = [measure(client.get, url) for url in urls]
    _more_runs(owner, 7)
    for small, url in zip(before, urls, strict=True):
        assert_flat(small, measure(client.get, url), ceiling=4)


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
    assert_flat(small, measure(client.get, reverse("runs:detail", args=[deep.pk])), ceiling=17)
    # From the root, the whole tree (11 runs) is listed, with every member's link.
    html = client.get(reverse("runs:detail", args=[deep_root.pk])).content.decode()
    assert html.count('id="family-run-') == 11
