"""Cost estimate before a run starts: the calls a turn makes, each priced at its worst case.

It builds the same kind of requests the phases will send (same models, prompt sizes, max tokens) and asks
the provider what each could cost at most, so the estimate and the credit-limit check agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.llm.provider import CallPurpose, LLMProvider, LLMRequest, Message
from engine.phases.prompts import actor_system_prompt
from engine.phases.validation import is_per_actor
from engine.scenario.schema import Scenario


@dataclass(frozen=True)
class CostEstimate:
    turns: int
    calls: int
    max_cost: float
    by_phase: dict[str, float] = field(default_factory=dict)
    provider: str = ""

    def describe(self) -> str:
        return (
            f"Estimated cost for {self.turns} turns: at most ${self.max_cost:.4f} "
            f"({self.calls} model calls via {self.provider})"
        )


def _request(model: str, phase: str, task: str, system: str, prompt_chars: int, max_tokens: int) -> LLMRequest:
    return LLMRequest(
        messages=(Message("system", system), Message("user", "x" * prompt_chars)),
        model=model,
        purpose=CallPurpose(task=task, phase=phase, turn=1),
        max_tokens=max_tokens,
    )


def estimate_run_cost(scenario: Scenario, provider: LLMProvider, *, turns: int | None = None) -> CostEstimate:
    turns = scenario.config.turns if turns is None else turns
    config = scenario.config
    # The prompt grows with the context window: the current world plus up to `window` earlier turns.
    world_chars = len(config.initial_world_state) * (1 + config.context_window_size)
    requests: list[LLMRequest] = []
    settings = config.features.communications
    for actor in scenario.actors:
        system = actor_system_prompt(scenario, actor)
        requests.append(_request(actor.llm_model, "decision", "decision", system, world_chars + 2000, 1200))
        if settings.enabled:
            requests.append(_request(actor.llm_model, "communication", "outreach", system, world_chars + 600, 800))
            # Worst case: every other actor opens all its conversations as coalitions that include this one.
            replies = settings.max_per_turn * (len(scenario.actors) - 1)
            requests += [_request(actor.llm_model, "communication", "reply", system, world_chars + 800, 600)] * replies
    requests.append(_request(config.world_state_model, "world_update", "world_update", "", world_chars * 2 + 4000, 2000))
    if config.features.metrics_extraction.enabled:
        for metric in scenario.metric_definitions:
            if metric.extraction.type == "llm":
                model = metric.extraction.model or scenario.judge_model
                subjects = (1 if metric.actor else len(scenario.actors)) if metric.actor_specific else 1
                requests += [_request(model, "metrics", "metric", "", len(config.initial_world_state) + 600, 20)] * subjects
    rules = scenario.validation
    if rules and rules.run_after_each_turn and config.features.quality_assurance.enabled:
        for name, check in rules.enabled_checks.items():
            count = len(scenario.actors) if is_per_actor(name, check) else 1
            requests += [_request(rules.validation_model, "validation", "validation", "", world_chars + 2500, 600)] * count
    by_phase: dict[str, float] = {}
    for request in requests:
        by_phase[request.purpose.phase] = by_phase.get(request.purpose.phase, 0.0) + provider.max_cost(request) * turns
    return CostEstimate(turns=turns, calls=len(requests) * turns, max_cost=sum(by_phase.values()), by_phase=by_phase, provider=provider.name)
