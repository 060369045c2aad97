"""A scenario's mappings come back from the database in the order their author wrote, on both profiles
(PostgreSQL's jsonb would store keys shortest first: the QA checks would play in another order there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.scenario.folder import Scenario as EngineScenario
from runs.models import Run
from runs.services import run_create, run_plan
from scenarios.models import Scenario
from scenarios.services import scenario_import_folder, scenario_to_engine

pytestmark = [pytest.mark.django_db, pytest.mark.both_profiles]
SUMMIT = Path(__file__).resolve().parents[1] / "library" / "ai-summit"
WRITTEN = ["actor_decision_consistency", "world_state_coherence", "information_access_consistency"]


def test_the_checks_keep_their_authors_order_in_the_scenario_and_in_a_runs_snapshot():
    assert list(EngineScenario.load(SUMMIT).validation.checks) == WRITTEN  # longest first: not jsonb's order
    stored = scenario_import_folder(path=SUMMIT, slug="ordered")
    again = Scenario.objects.get(pk=stored.pk)  # read back from the database
    assert list(again.validation_rules["checks"]) == WRITTEN
    config = scenario_to_engine(scenario=again)
    assert list(config.validation.checks) == WRITTEN

    run = run_create(plan=run_plan(config=config, turns=1), slug="ordered")
    snapshot = Run.objects.values_list("snapshot", flat=True).get(pk=run.pk)
    assert list(EngineScenario.model_validate(snapshot).validation.checks) == WRITTEN
