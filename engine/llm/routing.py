"""Which server answers which model, decided from the environment.

Model strings are written as users write them (`openai/gpt-4o-mini`, `ollama/llama3.1:8b`, `local/gemma`).
`ollama/...` goes to Ollama, `local/...` to the generic OpenAI-compatible server; anything else to
OpenRouter when its key is set, else to OpenAI (for `openai/...`), else to the generic server. With nothing
configured, the offline provider plays every seat, and `describe()` says so plainly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.llm.offline import OfflineProvider
from engine.llm.openai_compatible import STRUCTURED_OUTPUTS, Endpoint, OpenAICompatibleProvider
from engine.llm.pricing import PriceBook
from engine.llm.provider import LearnsPrices, LLMProvider, LLMRequest, LLMResponse
from engine.scenario.folder import Scenario

OPENROUTER_URL = "https://openrouter.ai/api/v1"
OPENAI_URL = "https://api.openai.com/v1"
PROVIDER_CHOICES = ("offline", "openrouter", "openai", "ollama", "local")


class RoutingError(ValueError):
    """A model cannot be served by what the environment configures; the message names the variable."""


def endpoints_from_environment(env: Mapping[str, str]) -> dict[str, Endpoint]:
    concurrency = int(env.get("SCENARIOLAB_LLM_CONCURRENCY", "48"))
    timeout = float(env.get("SCENARIOLAB_LLM_TIMEOUT", "120"))
    found: dict[str, Endpoint] = {}
    if env.get("OPENROUTER_API_KEY"):
        found["openrouter"] = Endpoint("openrouter", env.get("OPENROUTER_BASE_URL", OPENROUTER_URL), env["OPENROUTER_API_KEY"], max_concurrency=concurrency, read_timeout=timeout)
    if env.get("OPENAI_API_KEY"):
        found["openai"] = Endpoint("openai", env.get("OPENAI_BASE_URL", OPENAI_URL), env["OPENAI_API_KEY"], max_concurrency=concurrency, read_timeout=timeout, strip_prefix="openai/")
    if env.get("OLLAMA_BASE_URL"):
        base = env["OLLAMA_BASE_URL"].rstrip("/")
        found["ollama"] = Endpoint("ollama", base if base.endswith("/v1") else f"{base}/v1", None, structured_output="ollama", max_concurrency=concurrency, read_timeout=timeout, strip_prefix="ollama/")
    if env.get("SCENARIOLAB_LLM_BASE_URL"):
        structured = env.get("SCENARIOLAB_LLM_STRUCTURED_OUTPUT", "json_schema")
        if structured not in STRUCTURED_OUTPUTS:
            raise RoutingError(f"SCENARIOLAB_LLM_STRUCTURED_OUTPUT={structured!r}: choose one of {', '.join(STRUCTURED_OUTPUTS)}")
        found["local"] = Endpoint("local", env["SCENARIOLAB_LLM_BASE_URL"], env.get("SCENARIOLAB_LLM_API_KEY") or None, structured_output=structured, max_concurrency=concurrency, read_timeout=timeout, strip_prefix="local/")
    return found


class ModelRouter:
    """An LLMProvider that hands each request to the provider serving its model."""

    def __init__(self, providers: Mapping[str, LLMProvider], *, forced: str | None = None) -> None:
        self.providers = dict(providers)
        self.forced = forced
        self.name = forced or "+".join(sorted(self.providers)) or "offline"

    def provider_for(self, model: str) -> LLMProvider:
        if self.forced:
            return self.providers[self.forced]
        if model.startswith("ollama/"):
            return self._need("ollama", model, "OLLAMA_BASE_URL (e.g. http://127.0.0.1:11434)")
        if model.startswith("local/"):
            return self._need("local", model, "SCENARIOLAB_LLM_BASE_URL (e.g. http://127.0.0.1:8080/v1)")
        for name in ("openrouter", "openai" if model.startswith("openai/") else "", "local"):
            if name in self.providers:
                return self.providers[name]
        raise RoutingError(f"no server for model {model!r}: set OPENROUTER_API_KEY, or SCENARIOLAB_LLM_BASE_URL for a local server")

    def _need(self, name: str, model: str, variable: str) -> LLMProvider:
        if name not in self.providers:
            raise RoutingError(f"model {model!r} needs {variable} to be set")
        return self.providers[name]

    def max_cost(self, request: LLMRequest) -> float:
        return self.provider_for(request.model).max_cost(request)

    def learns_prices(self, model: str) -> bool:
        try:
            provider = self.provider_for(model)
        except RoutingError:
            return False
        return isinstance(provider, LearnsPrices) and provider.learns_prices(model)

    def max_cost_unbilled(self, request: LLMRequest) -> float:
        provider = self.provider_for(request.model)
        return provider.max_cost_unbilled(request) if isinstance(provider, LearnsPrices) else provider.max_cost(request)

    def observe_cost(self, model: str, input_tokens: int, output_tokens: int, cost: float) -> None:
        try:
            provider = self.provider_for(model)
        except RoutingError:  # a ledger line of a model this run no longer uses (a branch changed it)
            return
        if isinstance(provider, LearnsPrices):
            provider.observe_cost(model, input_tokens, output_tokens, cost)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return await self.provider_for(request.model).complete(request)

    def check(self, scenario: Scenario) -> None:
        """Fail before the run starts, not at turn 3, when a model has no server."""
        for model in scenario_models(scenario):
            self.provider_for(model)


def scenario_models(scenario: Scenario) -> list[str]:
    models = [a.llm_model for a in scenario.actors] + [scenario.config.world_state_model, scenario.judge_model]
    models += [m.extraction.model for m in scenario.metric_definitions if m.extraction.model]
    return sorted(set(models))


def with_model(scenario: Scenario, model: str) -> Scenario:
    """The run-level `--model` override: every seat, the world model and the judge use `model`."""
    config = scenario.config.model_copy(update={"world_state_model": model})
    actors = [a.model_copy(update={"llm_model": model}) for a in scenario.actors]
    validation = scenario.validation.model_copy(update={"validation_model": model}) if scenario.validation else None
    return scenario.model_copy(update={"config": config, "actors": actors, "validation": validation})


@dataclass(frozen=True)
class ProviderChoice:
    provider: LLMProvider
    description: str  # what the terminal and the run page say about where answers come from
    offline: bool


def provider_from_environment(
    scenario: Scenario,
    *,
    env: Mapping[str, str] | None = None,
    provider: str | None = None,
    prices: PriceBook | None = None,
) -> ProviderChoice:
    env = os.environ if env is None else env
    if provider is not None and provider not in PROVIDER_CHOICES:
        raise RoutingError(f"unknown provider {provider!r}: choose one of {', '.join(PROVIDER_CHOICES)}")
    endpoints = endpoints_from_environment(env)
    if provider == "offline" or (provider is None and not endpoints):
        reason = "as asked" if provider == "offline" else "no API key or base URL is set"
        return ProviderChoice(OfflineProvider(scenario), f"offline (built in, deterministic; {reason}, so no model is called)", True)
    if provider is not None and provider not in endpoints:
        variable = {"openrouter": "OPENROUTER_API_KEY", "openai": "OPENAI_API_KEY", "ollama": "OLLAMA_BASE_URL", "local": "SCENARIOLAB_LLM_BASE_URL"}[provider]
        raise RoutingError(f"--provider {provider} needs {variable} to be set")
    book = prices or PriceBook.from_environment(env)
    providers = {name: OpenAICompatibleProvider(endpoint, prices=book) for name, endpoint in endpoints.items()}
    router = ModelRouter(providers, forced=provider)
    router.check(scenario)
    where = ", ".join(f"{name} at {endpoints[name].display_url}" for name in sorted(providers) if provider in (None, name))
    unpriced = [m for m in scenario_models(scenario) if not book.is_known(m)]
    note = f"; no price known for {', '.join(unpriced)}: assumed at a high rate, add them to SCENARIOLAB_PRICE_TABLE" if unpriced else ""
    return ProviderChoice(router, f"{where}{note}", False)
