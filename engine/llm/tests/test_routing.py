"""Which server answers which model, from the environment alone."""

from pathlib import Path

import pytest

from engine.llm.offline import OfflineProvider
from engine.llm.openai_compatible import OpenAICompatibleProvider
from engine.llm.routing import RoutingError, endpoints_from_environment, provider_from_environment, with_model
from engine.scenario.folder import Scenario

SUMMIT = Path(__file__).resolve().parents[3] / "scenarios" / "library" / "ai-summit"


@pytest.fixture(scope="module")
def summit() -> Scenario:
    return Scenario.load(SUMMIT)


def served_by(choice, model: str) -> str:
    return choice.provider.provider_for(model).name


def test_nothing_configured_means_offline_said_plainly(summit):
    choice = provider_from_environment(summit, env={})
    assert isinstance(choice.provider, OfflineProvider) and choice.offline
    assert "offline" in choice.description and "no API key or base URL" in choice.description


def test_openrouter_serves_every_model_as_written(summit):
    choice = provider_from_environment(summit, env={"OPENROUTER_API_KEY": "sk-or-test"})
    assert not choice.offline
    assert served_by(choice, "anthropic/claude-3.5-haiku") == "openrouter"
    provider = choice.provider.provider_for("openai/gpt-4o")
    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.endpoint.upstream_model("openai/gpt-4o") == "openai/gpt-4o"
    assert "sk-or-test" not in choice.description


def test_openai_directly_strips_its_prefix_and_refuses_other_vendors(summit):
    env = {"OPENAI_API_KEY": "sk-test"}
    only_openai = with_model(summit, "openai/gpt-4o-mini")
    choice = provider_from_environment(only_openai, env=env)
    assert choice.provider.provider_for("openai/gpt-4o-mini").endpoint.upstream_model("openai/gpt-4o-mini") == "gpt-4o-mini"
    with pytest.raises(RoutingError, match="OPENROUTER_API_KEY"):
        provider_from_environment(summit, env=env)  # the summit also seats anthropic/... models


def test_ollama_and_local_prefixes_need_their_servers(summit):
    env = {"OLLAMA_BASE_URL": "http://127.0.0.1:11434", "SCENARIOLAB_LLM_BASE_URL": "http://127.0.0.1:8080/v1"}
    endpoints = endpoints_from_environment(env)
    assert endpoints["ollama"].base_url == "http://127.0.0.1:11434/v1" and endpoints["ollama"].structured_output == "ollama"
    choice = provider_from_environment(with_model(summit, "ollama/llama3.1:8b"), env=env)
    assert served_by(choice, "ollama/llama3.1:8b") == "ollama"
    assert choice.provider.provider_for("ollama/llama3.1:8b").endpoint.upstream_model("ollama/llama3.1:8b") == "llama3.1:8b"
    assert served_by(choice, "local/gemma") == "local"
    with pytest.raises(RoutingError, match="OLLAMA_BASE_URL"):
        provider_from_environment(with_model(summit, "ollama/x"), env={"SCENARIOLAB_LLM_BASE_URL": "http://127.0.0.1:8080/v1"})


def test_a_generic_server_takes_any_model_when_it_is_the_only_one(summit):
    choice = provider_from_environment(summit, env={"SCENARIOLAB_LLM_BASE_URL": "http://127.0.0.1:8080/v1"})
    assert served_by(choice, "anthropic/claude-3.5-haiku") == "local"


def test_the_provider_override_forces_one_server(summit):
    env = {"OPENROUTER_API_KEY": "k", "SCENARIOLAB_LLM_BASE_URL": "http://127.0.0.1:8080/v1"}
    choice = provider_from_environment(summit, env=env, provider="local")
    assert served_by(choice, "anthropic/claude-3.5-haiku") == "local"
    assert provider_from_environment(summit, env=env, provider="offline").offline
    with pytest.raises(RoutingError, match="OLLAMA_BASE_URL"):
        provider_from_environment(summit, env=env, provider="ollama")
    with pytest.raises(RoutingError, match="unknown provider"):
        provider_from_environment(summit, env=env, provider="acme")


def test_a_key_for_a_plain_http_remote_host_is_refused(summit):
    env = {"SCENARIOLAB_LLM_BASE_URL": "http://models.example.com/v1", "SCENARIOLAB_LLM_API_KEY": "k"}
    with pytest.raises(ValueError, match="plain HTTP"):
        provider_from_environment(summit, env=env)


def test_with_model_changes_every_seat_the_world_and_the_judge(summit):
    changed = with_model(summit, "local/gemma")
    assert {a.llm_model for a in changed.actors} == {"local/gemma"}
    assert changed.config.world_state_model == "local/gemma" and changed.judge_model == "local/gemma"
    assert summit.config.world_state_model != "local/gemma", "the original is untouched"


def test_unknown_prices_are_flagged_at_start(summit):
    odd = with_model(summit, "acme/never-heard-of-it")
    choice = provider_from_environment(odd, env={"OPENROUTER_API_KEY": "k"})
    assert "no price known for acme/never-heard-of-it" in choice.description


def test_what_people_see_of_a_server_never_carries_a_key_hidden_in_its_url(summit):
    env = {"SCENARIOLAB_LLM_BASE_URL": "http://user:sekrit@127.0.0.1:8080/v1?api-key=sekrit2"}
    choice = provider_from_environment(summit, env=env)
    assert "127.0.0.1:8080/v1" in choice.description
    assert "sekrit" not in choice.description and "user" not in choice.description
