"""Query counts of the batch pages and the batches API: the same for a batch of 2 runs as for one of 6, and for
a list of 1 batch as for one of 4 (no query per batch or per run), each under a ceiling."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from batches.models import Batch
from batches.tests.factories import batch_config, play_queued, start_batch
from runs.tests.querycount import assert_flat, measure
from scenarios.services import scenario_import_library

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client) -> User:
    scenario_import_library()
    user = User.objects.create_user("owner", password="pw")
    client.force_login(user)
    return user


def played_batch(owner: User, runs_per_variation: int) -> Batch:
    batch = start_batch(batch_config(runs_per_variation=runs_per_variation), owner=owner)
    play_queued(batch)
    return batch


def _pages(batch: Batch) -> list[str]:
    return [reverse("batches:detail", args=[batch.pk]), reverse("batches:live", args=[batch.pk]),
            f"/api/batches/{batch.pk}", f"/api/batches/{batch.pk}/statistics"]


# url index -> ceiling
CEILINGS = [7, 7, 4, 6]


def test_a_larger_batch_costs_no_more_queries(client, owner):
    small, large = played_batch(owner, 1), played_batch(owner, 3)
    assert large.batch_runs.count() == 3 * small.batch_runs.count()
    failures = []
    for small_url, large_url, ceiling in zip(_pages(small), _pages(large), CEILINGS, strict=True):
        try:
            assert_flat(measure(client.get, small_url), measure(client.get, large_url), ceiling=ceiling)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("staff", [False, True], ids=["owner", "staff"])
def test_listing_more_batches_costs_no_more_queries(client, owner, staff):
    if staff:
        client.force_login(User.objects.create_user("staff", password="pw", is_staff=True))
    start_batch(owner=owner)
    urls = [reverse("batches:list"), "/api/batches/"]
    before = [measure(client.get, url) for url in urls]
    for _ in range(3):
        start_batch(batch_config(runs_per_variation=2), owner=owner)
    for small, url, ceiling in zip(before, urls, [5, 5], strict=True):
        assert_flat(small, measure(client.get, url), ceiling=ceiling)


def test_the_admin_batch_list_costs_no_more_queries_for_more_batches(client, owner):
    client.force_login(User.objects.create_superuser("admin", password="pw"))
    start_batch(owner=owner)
    small = measure(client.get, reverse("admin:batches_batch_changelist"))
    for _ in range(3):
        start_batch(batch_config(runs_per_variation=2), owner=owner)
    assert_flat(small, measure(client.get, reverse("admin:batches_batch_changelist")), ceiling=7)
