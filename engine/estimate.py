"""Cost estimate before a run starts: tokens and cost per actor and phase, as a low–high range.

It builds the same kind of requests the phases will send (same models, system prompts, max tokens) and asks
the provider to price them with `max_cost`, the function the credit-limit check uses before every call, so
the estimate and the check cannot disagree.

- *high* is the worst case the credit limit must allow: every optional call made (every actor answers the
  most coalitions it can be invited to), prompts as long as the context window lets them grow, every answer
  at its `max_tokens`.
- *low* is a quiet run: only the calls every turn makes (no replies), prompts with the current world only,
  answers of typical length. A real run lands in between; with a cache it can land below.

With context management on, a summary call is counted for every turn from the first that has turns older than
the context window (one new turn folded in each time), and every prompt may carry a summary besides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from engine.llm.provider import CallPurpose, LLMProvider, LLMRequest, Message, estimate_tokens
from engine.phases.prompts import actor_system_prompt
from engine.phases.summary import SUMMARY_MAX_TOKENS, summary_model, summary_system_prompt
from engine.phases.validation import is_per_actor
from engine.scenario.folder import Scenario

# Typical answer lengths in tokens, from offline and real runs of the bundled scenarios: the low end.
TYPICAL_OUTPUT_TOKENS = {
    "decision": 450,
    "outreach": 200,
    "reply": 150,
    "world_update": 800,
    "metric": 5,
    "validation": 200,
    "summary": 350,
}
WORLD = "(world)"  # the `actor` of calls made by the world, judge and validation models


@dataclass(frozen=True)
class CostRange:
    low: float
    high: float

    def __add__(self, other: CostRange) -> CostRange:
        return CostRange(self.low + other.low, self.high + other.high)


@dataclass(frozen=True)
class EstimateLine:
    """The calls of one actor (or the world models) in one phase, over the whole run."""

    actor: str
    phase: str
    model: str
    calls: CostRange
    input_tokens: CostRange
    output_tokens: CostRange
    cost: CostRange


@dataclass(frozen=True)
class CostEstimate:
    turns: int
    provider: str
    lines: tuple[EstimateLine, ...] = ()
    # A run with an end condition may stop after its first turn: the low end is one turn, the high end `turns`.
    min_turns: int | None = None
    end_condition: str | None = None

    @property
    def cost(self) -> CostRange:
        return _total(line.cost for line in self.lines)

    @property
    def max_cost(self) -> float:
        return self.cost.high

    @property
    def calls(self) -> int:
        """The most calls the run can make."""
        return round(_total(line.calls for line in self.lines).high)

    @property
    def tokens(self) -> CostRange:
        return _total(line.input_tokens for line in self.lines) + _total(line.output_tokens for line in self.lines)

    def by_phase(self) -> dict[str, CostRange]:
        return self._grouped(lambda line: line.phase)

    def by_actor(self) -> dict[str, CostRange]:
        return self._grouped(lambda line: line.actor)

    def _grouped(self, key) -> dict[str, CostRange]:
        groups: dict[str, CostRange] = {}
        for line in self.lines:
            groups[key(line)] = groups.get(key(line), CostRange(0.0, 0.0)) + line.cost
        return groups

    def describe(self) -> str:
        cost, tokens = self.cost, self.tokens
        turns = f"{self.turns} turn{'s' if self.turns != 1 else ''}"
        if self.min_turns is not None and self.min_turns < self.turns:
            turns = f"{self.min_turns} to {self.turns} turns (it ends once {self.end_condition})"
        return (
            f"Estimated cost for {turns}: ${cost.low:.4f} to ${cost.high:.4f} "
            f"({tokens.low:,.0f} to {tokens.high:,.0f} tokens, at most {self.calls} model calls via {self.provider})"
        )

    def table(self) -> str:
        """Cost by actor and by phase, low to high, for a terminal."""
        rows = [f"  {'by actor':<28}{'low':>12}{'high':>12}"]
        rows += [f"  {name:<28}{r.low:>12.4f}{r.high:>12.4f}" for name, r in self.by_actor().items()]
        rows.append(f"  {'by phase':<28}")
        rows += [f"  {name:<28}{r.low:>12.4f}{r.high:>12.4f}" for name, r in self.by_phase().items()]
        return "\n".join(rows)


def _total(ranges: Iterable[CostRange]) -> CostRange:
    total = CostRange(0.0, 0.0)
    for item in ranges:
        total = total + item
    return total


@dataclass(frozen=True)
class _Call:
    """One kind of call a turn makes: `low_count` of them in a quiet turn, `high_count` at worst."""

    actor: str
    phase: str
    task: str
    model: str
    system: str
    base_chars: int  # the prompt besides the world text
    max_tokens: int
    low_count: int = 1
    high_count: int = 1
    first_turn: int = 1  # the first turn that makes it

    def turns_made(self, turns: int) -> int:
        return max(0, turns - self.first_turn + 1)


def _calls(scenario: Scenario) -> list[_Call]:
    config = scenario.config
    calls: list[_Call] = []
    settings = config.features.communications
    for actor in scenario.actors:
        system = actor_system_prompt(scenario, actor)
        name, model = actor.short_name, actor.llm_model
        calls.append(_Call(name, "decision", "decision", model, system, 2000, 1200))
        if settings.enabled:
            calls.append(_Call(name, "communication", "outreach", model, system, 600, 800))
            # Worst case: every other actor opens all its conversations as coalitions that include this one.
            replies = settings.max_per_turn * (len(scenario.actors) - 1)
            calls.append(_Call(name, "communication", "reply", model, system, 800, 600, low_count=0, high_count=replies))
    calls.append(_Call(WORLD, "world_update", "world_update", config.world_state_model, "", 4000, 2000))
    if config.features.metrics_extraction.enabled:
        for metric in scenario.metric_definitions:
            if metric.extraction.type == "llm":
                model = metric.extraction.model or scenario.judge_model
                subjects = (1 if metric.actor else len(scenario.actors)) if metric.actor_specific else 1
                calls.append(_Call(WORLD, "metrics", "metric", model, "", 600, 20, subjects, subjects))
    rules = scenario.validation
    if rules and rules.run_after_each_turn and config.features.quality_assurance.enabled:
        for check_name, check in rules.enabled_checks.items():
            count = len(scenario.actors) if is_per_actor(check_name, check) else 1
            calls.append(_Call(WORLD, "validation", "validation", rules.validation_model, "", 2500, 600, count, count))
    if config.features.context_management.enabled:
        # From turn window + 2 on, one turn has left the window: the summary so far plus that turn's record.
        record = 600 + 500 * len(scenario.actors) + SUMMARY_MAX_TOKENS * 4
        calls.append(_Call(WORLD, "summary", "summary", summary_model(scenario), summary_system_prompt(scenario), record,
                           SUMMARY_MAX_TOKENS, first_turn=config.context_window_size + 2))
    return calls


def _request(call: _Call, world_chars: int, max_tokens: int) -> LLMRequest:
    return LLMRequest(
        messages=(Message("system", call.system), Message("user", "x" * (world_chars + call.base_chars))),
        model=call.model,
        purpose=CallPurpose(task=call.task, phase=call.phase, turn=1),
        max_tokens=max_tokens,
    )


def estimate_run_cost(scenario: Scenario, provider: LLMProvider, *, turns: int | None = None) -> CostEstimate:
    """The cost of `turns` turns (the scenario's by default); with an end condition, of one turn at the low end."""
    turns = scenario.config.turns if turns is None else turns
    config = scenario.config
    fewest = 1 if config.end_condition else turns
    world = len(config.initial_world_state)
    # At worst the prompt carries the current world plus `context_window_size` earlier ones; the world
    # update reads the old world and the decisions, about as long again.
    high_world = world * (1 + config.context_window_size)
    if config.features.context_management.enabled:
        high_world += SUMMARY_MAX_TOKENS * 4  # the summary of older turns, in characters
    lines: dict[tuple[str, str, str], EstimateLine] = {}
    for call in _calls(scenario):
        world_high = high_world * 2 if call.task == "world_update" else world if call.task == "summary" else high_world
        high = _request(call, world_high, call.max_tokens)
        low = _request(call, world, min(call.max_tokens, TYPICAL_OUTPUT_TOKENS.get(call.task, call.max_tokens)))
        made, least = call.turns_made(turns), call.turns_made(fewest)
        line = EstimateLine(
            actor=call.actor,
            phase=call.phase,
            model=call.model,
            calls=CostRange(call.low_count * least, call.high_count * made),
            input_tokens=CostRange(
                call.low_count * least * estimate_tokens(low.prompt_text),
                call.high_count * made * estimate_tokens(high.prompt_text),
            ),
            output_tokens=CostRange(call.low_count * least * low.max_tokens, call.high_count * made * high.max_tokens),
            cost=CostRange(call.low_count * least * provider.max_cost(low), call.high_count * made * provider.max_cost(high)),
        )
        key = (call.actor, call.phase, call.model)
        lines[key] = _merge(lines[key], line) if key in lines else line
    return CostEstimate(turns=turns, provider=provider.name, lines=tuple(lines.values()),
                        min_turns=fewest if config.end_condition else None, end_condition=config.end_condition)


def _merge(a: EstimateLine, b: EstimateLine) -> EstimateLine:
    return replace(
        a,
        calls=a.calls + b.calls,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cost=a.cost + b.cost,
    )
