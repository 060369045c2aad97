"""What the engine's tests share: the bundled summit scenario, a no-wait error policy, state as JSON."""

import json
from pathlib import Path

import pytest

from engine import ErrorPolicy, Scenario, ScenarioState

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"
NO_WAIT = ErrorPolicy(max_attempts=2, retry_delay=0)


def as_json(state: ScenarioState) -> dict:
    """The state as it would be stored, without its timestamps, for whole-run comparisons."""
    return json.loads(json.dumps(state.to_dict(stamps=False)))


@pytest.fixture(scope="session")
def summit() -> Scenario:
    return Scenario.load(LIBRARY / "ai-summit")
