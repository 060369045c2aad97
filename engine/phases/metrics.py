"""Metrics phase: measures each turn by pattern, keyword or a model's judgement, per world or per actor."""

from __future__ import annotations

import math
import re

from pydantic import BaseModel

from engine.events import EventType
from engine.llm.parsing import parse_structured, validate_structured
from engine.llm.provider import CallPurpose, StructuredOutputError
from engine.phases.base import HaltRequested, PhaseContext, first_failure
from engine.phases.prompts import request_room
from engine.scenario.metrics import MetricDefinition
from engine.state import MetricRecord, PhaseType, ScenarioState, as_dict
from engine.token_budget import shorten

MetricValue = float | int | bool | str | None
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# The value types of V1's dict-form metrics.yaml read as V1 read them (its `boolean` too, in the dict form only:
# true when matched, nothing recorded when not).
V1_VALUE_TYPES = ("integer", "float", "string")
METRIC_MAX_TOKENS = 20  # `{"value": 7.5}` with room to spare; engine/estimate.py counts the same
METRIC_SYSTEM = (
    "You measure one quantity in a policy simulation. Answer with only a JSON object whose `value` is the number, "
    'for example {"value": 4}.'
)


class MetricAnswer(BaseModel):
    """The structured answer of a model-judged metric."""

    value: float

    @classmethod
    def from_markdown(cls, text: str) -> MetricAnswer | None:
        """A model without structured output that answers with a bare number, as V1's prompts ask ("Respond
        with ONLY a number"), is still understood."""
        number = number_from_answer(text, None)
        return None if number is None else cls(value=number)


def extract_by_pattern(metric: MetricDefinition, text: str, *, v1_form: bool = False) -> MetricValue:
    """Boolean metrics: does the pattern occur (in V1's dict form, as V1 read them: see `v1_pattern_value`).
    V1's integer, float and string metrics: read as V1 did. Otherwise the first group of the first match as a
    number, or, for a pattern without a group, how many times it matches. Of several patterns, the first that
    matches is read."""
    compiled = [re.compile(source, re.IGNORECASE) for source in metric.extraction.all_patterns or [""]]
    pattern = next((candidate for candidate in compiled if candidate.search(text)), compiled[0])
    if metric.type == "boolean":
        return v1_pattern_value(pattern, text, "boolean") if v1_form else bool(pattern.search(text))
    if metric.type in V1_VALUE_TYPES:
        return v1_pattern_value(pattern, text, metric.type)
    if pattern.groups == 0:
        return float(len(pattern.findall(text)))
    match = pattern.search(text)
    if match is None:
        return None
    try:
        value = float(match.group(1).replace(",", ""))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None  # a pattern that captures "nan" or "inf" measures nothing


def v1_pattern_value(pattern: re.Pattern[str], text: str, value_type: str) -> int | float | bool | str | None:
    """V1's reading: the last match (the latest mention), its first non-empty group (the whole match for a
    pattern without groups), converted to the type; None when nothing matches (V1 recorded nothing then, for
    a boolean too)."""
    matches = pattern.findall(text)
    if not matches:
        return None
    value = matches[-1]
    if isinstance(value, tuple):
        value = next((group for group in value if group), "")
    return convert_v1_value(value, value_type)


def convert_v1_value(value: str, value_type: str) -> int | float | bool | str:
    """integer -> int, float -> float ("10^25" is 10**25), boolean -> whether any text was matched (an empty
    group is false), anything else as it is. Text that does not convert is kept as text, as V1 kept it (and
    so is a float too large or not a real number)."""
    if value_type == "boolean":
        return value != ""
    try:
        if value_type == "integer":
            return int(value)
        if value_type == "float":
            if "^" in value:
                base, exponent = value.split("^")
                number = float(base) ** float(exponent)
            else:
                number = float(value)
            return number if isinstance(number, float) and math.isfinite(number) else value
    except (ValueError, OverflowError, ZeroDivisionError):
        return value
    return value


def extract_by_keywords(metric: MetricDefinition, text: str) -> MetricValue:
    lowered = text.lower()
    count = sum(
        len(re.findall(rf"(?<!\w){re.escape(keyword.lower())}(?!\w)", lowered)) for keyword in metric.extraction.keywords
    )
    scoring = metric.extraction.scoring
    if scoring == "presence":
        return count > 0
    if scoring == "density":
        words = max(1, len(text.split()))
        return round(count * 1000 / words, 3)
    return float(count)


def number_from_answer(text: str, value_range: tuple[float, float] | None) -> float | None:
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group())
    if value_range is not None:
        value = min(max(value, value_range[0]), value_range[1])
    return value


def metric_answer(text: str, data: object, value_range: tuple[float, float] | None) -> float | None:
    """The number of a model's answer: its structured `value` (or a bare number), clamped to the metric's
    range; None when the answer holds no number (the metric is then not measured this turn)."""
    try:
        answer = validate_structured(data, MetricAnswer) if data is not None else parse_structured(text, MetricAnswer)
    except StructuredOutputError:
        return None
    if not math.isfinite(answer.value):
        return None
    return answer.value if value_range is None else min(max(answer.value, value_range[0]), value_range[1])


def threshold_level(metric: MetricDefinition, value: MetricValue) -> str | None:
    limit = threshold_reached(metric, value)
    return limit[0] if limit else None


