"""A run's metrics exported: CSV and JSON downloads from the API (the run page links to them), with units and the
threshold each value reached, and the threshold events a run stores."""

import csv
import io
import json

import pytest
from django.contrib.auth.models import User
from ninja.testing import TestClient

from engine.scenario.metrics import MetricThresholds
from runs.execution import executor
from runs.metrics import CSV_COLUMNS, MetricValueRow, metrics_csv
from runs.models import MetricRecord, RunEvent
from runs.tests.factories import make_run, summit_config
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db
client = TestClient(api)


@pytest.fixture
def owner():
    return User.objects.create_user("owner", password="pw")


def alarmed_summit():
    """The summit with a warning on cooperation_signals that every value reaches (a count is never below 0)."""
    config = summit_config()
    metrics = [m.model_copy(update={"thresholds": MetricThresholds(warning=0, critical=1000)}) if m.name == "cooperation_signals" else m
               for m in config.metrics.metrics]
    return config.model_copy(update={"metrics": config.metrics.model_copy(update={"metrics": metrics})})


@pytest.fixture
def played(owner):
    return executor.run_execute(run_id=make_run(alarmed_summit(), turns=2, owner=owner).pk)


def test_the_csv_has_a_line_per_stored_value_with_unit_and_threshold(played, owner):
    response = client.get(f"/runs/{played.pk}/metrics.csv", user=owner)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="ai-summit-run-{played.number:03d}-metrics.csv"'
    lines = list(csv.DictReader(io.StringIO(response.content.decode())))
    stored = list(MetricRecord.objects.filter(run=played).order_by("turn", "position"))
    assert len(lines) == len(stored) > 0
    assert tuple(lines[0]) == CSV_COLUMNS
    for line, record in zip(lines, stored, strict=True):
        assert (int(line["turn"]), line["metric"], line["actor"], line["source"]) == (record.turn, record.name, record.actor, record.source)
        assert line["value"] == ("" if record.value is None else str(record.value))
    cooperation = [line for line in lines if line["metric"] == "cooperation_signals"]
    assert [line["turn"] for line in cooperation] == ["1", "2"]
    assert {line["threshold"] for line in cooperation} == {"warning"} and {line["unit"] for line in cooperation} == {"mentions"}
    assert {line["threshold"] for line in lines if line["metric"] == "signatories"} == {""}, "no thresholds, no level"


def test_the_json_export_has_the_definitions_and_the_same_values(played, owner):
    response = client.get(f"/runs/{played.pk}/metrics.json", user=owner)
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('-metrics.json"')
    body = json.loads(response.content)
    assert body["run"] == {"id": played.pk, "scenario": "ai-summit", "number": played.number, "status": "completed", "turn": 2, "max_turns": 2}
    definitions = {m["name"]: m for m in body["metrics"]}
    assert definitions["tension_signals"]["thresholds"] == {"warning": 6.0, "critical": 10.0, "direction": "above", "halt_on_critical": False}
    assert definitions["declaration_strength"]["extraction"] == "llm" and definitions["declaration_strength"]["range"] == [0, 10]
    csv_lines = list(csv.DictReader(io.StringIO(client.get(f"/runs/{played.pk}/metrics.csv", user=owner).content.decode())))
    assert [(v["turn"], v["metric"], v["threshold"]) for v in body["values"]] == [
        (int(line["turn"]), line["metric"], line["threshold"] or None) for line in csv_lines]


def test_the_run_stored_a_threshold_event_per_value_at_its_warning(played):
    crossings = [e.data for e in RunEvent.objects.filter(run=played, type="metric_threshold_crossed").order_by("seq")]
    assert [(c["turn"], c["name"], c["level"], c["previous_level"]) for c in crossings] == [
        (1, "cooperation_signals", "warning", None), (2, "cooperation_signals", "warning", "warning")]


@pytest.mark.parametrize("path", ["metrics.csv", "metrics.json"])
def test_only_who_may_read_the_run_may_export_it(played, path):
    stranger = User.objects.create_user("stranger", password="pw")
    assert client.get(f"/runs/{played.pk}/{path}").status_code == 401
    assert client.get(f"/runs/{played.pk}/{path}", user=stranger).status_code == 404


def test_text_values_cannot_become_spreadsheet_formulas():
    rows = [MetricValueRow(1, "quote", None, '=HYPERLINK("http://x")', "", "pattern", None),
            MetricValueRow(1, "delta", "city", -2.5, "m", "pattern", None),
            MetricValueRow(2, "walkout", None, True, "", "pattern", None),
            MetricValueRow(2, "trust", None, None, "", "llm", None)]
    lines = metrics_csv(rows).splitlines()
    assert lines[1] == "1,quote,,\"'=HYPERLINK(\"\"http://x\"\")\",,pattern,"
    assert lines[2:] == ["1,delta,city,-2.5,m,pattern,", "2,walkout,,true,,pattern,", "2,trust,,,,llm,"]
