"""Validation phase: QA checks from validation-rules.yaml, asked of a cheap model after each turn.

A check whose prompt speaks of an actor runs once per actor; the others run once per turn. Findings are
recorded and announced; only a severity the rules map to "halt" stops the run.

A check's prompt does not grow with the run (no history), but the two worlds, the actions and the messages it
quotes can together pass a small judge model's budget: the longest of them are then shortened to fit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field

from engine.events import EventType
from engine.llm.parsing import parse_structured, validate_structured
from engine.llm.provider import CallPurpose, LLMResponse, StructuredOutputError
from engine.phases.base import HaltRequested, PhaseContext, first_failure
from engine.phases.prompts import bullet_list, describe_message, fitted_texts, request_room
from engine.phases.world_update import actions_text
from engine.scenario.schema import ActorConfig, ValidationCheck
from engine.scenario.folder import Scenario
from engine.state import PhaseType, ScenarioState, ValidationResult, as_dict

ACTOR_PLACEHOLDERS = (
    "actor_profile",
    "actor_name",
    "actor_reasoning",
    "actor_action",
    "private_communications",
    "restricted_information",
)
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# V1 templates ask for a line such as "CONSISTENT: Yes"; accept that when a model ignores the JSON request.
_V1_VERDICT = re.compile(r"^\s*(?:CONSISTENT|COHERENT|VALID ACCESS|VALID|PASSED)\s*:\s*\[?\s*(yes|no)", re.I | re.M)
_V1_SEVERITY = re.compile(r"^\s*SEVERITY\s*:\s*\[?\s*(low|medium|high|critical)", re.I | re.M)
_V1_ISSUE = re.compile(r"^\s*-\s+(.+)$", re.M)


class ValidationOutput(BaseModel):
    passed: bool
    severity: Literal["low", "medium", "high", "critical"] = "low"
    issues: list[str] = Field(default_factory=list)
    explanation: str = ""


VALIDATION_SYSTEM = "You are a careful quality-assurance reviewer of a policy simulation."
VALIDATION_MAX_TOKENS = 600
VERDICT_INSTRUCTIONS = (
    "Answer with a JSON object with keys `passed` (true or false), `severity` (low, medium, high or critical: "
    "how serious the problems are), `issues` (a list of problems, empty if none) and `explanation`."
)


def is_per_actor(name: str, check: ValidationCheck) -> bool:
    if check.prompt_template:
        return any(f"{{{key}}}" in check.prompt_template for key in ACTOR_PLACEHOLDERS)
    return "actor" in name or "information" in name


def fill_template(template: str, values: dict[str, str]) -> str:
    """Replace only the placeholders we know; other braces (JSON examples in a template) stay as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def read_verdict(response: LLMResponse) -> ValidationOutput:
    if response.data is not None:
        return validate_structured(response.data, ValidationOutput)
    return parse_verdict(response.text)


def parse_verdict(text: str) -> ValidationOutput:
    try:
        return parse_structured(text, ValidationOutput)
    except StructuredOutputError:
        verdict = _V1_VERDICT.search(text)
        if verdict is None:
            raise
        severity = _V1_SEVERITY.search(text)
        issues = [i.strip() for i in _V1_ISSUE.findall(text) if i.strip().lower() not in ("none", "[none]")]
        return ValidationOutput(
            passed=verdict.group(1).lower() == "yes",
            severity=severity.group(1).lower() if severity else "low",  # type: ignore[arg-type]
            issues=issues,
            explanation=text.strip()[-500:],
        )


def checks_to_do(state: ScenarioState, scenario: Scenario) -> list[tuple[str, ValidationCheck, ActorConfig | None]]:
    """The checks of `state.current_turn` not yet recorded: (check, rule, actor or None), in the rules' order.
    The records are what tells a check done, so a phase stopped half-way and played again asks only the rest."""
    rules = scenario.validation
    if rules is None or not rules.run_after_each_turn or not scenario.config.features.quality_assurance.enabled:
        return []
    done = {(v.check, v.actor) for v in state.validations_in(state.current_turn)}
    jobs: list[tuple[str, ValidationCheck, ActorConfig | None]] = []
    for name, check in rules.enabled_checks.items():
        subjects: list[ActorConfig | None] = list(scenario.actors) if is_per_actor(name, check) else [None]
        jobs.extend((name, check, actor) for actor in subjects if (name, actor.short_name if actor else None) not in done)
    return jobs


