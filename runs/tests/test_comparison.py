"""runs.comparison: stored runs side by side, from real offline runs in the database."""

import json

import pytest

from runs import services
from runs.comparison import ComparisonError, run_comparison
from runs.models import Decision, Turn
from runs.tests.factories import make_run

# "__all__": runs publish to the embedded profile's channel layer, which has a database of its own.
pytestmark = pytest.mark.django_db(databases="__all__")


def played(**params):
    return services.run_execute(run_id=make_run(**params).pk)


def test_two_runs_side_by_side():
    first, second = played(turns=2, seed=1), played(turns=2, seed=2)

    comparison = run_comparison(run_ids=[second.pk, first.pk])

    assert [run.id for run in comparison.runs] == [second.pk, first.pk]  # the order asked for
    for compared, run in zip(comparison.runs, [second, first]):
        assert (compared.scenario, compared.status, compared.turn, compared.offline) == ("ai-summit", "completed", 2, True)
        assert compared.calls == run.calls > 0
        assert {"world", "norvale", "meridian"} <= set(compared.cost_by_actor)
        assert {"decision", "world_update"} <= set(compared.cost_by_phase)
        assert sum(compared.cost_by_phase.values()) == pytest.approx(run.total_cost)
    names = {row.metric for row in comparison.metrics}
    assert "signatories" in names
    assert {(row.metric, row.turn) for row in comparison.metrics} == {(name, turn) for name in names for turn in (1, 2)}
    assert all(len(row.values) == 2 and None not in row.values for row in comparison.metrics)

    assert comparison.decision_turn == 2
    actors = [row.actor for row in comparison.decisions]
    assert actors == [seat["short_name"] for seat in first.actors]
    norvale = comparison.decisions[0]
    assert norvale.decisions[1].action == Decision.objects.get(run=first, turn=2, actor="norvale").action

    (world,) = comparison.world_diffs
    assert (world.base_run, world.base_turn, world.run, world.turn) == (second.pk, 2, first.pk, 2)
    assert world.diff.startswith(f"--- run {second.pk}, turn 2\n+++ run {first.pk}, turn 2\n@@")
    json.dumps(comparison.as_dict())  # JSON-ready for the terminal, a page or the API


def test_runs_with_the_same_seed_end_in_the_same_world():
    first, second = played(turns=1, seed=3), played(turns=1, seed=3)
    comparison = run_comparison(run_ids=[first.pk, second.pk])
    assert comparison.world_diffs[0].diff == ""
    assert all(row.values[0] == row.values[1] for row in comparison.metrics)


def test_runs_of_different_lengths():
    longer, shorter, queued = played(turns=2, seed=1), played(turns=1, seed=1), make_run(turns=2)

    by_default = run_comparison(run_ids=[longer.pk, shorter.pk])
    assert by_default.decision_turn == 1  # the last turn both completed
    assert all(None not in row.decisions for row in by_default.decisions)
    assert {row.values[1] for row in by_default.metrics if row.turn == 2} == {None}
    assert by_default.world_diffs[0].turn == 1 and by_default.world_diffs[0].base_turn == 2

    at_two = run_comparison(run_ids=[longer.pk, shorter.pk], turn=2)
    assert all(row.decisions[0] is not None and row.decisions[1] is None for row in at_two.decisions)

    not_started = run_comparison(run_ids=[longer.pk, queued.pk])
    assert not_started.decision_turn is None and not_started.decisions == ()
    assert not_started.runs[1].status == "queued" and not_started.runs[1].cost_by_actor == {}
    start = Turn.objects.get(run=queued, turn=0).world_state
    assert f"+++ run {queued.pk}, turn 0" in not_started.world_diffs[0].diff and start.splitlines()[0] in not_started.world_diffs[0].diff


def test_a_run_named_twice_is_compared_once():
    run = played(turns=1)
    assert [compared.id for compared in run_comparison(run_ids=[run.pk, run.pk]).runs] == [run.pk]


@pytest.mark.parametrize(
    ("ids", "turn", "message"),
    [
        (lambda run: [run.pk, 99999, 99998], None, "No run 99999, 99998."),
        (lambda run: [], None, "Name at least one run to compare."),
        (lambda run: [run.pk], 0, "--turn 0: pick a turn from 1 to 1 (the runs completed turns 1)."),
        (lambda run: [run.pk], 2, "--turn 2: pick a turn from 1 to 1"),
    ],
)
def test_bad_input_says_what(ids, turn, message):
    run = played(turns=1)
    with pytest.raises(ComparisonError) as caught:
        run_comparison(run_ids=ids(run), turn=turn)
    assert str(caught.value).startswith(message)
