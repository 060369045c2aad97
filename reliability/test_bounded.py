"""Every reliability scenario, with the few trials `make test` can afford (a worker kill costs ~16 s on 2
cores: one in make test): each must pass every trial."""

import pytest

from reliability.scenarios import SCENARIOS


def _param(scenario):
    marks = [pytest.mark.both_profiles] if scenario.both_profiles else []
    return pytest.param(scenario, marks=marks, id=scenario.name.replace(" ", "-"))


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
def test_scenario_holds_up(scenario):
    result = scenario.run(scenario.bounded, seed=1)
    assert result.trials == scenario.bounded
    assert result.passed == result.trials, f"{result.scenario}: {result.figure}"