class ValidationPhase:
    """The QA checks of a turn. They read the turn's decisions and worlds and change nothing a later phase
    reads, so the orchestrator plays them alongside the next turn's talks (`alongside_next_turn`) and waits for
    them before that turn's decisions: a finding set to halt still stops the run before they are used."""

    name = PhaseType.VALIDATION
    alongside_next_turn = True

    def pending(self, state: ScenarioState, scenario: Scenario) -> bool:
        """Whether checks of `state.current_turn` are still to be asked."""
        return bool(checks_to_do(state, scenario))

    async def run(self, state: ScenarioState, ctx: PhaseContext) -> ScenarioState:
        rules = ctx.scenario.validation
        jobs = checks_to_do(state, ctx.scenario)
        if rules is None or not jobs:
            return state
        turn = state.current_turn
        await ctx.emit(EventType.VALIDATION_STARTED, {"turn": turn, "checks": sorted({name for name, _, _ in jobs})}, turn=turn)
        seen = state
        recorded: list[ValidationResult] = []

        async def check(name: str, check: ValidationCheck, actor: ActorConfig | None) -> None:
            nonlocal state
            result = await self._check(seen, name, check, actor, ctx)
            if not result.passed:
                await ctx.emit(EventType.VALIDATION_FAILED, {**as_dict(result), "action": rules.action_for(result.severity)}, turn=turn)
            recorded.append(result)
            state = ctx.checkpoint(state.with_validation(result))

        failure = first_failure(await ctx.gather_limited([lambda j=j: check(*j) for j in jobs]))
        await ctx.emit(
            EventType.VALIDATION_COMPLETED,
            {
                "turn": turn,
                "passed": sum(r.passed for r in recorded),
                "failed": sum(not r.passed for r in recorded),
                "results": [as_dict(r) for r in recorded],
            },
            turn=turn,
        )
        if failure is not None:
            raise failure
        checks = {name: i for i, name in enumerate(rules.checks)}
        actors = {a.short_name: i for i, a in enumerate(ctx.scenario.actors)}
        state = ctx.checkpoint(state.with_turn_sorted("validations", turn, lambda v: (checks.get(v.check, 99), actors.get(v.actor, -1))))
        # Judged on every result of the turn, so a halt found before a retry or resume is not forgotten.
        halt_reasons = [
            f"validation check {r.check}{f' for {r.actor}' if r.actor else ''} failed with {r.severity} severity"
            for r in state.validations_in(turn)
            if not r.passed and rules.action_for(r.severity) == "halt"
        ]
        if halt_reasons:
            raise HaltRequested("; ".join(halt_reasons))
        return state

    async def _check(self, state: ScenarioState, name: str, check: ValidationCheck, actor: ActorConfig | None, ctx: PhaseContext) -> ValidationResult:
        turn = state.current_turn
        values = self._placeholders(state, ctx.scenario, actor)

        def render(values: Mapping[str, str]) -> str:
            if check.prompt_template:
                return fill_template(check.prompt_template, values)
            subject = f"## Actor\n{values['actor_profile']}\n\n## Decision\n{values['actor_reasoning']}\n\n{values['actor_action']}" if actor else (
                f"## Previous world state\n{values['previous_world_state']}\n\n## Actions\n{values['actor_actions']}\n\n## New world state\n{values['new_world_state']}"
            )
            return f"Validate this turn of a policy simulation.\n\n## What to check\n{check.description.strip()}\n\n{subject}"

        model = ctx.scenario.judge_model
        room = request_room(
            ctx.scenario, model, max_tokens=VALIDATION_MAX_TOKENS, system=VALIDATION_SYSTEM, around=(VERDICT_INSTRUCTIONS,), output=ValidationOutput
        )
        values = fitted_texts(values, render, room)
        request = ctx.request(
            purpose=CallPurpose(task="validation", phase=self.name.value, turn=turn, actor=actor.short_name if actor else None, hints={"check": name}),
            model=model,
            system=VALIDATION_SYSTEM,
            user=f"{render(values)}\n\n{VERDICT_INSTRUCTIONS}",
            output=ValidationOutput,
            max_tokens=VALIDATION_MAX_TOKENS,
            temperature=0.0,
        )
        try:
            verdict = await ctx.complete_parsed(request, read_verdict)
        except StructuredOutputError:
            ctx.llm.reject(request)  # a retry must ask again, not replay this answer from a cache
            raise
        return ValidationResult(
            turn=turn,
            check=name,
            passed=verdict.passed,
            severity=check.severity if verdict.passed else verdict.severity,
            actor=actor.short_name if actor else None,
            issues=tuple(verdict.issues),
            explanation=verdict.explanation,
        )

    @staticmethod
    def _placeholders(state: ScenarioState, scenario: Scenario, actor: ActorConfig | None) -> dict[str, str]:
        turn = state.current_turn
        previous = state.world_states[-2].content if len(state.world_states) > 1 else ""
        values = {
            "world_state": previous,
            "public_world_state": previous,
            "previous_world_state": previous,
            "new_world_state": state.world_state.content,
            "actor_actions": actions_text(state, turn),
        }
        if actor is None:
            return values
        names = {a.short_name: a.name for a in state.actors}
        decision = state.decisions_in(turn).get(actor.short_name)
        private = [describe_message(m, names) for m in state.communications_in(turn) if m.recipients and m.visible_to(actor.short_name)]
        restricted = [f"{a.name}: {item}" for a in scenario.actors if a.short_name != actor.short_name for item in a.private_information]
        values.update(
            actor_name=actor.name,
            actor_profile=f"{actor.name}\nGoals:\n{bullet_list(actor.goals)}\nConstraints:\n{bullet_list(actor.constraints)}\nExpertise: {actor.expertise_text}\nStyle: {actor.decision_making_style.strip()}",
            actor_reasoning=decision.reasoning if decision else "",
            actor_action=decision.action if decision else "",
            private_communications="\n\n".join(private) or "(none)",
            restricted_information="\n".join(restricted) or "(none)",
        )
        return values

