"""A batch played by real `run_huey` worker processes: 2 variations × 3 runs, two workers, statistics by hand."""

import math
import statistics

import pytest

from batches import selectors, services
from batches.models import Batch, BatchStatus
from batches.tests.factories import plan_batch
from runs.models import MetricRecord, Run, RunStatus
from runs.tests.workers import start_worker, stop, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.both_profiles]
T_975_DF2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (three runs)


def most_at_once(runs: list[Run]) -> int:
    """The most runs that were being played at the same moment."""
    moments = sorted([(r.started_at, 1) for r in runs] + [(r.finished_at, -1) for r in runs], key=lambda m: (m[0], m[1]))
    playing = peak = 0
    for _, step in moments:
        playing += step
        peak = max(peak, playing)
    return peak


def test_two_variations_by_three_runs_complete_on_two_workers_and_the_statistics_match_a_hand_computation():
    workers = [start_worker(), start_worker()]
    try:
        batch = services.batch_start(plan=plan_batch())  # the offline summit, seeds 1-3 and 11-13, two at a time
        wait_for(lambda: Batch.objects.get(pk=batch.pk).status == BatchStatus.COMPLETED, timeout=90,
                 what="the workers to finish the batch")
    finally:
        logs = "\n".join(stop(worker) for worker in workers)

    runs = list(Run.objects.filter(batch_run__batch=batch).select_related("batch_run"))
    assert len(runs) == 6 and {r.status for r in runs} == {RunStatus.COMPLETED}, logs
    assert {r.worker.rsplit(":", 1)[1] for r in runs} <= {str(w.pid) for w in workers}
    assert most_at_once(runs) <= 2, "never more than max_parallel runs at once"

    # By hand: each metric's value at the run's last turn, per variation.
    by_hand: dict[int, dict[str, list[float]]] = {1: {}, 2: {}}
    for run in runs:
        for record in MetricRecord.objects.filter(run=run, turn=run.max_turns):
            if isinstance(record.value, (int, float)) and not isinstance(record.value, bool):
                by_hand[run.batch_run.variation].setdefault(record.name, []).append(float(record.value))
    computed = {s.variation_id: s for s in selectors.batch_statistics(batch=Batch.objects.get(pk=batch.pk))}
    assert set(computed) == {1, 2} and computed[1].description == "seed=1"
    assert set(computed[1].metrics) == set(by_hand[1]) and len(by_hand[1]) >= 4
    for variation, metrics in by_hand.items():
        stats = computed[variation]
        assert (stats.runs, stats.ended, stats.successful, stats.success_rate) == (3, 3, 3, 1.0)
        assert (stats.total_cost, stats.cost_per_run) == (0.0, 0.0), "offline runs are free"
        for name, values in metrics.items():
            assert len(values) == 3
            mean = sum(values) / 3
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
            half = T_975_DF2 * sd / math.sqrt(3)
            summary = stats.metrics[name]
            assert summary.count == 3
            assert summary.mean == pytest.approx(mean)
            assert summary.stdev == pytest.approx(sd)
            assert summary.ci_low == pytest.approx(mean - half) and summary.ci_high == pytest.approx(mean + half)
            assert (summary.min, summary.max, summary.median) == (min(values), max(values), statistics.median(values))
    # The seeds matter: the two variations did not play the same runs.
    assert by_hand[1] != by_hand[2]
