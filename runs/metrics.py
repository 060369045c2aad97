"""Reads of a run's metrics: the definitions frozen with it (units, thresholds), its values per turn with the
threshold each reached, and the CSV and JSON exports the run page and the API offer."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from engine.phases.metrics import threshold_level
from engine.scenario.metrics import MetricDefinition
from engine.scenario.folder import Scenario as EngineScenario
from runs.models import MetricRecord, Run

CSV_COLUMNS = ("turn", "metric", "actor", "value", "unit", "source", "threshold")
# A spreadsheet runs a cell that starts with one of these as a formula; text metrics come from model answers.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class MetricValueRow:
    turn: int
    metric: str
    actor: str | None
    value: float | int | bool | str | None
    unit: str
    source: str
    threshold: str | None  # "warning", "critical" or None

    def to_dict(self) -> dict[str, Any]:
        return {"turn": self.turn, "metric": self.metric, "actor": self.actor, "value": self.value, "unit": self.unit,
                "source": self.source, "threshold": self.threshold}


def run_metric_definitions(*, run: Run) -> list[MetricDefinition]:
    """The metrics of the scenario as the run froze it (V1's dict form included)."""
    return EngineScenario.model_validate(run.snapshot).metric_definitions


def metric_definition_dicts(definitions: list[MetricDefinition]) -> list[dict[str, Any]]:
    """What the run page's charts and the JSON export say about each metric."""
    out = []
    for metric in definitions:
        limits = metric.thresholds
        out.append({
            "name": metric.name, "description": metric.description, "unit": metric.unit,
            "range": list(metric.range) if metric.range else None, "actor_specific": metric.actor_specific,
            "extraction": metric.extraction.type,
            "thresholds": None if limits is None else {"warning": limits.warning, "critical": limits.critical,
                                                       "direction": limits.direction, "halt_on_critical": limits.halt_on_critical},
        })
    return out


def run_metric_rows(*, run: Run, definitions: list[MetricDefinition] | None = None) -> list[MetricValueRow]:
    """Every stored value of the run, by turn then in the scenario's order, with the threshold it reached."""
    definitions = run_metric_definitions(run=run) if definitions is None else definitions
    by_name = {metric.name: metric for metric in definitions}
    rows = []
    for record in MetricRecord.objects.filter(run=run).order_by("turn", "position"):
        metric = by_name.get(record.name)
        rows.append(MetricValueRow(
            turn=record.turn, metric=record.name, actor=record.actor or None, value=record.value,
            unit=metric.unit if metric else "", source=record.source,
            threshold=threshold_level(metric, record.value) if metric else None,
        ))
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}" if value.startswith(FORMULA_STARTS) else value
    return str(value)


def metrics_csv(rows: list[MetricValueRow]) -> str:
    """One line per value (long form, as pandas and R read it best); empty cells for no value or actor."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(getattr(row, column)) for column in CSV_COLUMNS])
    return out.getvalue()


def metrics_export(*, run: Run) -> dict[str, Any]:
    """The JSON export: which run, the metrics' definitions and every value."""
    definitions = run_metric_definitions(run=run)
    return {
        "run": {"id": run.pk, "scenario": run.scenario_slug, "number": run.number, "status": run.status,
                "turn": run.turn, "max_turns": run.max_turns},
        "metrics": metric_definition_dicts(definitions),
        "values": [row.to_dict() for row in run_metric_rows(run=run, definitions=definitions)],
    }


def export_filename(run: Run, suffix: str) -> str:
    return f"{run.file_stem}-metrics{suffix}"