def threshold_reached(metric: MetricDefinition, value: MetricValue) -> tuple[str, float] | None:
    """The most severe threshold `value` is at or past, as (level, limit); None below every threshold and for
    values that are not numbers."""
    limits = metric.thresholds
    if limits is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    above = limits.direction == "above"
    for level, limit in (("critical", limits.critical), ("warning", limits.warning)):
        if limit is not None and (value >= limit if above else value <= limit):
            return level, limit
    return None


class MetricsPhase:
    name = PhaseType.METRICS

    async def run(self, state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
        if not ctx.scenario.config.features.metrics_extraction.enabled:
            return state
        turn = state.current_turn
        done = {(m.name, m.actor) for m in state.metrics_in(turn)}
        jobs = [
            (metric, actor)
            for metric in ctx.scenario.metric_definitions
            if metric.extraction.type != "manual"
            for actor in self._subjects(metric, state)
            if (metric.name, actor) not in done
        ]
        seen = state

        async def measure(metric: MetricDefinition, actor: str | None) -> None:
            nonlocal state
            value = await self._measure(seen, metric, actor, ctx)
            record = MetricRecord(turn=turn, name=metric.name, value=value, actor=actor, source=metric.extraction.type)
            reached = threshold_reached(metric, value)
            await ctx.emit(EventType.METRIC_RECORDED, {**as_dict(record), "threshold": reached[0] if reached else None}, turn=turn)
            if reached is not None:
                level, limit = reached
                await ctx.emit(EventType.METRIC_THRESHOLD_CROSSED, {
                    "turn": turn, "name": metric.name, "actor": actor, "value": value, "level": level, "limit": limit,
                    "direction": metric.thresholds.direction, "previous_level": self._previous_level(seen, metric, actor),
                    "halts": level == "critical" and metric.thresholds.halt_on_critical,
                }, turn=turn)
            state = ctx.checkpoint(state.with_metric(record))

        failure = first_failure(await ctx.gather_limited([lambda m=m, a=a: measure(m, a) for m, a in jobs]))
        if failure is not None:
            raise failure
        definitions = ctx.scenario.metric_definitions
        index = {m.name: i for i, m in enumerate(definitions)}
        actors = {a.short_name: i for i, a in enumerate(ctx.scenario.actors)}
        state = ctx.checkpoint(state.with_turn_sorted("metrics", turn, lambda m: (index.get(m.name, 99), actors.get(m.actor, -1))))
        # Judged on every record of the turn, so a halt found before a retry or resume is not forgotten.
        halts = [
            f"metric {record.name} reached its critical threshold ({record.value})"
            for record in state.metrics_in(turn)
            for metric in definitions
            if metric.name == record.name and metric.thresholds and metric.thresholds.halt_on_critical
            and threshold_level(metric, record.value) == "critical"
        ]
        if halts:
            raise HaltRequested("; ".join(halts))
        return state

    @staticmethod
    def _previous_level(state: ScenarioState, metric: MetricDefinition, actor: str | None) -> str | None:
        """The level of the same series at the turn before, so a subscriber tells a new crossing from one that
        goes on."""
        before = [m for m in state.metrics_in(state.current_turn - 1) if m.name == metric.name and m.actor == actor]
        return threshold_level(metric, before[0].value) if before else None

    @staticmethod
    def _subjects(metric: MetricDefinition, state: ScenarioState) -> list[str | None]:
        """None measures the world; actor-specific metrics measure each actor (or the one named)."""
        if not metric.actor_specific:
            return [None]
        if metric.actor:
            return [a.short_name for a in state.actors if metric.actor in (a.short_name, a.name)]
        return [a.short_name for a in state.actors]

    async def _measure(self, state: ScenarioState, metric: MetricDefinition, actor: str | None, ctx: PhaseContext) -> MetricValue:
        turn = state.current_turn
        if actor is None:
            text = state.world_state.content
        else:
            decision = state.decisions_in(turn).get(actor)
            text = f"{decision.reasoning}\n\n{decision.action}" if decision else ""
        kind = metric.extraction.type
        if kind == "pattern":
            v1_form = ctx.scenario.metrics is not None and isinstance(ctx.scenario.metrics.metrics, dict)
            return extract_by_pattern(metric, text, v1_form=v1_form)
        if kind == "keyword":
            return extract_by_keywords(metric, text)
        model = metric.extraction.model or ctx.scenario.judge_model
        question = f"{metric.extraction.prompt}\n\n## Text to assess"
        # One world or one decision: it does not grow with the run, but may pass a small judge's budget.
        room = request_room(ctx.scenario, model, max_tokens=METRIC_MAX_TOKENS, system=METRIC_SYSTEM, around=(question,), output=MetricAnswer)
        request = ctx.request(
            purpose=CallPurpose(task="metric", phase=self.name.value, turn=turn, actor=actor, hints={"metric": metric.name, "range": list(metric.range or (0, 10))}),
            model=model,
            system=METRIC_SYSTEM,
            user=f"{question}\n\n{shorten(text, max(room, 0))}",
            output=MetricAnswer,
            max_tokens=METRIC_MAX_TOKENS,
            temperature=0.0,
        )
        # One call, no re-ask: an answer without a number leaves this turn's value unmeasured (None).
        value = await ctx.complete_parsed(request, lambda response: metric_answer(response.text, response.data, metric.range))
        if value is None:
            ctx.llm.reject(request)  # unmeasured this time; a rerun or a resume asks again
        return value
