"""The files of a V1 batch folder: batch-costs.json and batch-state.json as V1 wrote them, and each run's
scenario.log."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine import Event, EventType
from engine.batch import BatchConfig


def now() -> str:
    return datetime.now().isoformat()


def write_json(path: Path, document: Any) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)


@dataclass
class BatchCosts:
    """batch-costs.json, as V1's cost manager wrote it; one entry per run (a resumed run's entry is replaced,
    its ledger holding every call of every attempt), so the totals are the sum of the runs' ledgers."""

    budget_limit: float | None
    cost_per_run_limit: float | None
    run_costs: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs_budget_exceeded: int = 0
    start_time: str | None = None
    end_time: str | None = None

    @classmethod
    def read(cls, path: Path, config: BatchConfig) -> BatchCosts:
        costs = cls(config.budget_limit, config.cost_per_run_limit)
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            summary = data.get("summary") or {}
            costs.start_time = summary.get("start_time")
            costs.runs_budget_exceeded = int(summary.get("runs_budget_exceeded") or 0)
            costs.run_costs = {entry["run_id"]: entry for entry in data.get("run_costs") or []}
        return costs

    def record(self, run_id: str, variation_id: int, cost: float, *, success: bool, over_limit: bool) -> None:
        self.run_costs[run_id] = {"run_id": run_id, "variation_id": variation_id, "cost": cost, "success": success,
                                  "timestamp": now()}
        if over_limit:
            self.runs_budget_exceeded += 1

    @property
    def total_spent(self) -> float:
        return sum(entry["cost"] for entry in self.run_costs.values())

    def summary(self) -> dict[str, Any]:
        completed = sum(1 for e in self.run_costs.values() if e["success"])
        spent = self.total_spent
        duration = None
        if self.start_time and self.end_time:
            duration = (datetime.fromisoformat(self.end_time) - datetime.fromisoformat(self.start_time)).total_seconds()
        return {
            "total_spent": spent,
            "budget_limit": self.budget_limit,
            "cost_per_run_limit": self.cost_per_run_limit,
            "remaining_budget": None if self.budget_limit is None else max(0.0, self.budget_limit - spent),
            "runs_completed": completed,
            "runs_failed": len(self.run_costs) - completed,
            "runs_budget_exceeded": self.runs_budget_exceeded,
            "avg_cost_per_run": spent / completed if completed else None,  # V1's: over completed runs
            "duration_seconds": duration,
            "start_time": self.start_time,
            "end_time": self.end_time,
        }

    def document(self) -> dict[str, Any]:
        by_variation: dict[int, list[dict[str, Any]]] = {}
        for entry in self.run_costs.values():
            by_variation.setdefault(entry["variation_id"], []).append(entry)
        statistics = {
            str(variation): {"total_cost": sum(e["cost"] for e in entries), "num_runs": len(entries),
                             "successful_runs": sum(1 for e in entries if e["success"]),
                             "avg_cost_per_run": sum(e["cost"] for e in entries) / len(entries)}
            for variation, entries in sorted(by_variation.items())
        }
        return {"summary": self.summary(), "run_costs": list(self.run_costs.values()), "variation_statistics": statistics}


@dataclass
class BatchState:
    """batch-state.json: what resuming needs (V1's keys)."""

    completed_runs: list[str] = field(default_factory=list)
    failed_runs: list[dict[str, Any]] = field(default_factory=list)
    start_time: str | None = None

    @classmethod
    def read(cls, path: Path) -> BatchState | None:
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(list(data.get("completed_runs") or []), list(data.get("failed_runs") or []), data.get("start_time"))

    def settle(self, run_id: str, *, success: bool, status: str, error: str | None) -> None:
        self.failed_runs = [f for f in self.failed_runs if f.get("run_id") != run_id]
        if success:
            if run_id not in self.completed_runs:
                self.completed_runs.append(run_id)
        else:
            self.failed_runs.append({"run_id": run_id, "error": error, "status": status})


class RunLog:
    """A run's scenario.log: its events, one line each (runs play side by side, so not the shared logger)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "scenario.log"

    def __call__(self, event: Event) -> None:
        data = dict(event.data)
        if event.type is EventType.COST_INCURRED:
            return  # one a call: the ledger is in scenario-state.json
        line = f"{datetime.now():%Y-%m-%d %H:%M:%S} - scenario_lab - INFO - {str(event.type)} {json.dumps(data, default=str)[:500]}\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
