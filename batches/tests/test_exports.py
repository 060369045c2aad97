"""A batch's results as CSV and JSON: one row per run, agreeing with the statistics page."""

import csv
import io
import statistics

import pytest
from django.test import Client

from batches.tests.factories import play_queued
from batches.tests.test_api import CONFIG, client, people, started  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(databases="__all__")


def test_the_csv_has_a_row_per_run_and_agrees_with_the_statistics(started):  # noqa: F811
    play_queued(started)
    owner = started.owner
    response = client.get(f"/batches/{started.pk}/results.csv", user=owner)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 6 and {row["param:seed"] for row in rows} == {"1", "11"}
    assert {row["status"] for row in rows} == {"completed"} and all(row["seed"] for row in rows)
    metric_columns = [c for c in rows[0] if c.startswith("metric:")]
    assert metric_columns, "each metric at the last turn"

    stats = client.get(f"/batches/{started.pk}/statistics", user=owner).json()["variations"]
    for variation in stats:
        mine = [row for row in rows if int(row["variation"]) == variation["variation_id"]]
        assert variation["runs"] == len(mine)
        for name, summary in variation["metrics"].items():
            values = [float(row[f"metric:{name}"]) for row in mine if row[f"metric:{name}"] != ""]
            assert summary["count"] == len(values) and summary["mean"] == pytest.approx(statistics.mean(values)), name

    as_json = client.get(f"/batches/{started.pk}/results.json", user=owner).json()
    assert as_json["columns"] == list(rows[0]) and len(as_json["rows"]) == 6
    assert [str(row["run_name"]) for row in as_json["rows"]] == [row["run_name"] for row in rows]


def test_the_batch_page_links_both_and_a_stranger_gets_nothing(started, people):  # noqa: F811
    page = Client()
    page.force_login(started.owner)
    html = page.get(f"/batches/{started.pk}/").content.decode()
    assert f"/batches/{started.pk}/results.csv" in html and f"/batches/{started.pk}/results.json" in html
    pending = list(csv.DictReader(io.StringIO(page.get(f"/batches/{started.pk}/results.csv").content.decode())))
    assert len(pending) == 6 and {row["status"] for row in pending} <= {"pending", "queued"}
    stranger = Client()
    stranger.force_login(people["other"])
    assert stranger.get(f"/batches/{started.pk}/results.csv").status_code == 404
    assert client.get(f"/batches/{started.pk}/results.json", user=people["other"]).status_code == 404
