"""What the run page's charts start from and what events add: a chart per metric with its thresholds, alerts
for values past them, the values as a table, and cost by turn by actor and phase."""

import json
import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from engine import EventType
from runs.reading import EVERYTHING
from runs.execution import executor
from runs.live import event_fragments, run_page_context
from runs.record_selectors import snapshot_seq
from runs.selectors import cost_lines_at
from runs.models import CostRecord, MetricRecord, RunEvent
from runs.tests.factories import make_run
from runs.tests.test_metrics_export import alarmed_summit

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client):
    user = User.objects.create_user("owner", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def played(owner):
    return executor.run_execute(run_id=make_run(alarmed_summit(), turns=2, owner=owner).pk)


def json_script(html: str, element_id: str):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert found, f"no #{element_id}"
    return json.loads(found.group(1))


def test_the_page_carries_each_metric_with_its_thresholds_and_links_the_exports(client, played):
    html = client.get(reverse("runs:detail", args=[played.pk])).content.decode()
    definitions = {m["name"]: m for m in json_script(html, "metric-definitions")}
    assert definitions["tension_signals"]["thresholds"] == {"warning": 6.0, "critical": 10.0, "direction": "above", "halt_on_critical": False}
    assert definitions["signatories"]["thresholds"] is None and definitions["signatories"]["unit"] == "delegations"
    assert f'href="/api/runs/{played.pk}/metrics.csv" download' in html and f'href="/api/runs/{played.pk}/metrics.json" download' in html
    assert 'id="metrics-charts"' in html and 'id="cost-chart"' in html


def test_values_past_a_threshold_are_listed_as_alerts(client, played):
    html = client.get(reverse("runs:detail", args=[played.pk])).content.decode()
    alerts = re.findall(r'<li class="metric-alert level-(\w+)" id="([^"]+)"', html)
    assert alerts == [("warning", "metric-alert-1-cooperation_signals-world"), ("warning", "metric-alert-2-cooperation_signals-world")]
    assert "at or above its warning threshold of 0." in html


def test_the_values_table_has_a_row_per_turn_and_a_column_per_series(played):
    context = run_page_context(run=played, reader=EVERYTHING)
    assert [c["key"] for c in context["metric_series"]] == [
        "signatories", "bracketed_paragraphs", "cooperation_signals", "tension_signals", "declaration_strength"]
    assert [row["turn"] for row in context["metric_rows"]] == [1, 2]
    stored = {(m.turn, m.name): m.value for m in MetricRecord.objects.filter(run=played)}
    for row in context["metric_rows"]:
        assert row["cells"] == [stored.get((row["turn"], c["key"])) for c in context["metric_series"]]


def test_per_actor_series_are_a_column_per_actor(played):
    from engine.scenario.metrics import MetricDefinition
    from runs.live import metric_series

    per_actor = MetricDefinition(name="firmness", actor_specific=True, extraction={"type": "keyword", "keywords": ["never"]})
    one = MetricDefinition(name="chair_calls", actor_specific=True, actor="norvale", extraction={"type": "keyword", "keywords": ["order"]})
    names = {a["short_name"]: a["name"] for a in played.actors}
    series = metric_series([per_actor, one], names)
    assert [s["key"] for s in series] == [f"firmness|{a}" for a in names] + ["chair_calls|norvale"]
    assert series[-1]["label"] == f"chair_calls: {names['norvale']}"


def test_cost_lines_sum_the_ledger_by_turn_actor_and_phase(played):
    lines = cost_lines_at(played, snapshot_seq(played))
    assert sum(line["calls"] for line in lines) == CostRecord.objects.filter(run=played).count() == played.calls
    assert sum(line["tokens"] for line in lines) == played.total_tokens
    assert {line["turn"] for line in lines} == {1, 2}
    world = [line for line in lines if line["actor"] == "world"]
    assert {line["phase"] for line in world} >= {"world_update", "metrics"}, "the world's calls, by phase"
    by_turn = run_page_context(run=played, reader=EVERYTHING)["cost_by_turn"]
    assert [(row["turn"], row["tokens"]) for row in by_turn] == [
        (turn, sum(line["tokens"] for line in lines if line["turn"] == turn)) for turn in (1, 2)]


def test_events_feed_the_charts_and_the_alerts(played):
    names = {a["short_name"]: a["name"] for a in played.actors}
    cost = RunEvent.objects.filter(run=played, type=EventType.COST_INCURRED).order_by("seq").first()
    message = event_fragments({"seq": cost.seq, "type": cost.type, "data": cost.data}, run_id=1, names=names, max_turns=2, reader=EVERYTHING)
    assert message["data"]["turn"] == 1 and {"actor", "phase", "cost", "tokens"} <= set(message["data"])

    recorded = RunEvent.objects.filter(run=played, type=EventType.METRIC_RECORDED, data__name="cooperation_signals").order_by("seq").first()
    message = event_fragments({"seq": recorded.seq, "type": recorded.type, "data": recorded.data}, run_id=1, names=names, max_turns=2, reader=EVERYTHING)
    assert message["data"]["threshold"] == "warning" and message["data"]["turn"] == 1

    crossing = RunEvent.objects.filter(run=played, type=EventType.METRIC_THRESHOLD_CROSSED).order_by("seq").first()
    message = event_fragments({"seq": crossing.seq, "type": crossing.type, "data": crossing.data}, run_id=1, names=names, max_turns=2, reader=EVERYTHING)
    [fragment] = message["fragments"]
    assert fragment["target"] == "#metric-alerts"
    assert 'id="metric-alert-1-cooperation_signals-world"' in fragment["html"], "the same id as the stored alert: no duplicate"
