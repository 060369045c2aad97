"""V1's batch analyzer over the engine: `python legacy_v1/batch_analyzer.py BATCH_DIR [--report]`.

Reads a batch output directory (written by batch_runner.py, this project's or V1's): each run directory under
runs/var-XXX-run-YYY/ (its scenario-state.json for status and the ledger's cost, its metrics.json for the
final metric values) and batch-state.json for the variations' descriptions. Writes V1's analysis files:

- analysis/metrics-analysis.json: per metric over the completed runs, count, mean, median, min, max, stdev;
- analysis/variation-statistics.json: per variation, runs, success rate, cost (total, mean, min, max) and per
  metric mean, median, min, max, stdev, and (new) count and the 95 % confidence interval of the mean;
- analysis/patterns.json: success rate, best variation, successful runs per dollar;
- analysis/analysis-report.md: the same as a readable report (printed with --report).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from engine.batch import RunOutcome, Variation, is_number, summarize, variation_statistics  # noqa: E402
from engine.v1 import RunDirectoryError, read_run_directory  # noqa: E402


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")


class BatchAnalyzer:
    def __init__(self, batch_dir: str | Path) -> None:
        self.batch_dir = Path(batch_dir)
        self.runs_dir = self.batch_dir / "runs"
        self.analysis_dir = self.batch_dir / "analysis"
        if not self.runs_dir.is_dir():
            raise FileNotFoundError(f"Runs directory not found: {self.runs_dir}")
        self.analysis_dir.mkdir(exist_ok=True)
        config_path = self.batch_dir / "batch-config.yaml"
        self.config = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}) if config_path.is_file() else {}
        state = _read_json(self.batch_dir / "batch-state.json") or {}
        self.variations = [Variation.from_v1(v) for v in state.get("variations") or [] if "variation_id" in v]
        self.outcomes = self.collect()

    def collect(self) -> list[RunOutcome]:
        """Every run directory named var-XXX-run-YYY: completed or not, its ledger's cost, its final metrics."""
        outcomes = []
        for folder in sorted(self.runs_dir.iterdir()):
            parts = folder.name.split("-")
            if not folder.is_dir() or len(parts) != 4 or parts[0] != "var" or parts[2] != "run":
                continue
            try:
                variation, number = int(parts[1]), int(parts[3])
                state, document = read_run_directory(folder)
            except (ValueError, RunDirectoryError):
                continue  # a run that never saved its first turn: nothing to count
            metrics = (_read_json(folder / "metrics.json") or {}).get("final_metrics") or {}
            outcomes.append(RunOutcome(
                variation_id=variation, run_number=number, ended=True, success=document.get("status") == "completed",
                cost=state.total_cost, metrics={k: float(v) for k, v in metrics.items() if is_number(v)},
            ))
        known = {v.variation_id for v in self.variations}
        self.variations += [Variation(i, "") for i in sorted({o.variation_id for o in outcomes} - known)]
        return outcomes

    # ---- the analysis files ---------------------------------------------------------------------------------
    def metrics_analysis(self) -> dict[str, dict[str, Any]]:
        values: dict[str, list[float]] = {}
        for outcome in self.outcomes:
            if outcome.success:
                for name, value in outcome.metrics.items():
                    values.setdefault(name, []).append(value)
        result = {}
        for name, series in sorted(values.items()):
            summary = summarize(series)
            result[name] = {"count": summary.count, "mean": summary.mean, "median": summary.median, "min": summary.min,
                            "max": summary.max, "stdev": summary.stdev or 0.0}
        return result

    def variation_statistics(self) -> dict[str, dict[str, Any]]:
        result = {}
        for stats in variation_statistics(self.variations, self.outcomes):
            costs = [o.cost for o in self.outcomes if o.variation_id == stats.variation_id]
            entry: dict[str, Any] = {
                "variation_id": stats.variation_id,
                "description": stats.description,
                "total_runs": stats.runs,
                "successful_runs": stats.successful,
                "success_rate": stats.success_rate or 0.0,
                "metrics": {name: {"count": m.count, "mean": m.mean, "median": m.median, "min": m.min, "max": m.max,
                                   "stdev": m.stdev or 0.0, "ci95_low": m.ci_low, "ci95_high": m.ci_high}
                            for name, m in stats.metrics.items()},
            }
            if costs:
                entry["cost"] = {"total": sum(costs), "mean": sum(costs) / len(costs), "min": min(costs), "max": max(costs)}
            result[str(stats.variation_id)] = entry
        return result

    def patterns(self) -> dict[str, Any]:
        successful = [o for o in self.outcomes if o.success]
        total = len(self.outcomes)
        patterns: dict[str, Any] = {
            "success_factors": [],
            "failure_modes": sorted({f"variation {o.variation_id}" for o in self.outcomes if not o.success}),
            "cost_efficiency": [],
            "success_rate": len(successful) / total if total else 0.0,
            "total_runs": total,
            "successful_runs": len(successful),
            "failed_runs": total - len(successful),
        }
        statistics = self.variation_statistics()
        rates = {int(v): s["success_rate"] for v, s in statistics.items() if s["total_runs"]}
        if rates:
            best = max(rates, key=lambda v: (rates[v], -v))
            patterns["best_variation"] = {"variation_id": best, "success_rate": rates[best]}
        efficiency = [(int(v), s["successful_runs"] / s["cost"]["total"]) for v, s in statistics.items()
                      if s["successful_runs"] and s.get("cost", {}).get("total", 0) > 0]
        patterns["cost_efficiency"] = [{"variation_id": v, "runs_per_dollar": e}
                                       for v, e in sorted(efficiency, key=lambda item: -item[1])]
        return patterns

    def report(self) -> str:
        patterns = self.patterns()
        lines = ["# Batch Analysis Report", ""]
        if self.config.get("experiment_name"):
            lines += [f"**Experiment:** {self.config['experiment_name']}", ""]
        lines += [f"**Total Runs:** {patterns['total_runs']}", f"**Successful Runs:** {patterns['successful_runs']}",
                  f"**Failed Runs:** {patterns['failed_runs']}", f"**Success Rate:** {patterns['success_rate'] * 100:.1f}%", "",
                  "## Overall Metrics", ""]
        for name, stats in self.metrics_analysis().items():
            lines += [f"### {name}", f"- Mean: {stats['mean']:.2f}", f"- Median: {stats['median']:.2f}",
                      f"- Std Dev: {stats['stdev']:.2f}", f"- Range: [{stats['min']:.2f}, {stats['max']:.2f}]", ""]
        lines += ["## Variation Comparison", ""]
        for variation, stats in self.variation_statistics().items():
            lines.append(f"### Variation {variation}")
            if stats["description"]:
                lines += [f"**Configuration:** {stats['description']}", ""]
            lines += [f"- Runs: {stats['successful_runs']}/{stats['total_runs']}", f"- Success Rate: {stats['success_rate'] * 100:.1f}%"]
            if "cost" in stats:
                lines += [f"- Total Cost: ${stats['cost']['total']:.2f}", f"- Avg Cost/Run: ${stats['cost']['mean']:.3f}"]
            if stats["metrics"]:
                lines += ["", "**Metrics:**"]
                for name, m in stats["metrics"].items():
                    interval = f", 95% CI [{m['ci95_low']:.2f}, {m['ci95_high']:.2f}]" if m["ci95_low"] is not None else ""
                    lines.append(f"  - {name}: {m['mean']:.2f} (±{m['stdev']:.2f}{interval})")
            lines.append("")
        if patterns["cost_efficiency"]:
            lines += ["## Cost Efficiency", "", "Ranked by successful runs per dollar:", ""]
            lines += [f"- Variation {item['variation_id']}: {item['runs_per_dollar']:.2f} runs/$" for item in patterns["cost_efficiency"]]
            lines.append("")
        return "\n".join(lines)

    def save_analysis_data(self) -> str:
        """Writes every analysis file; returns the report."""
        _write_json(self.analysis_dir / "metrics-analysis.json", self.metrics_analysis())
        _write_json(self.analysis_dir / "variation-statistics.json", self.variation_statistics())
        _write_json(self.analysis_dir / "patterns.json", self.patterns())
        report = self.report()
        (self.analysis_dir / "analysis-report.md").write_text(report, encoding="utf-8")
        return report


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = argparse.ArgumentParser(prog="batch_analyzer.py", description="Analyze results from batch scenario execution (V1 command line).")
    parser.add_argument("batch_dir", help="the batch output directory")
    parser.add_argument("--report", action="store_true", help="also print the analysis report")
    args = parser.parse_args(argv)
    try:
        analyzer = BatchAnalyzer(args.batch_dir)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=err)
        return 2
    report = analyzer.save_analysis_data()
    print(f"Analysis data saved to {analyzer.analysis_dir}", file=out)
    if args.report:
        print("\n" + "=" * 60 + f"\n{report}\n" + "=" * 60, file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
