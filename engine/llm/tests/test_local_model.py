"""A real (tiny, weak) model on 127.0.0.1 drives one turn of a small ai-summit through the same client as any server.

gemma-3-270m often answers badly; the run must still finish, with every attempt in the ledger.
"""

from pathlib import Path

import pytest

from engine import ErrorPolicy, FilesystemPersistence, Runner, ScenarioStatus, Scenario
from engine.llm.local_model import MODEL, LocalModelServer, client_environment, missing_packages
from engine.llm.routing import provider_from_environment, with_model
from engine.scenario.schema import CommunicationSettings, Toggle

SUMMIT = Path(__file__).resolve().parents[3] / "scenarios" / "library" / "ai-summit"

pytestmark = pytest.mark.local_model
if missing := missing_packages():
    pytest.skip(f"the bundled local model is not installed ({', '.join(missing)}): run `make local-model`",
                allow_module_level=True)


def small_summit() -> Scenario:
    """Two delegations, no talks, no QA, no model-judged metrics: a turn is three calls plus re-asks, which
    the tiny model on two cores answers in minutes (the whole summit's turn would take most of an hour)."""
    scenario = with_model(Scenario.load(SUMMIT), MODEL)
    features = scenario.config.features.model_copy(
        update={"communications": CommunicationSettings(enabled=False), "quality_assurance": Toggle(enabled=False)}
    )
    config = scenario.config.model_copy(update={"features": features})
    metrics = scenario.metrics.model_copy(
        update={"metrics": [m for m in scenario.metric_definitions if m.extraction.type != "llm"]}
    ) if scenario.metrics else None
    return scenario.model_copy(update={"config": config, "actors": scenario.actors[:2], "metrics": metrics})


def test_one_turn_of_ai_summit_against_the_local_model(tmp_path):
    scenario = small_summit()
    with LocalModelServer() as server:
        choice = provider_from_environment(scenario, env=client_environment(server.base_url))
        runner = Runner(provider=choice.provider, error_policy=ErrorPolicy(max_attempts=2, retry_delay=0),
                        persistence=FilesystemPersistence(tmp_path))
        state = runner.run(scenario, max_turns=1, run_id="local-gemma")

    assert not choice.offline and "local at http://127.0.0.1" in choice.description
    assert state.status is ScenarioStatus.COMPLETED, state.halt_reason or state.error
    assert state.turn == 1 and state.world_state.turn == 1 and state.world_state.content.strip()
    assert set(state.decisions_in(1)) == {a.short_name for a in scenario.actors}
    assert state.costs and {c.provider for c in state.costs} == {"local"}
    assert all(c.input_tokens > 0 for c in state.costs), "usage comes from the server"
    assert state.total_cost == 0, "a local model is free"
    assert (tmp_path / "local-gemma" / "state.json").is_file()
