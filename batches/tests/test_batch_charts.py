"""The batch page's distribution charts: drawn by static/js/batch-charts.js from the statistics tables, whose rows
carry each variation's numbers (unlocalised) as data attributes."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from batches import selectors
from batches.tests.factories import play_queued, start_batch

pytestmark = pytest.mark.django_db


def test_every_statistics_row_carries_the_numbers_its_chart_draws():
    owner = User.objects.create_user("owner", password="pw")
    batch = start_batch(owner=owner)
    play_queued(batch)
    client = Client()
    client.force_login(owner)
    html = client.get(f"/batches/{batch.pk}/").content.decode()
    assert 'id="batch-charts"' in html and "js/batch-charts.js" in html and "vendor/chart.js/chart.umd.min.js" in html

    rows = {}
    for row in re.findall(r"<tr data-metric=[^>]+>", html):
        attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', row))
        rows[(attributes["variation"], attributes["metric"])] = attributes
    for stats in selectors.batch_statistics(batch=batch):
        for name, summary in stats.metrics.items():
            row = rows[(f"{stats.variation_id:03d}", name)]
            assert float(row["mean"]) == pytest.approx(summary.mean) and int(row["n"]) == summary.count == 3
            assert (float(row["min"]), float(row["max"])) == (summary.min, summary.max)
            assert (float(row["ci-low"]), float(row["ci-high"])) == pytest.approx((summary.ci_low, summary.ci_high))
    assert len(rows) == sum(len(s.metrics) for s in selectors.batch_statistics(batch=batch)) > 0


def test_a_batch_with_no_completed_run_has_nothing_to_chart():
    owner = User.objects.create_user("owner", password="pw")
    batch = start_batch(owner=owner)
    client = Client()
    client.force_login(owner)
    html = client.get(f"/batches/{batch.pk}/live/").content.decode()
    assert "<tr data-metric=" not in html
