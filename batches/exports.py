"""A batch's results as a table: one row per planned run (its variation's values, seed, status, cost, each metric
at its last turn), as CSV or JSON, for the batch page, the API and a spreadsheet or notebook."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any

from django.db.models import Sum
from django.http import HttpResponse, JsonResponse

from batches.models import Batch
from batches.selectors import batch_progress
from engine import Scenario
from engine.batch import Variation, final_metric_values
from runs.models import CostRecord, MetricRecord

FIXED = ("batch", "run_name", "variation", "variation_description", "run_number", "seed", "run", "status", "turns_done",
         "cost")


def batch_results(*, batch: Batch) -> dict[str, Any]:
    """{"columns": [...], "rows": [{column: value}]}: the fixed columns, one per varied value
    (`model:<actor>`, `param:<key>`), and `metric:<name>` per metric, each at the last turn it was measured."""
    progress = batch_progress(batch=batch)
    variations = {v.variation_id: v for v in (Variation.from_v1(data) for data in batch.variations)}
    run_ids = [row.row.run_id for row in progress.rows if row.row.run_id]
    costs = dict(CostRecord.objects.filter(run_id__in=run_ids).values("run").annotate(total=Sum("cost")).values_list("run", "total"))
    records = defaultdict(list)
    for record in MetricRecord.objects.filter(run_id__in=run_ids).only("run_id", "turn", "name", "actor", "value"):
        records[record.run_id].append(record)
    scenario = Scenario.model_validate(batch.snapshot)
    varied: list[str] = []
    metrics: set[str] = set()
    rows = []
    for listed in progress.rows:
        row, run = listed.row, listed.run
        variation = variations.get(row.variation)
        values = _varied(variation)
        varied += [key for key in values if key not in varied]
        finals = {f"metric:{name}": value for name, value in final_metric_values(records[row.run_id], scenario).items()} if run else {}
        metrics.update(finals)
        rows.append({
            "batch": batch.pk, "run_name": row.name, "variation": row.variation,
            "variation_description": variation.description if variation else "", "run_number": row.number,
            "seed": row.seed, "run": row.run_id, "status": listed.status, "turns_done": run.turn if run else 0,
            "cost": costs.get(row.run_id) or 0.0, **values, **finals,
        })
    columns = [*FIXED, *varied, *sorted(metrics)]
    return {"columns": columns, "rows": [{column: row.get(column) for column in columns} for row in rows]}


def _varied(variation: Variation | None) -> dict[str, Any]:
    if variation is None:
        return {}
    return {**{f"model:{actor}": model for actor, model in variation.actor_models.items()},
            **{f"param:{key}": value for key, value in variation.scenario_overrides.items()}}


def batch_results_csv(*, batch: Batch) -> str:
    results = batch_results(batch=batch)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=results["columns"], lineterminator="\n")
    writer.writeheader()
    for row in results["rows"]:
        writer.writerow({key: "" if value is None else _cell(value) for key, value in row.items()})
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would read as a formula is written as text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def results_filename(batch: Batch, suffix: str) -> str:
    return f"batch-{batch.pk}-results{suffix}"


def results_response(batch: Batch, kind: str) -> HttpResponse:
    """The results as a download, `kind` "csv" or "json": what the batch page and the API both answer."""
    if kind == "csv":
        response = HttpResponse(batch_results_csv(batch=batch), content_type="text/csv; charset=utf-8")
    else:
        response = JsonResponse(batch_results(batch=batch), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{results_filename(batch, "." + kind)}"'
    return response
