"""Branches: a new run that starts from another run's state after a completed turn N, with an intervention.

The child's turns ≤ N are the parent's (world states, decisions, messages, metrics, QA findings and ledger
lines up to N, copied row for row); what changes from turn N + 1 on is the intervention: seat models and
control, an actor's system prompt or goals, the world text as it stood after turn N, the credit limit, the seed
or the end turn. The child records its lineage (`parent`, `branch_turn`) and the intervention with the values it
replaced, so the change is shown even if the parent is deleted. A child is stored paused and ready to start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from asgiref.sync import async_to_sync
from django.db import transaction

from accounts.quotas import quota_credit_limit
from engine import FilesystemPersistence
from engine.scenario.folder import Scenario as EngineScenario
from engine.state import ActorState, WorldState
from engine.state import ScenarioStatus
from runs import roles, services
from runs.models import CostRecord, Run, RunRole, Turn
from runs.execution.store import book_ledger_lines, load_run_state, store_state
from runs.services import RunConflict, RunInputError

CONTROLS = ("ai", "human")
MAX_TURNS = 1000
MAX_NOTE = 2000
BIGINT = 2**63


@dataclass(frozen=True)
class ActorChange:
    """What changes for one actor from the branch point on; None keeps the parent's."""

    model: str | None = None
    control: Literal["ai", "human"] | None = None
    system_prompt: str | None = None
    goals: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"model": self.model, "control": self.control, "system_prompt": self.system_prompt,
               "goals": None if self.goals is None else list(self.goals)}
        return {key: value for key, value in out.items() if value is not None}


@dataclass(frozen=True)
class Intervention:
    """The changes made at a branch point. Every field is optional: an empty intervention branches as is.

    `actors` maps short names to their changes; `world_state` replaces the world as it stood after the branch
    turn (what the next turn's prompts read); `end_turn` is the last turn the branch plays (the parent's by
    default); `note` says why, for whoever reads the family tree."""

    actors: Mapping[str, ActorChange] = field(default_factory=dict)
    credit_limit: float | None = None
    seed: int | None = None
    world_state: str | None = None
    end_turn: int | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        actors = {name: change.to_json() for name, change in self.actors.items() if change.to_json()}
        if actors:
            out["actors"] = actors
        for key in ("credit_limit", "seed", "world_state", "end_turn"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Intervention:
        """From the JSON form (`to_json`, the API's body); a wrong shape is a RunInputError naming the key."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"actors", "credit_limit", "seed", "world_state", "end_turn", "note"})
        if unknown:
            raise RunInputError(f"intervention: unknown key {unknown[0]!r}; use actors, credit_limit, seed, world_state, end_turn or note")
        actors_raw = raw.get("actors") or {}
        if not isinstance(actors_raw, Mapping):
            raise RunInputError("intervention.actors must map actor short names to their changes")
        actors = {}
        for name, change in actors_raw.items():
            if not isinstance(change, Mapping):
                raise RunInputError(f"intervention.actors.{name} must be an object of model, control, system_prompt, goals")
            extra = sorted(set(change) - {"model", "control", "system_prompt", "goals"})
            if extra:
                raise RunInputError(f"intervention.actors.{name}: unknown key {extra[0]!r}; use model, control, system_prompt or goals")
            goals = change.get("goals")
            if goals is not None and (isinstance(goals, str) or not isinstance(goals, list | tuple)):
                raise RunInputError(f"intervention.actors.{name}.goals must be a list of text")
            actors[str(name)] = ActorChange(
                model=change.get("model"), control=change.get("control"), system_prompt=change.get("system_prompt"),
                goals=None if goals is None else tuple(goals),
            )
        return cls(actors=actors, credit_limit=raw.get("credit_limit"), seed=raw.get("seed"),
                   world_state=raw.get("world_state"), end_turn=raw.get("end_turn"), note=raw.get("note") or "")


# ---- the service ---------------------------------------------------------------------------------------------
def run_branch(*, run: Run, at_turn: int, intervention: Intervention | None = None, owner=None, start: bool = False) -> Run:
    """A new run of `owner`'s holding `run`'s history up to completed turn `at_turn`, with `intervention` applied
    from there on; stored PAUSED (resumable), its Markdown folder written. With `start`, queued for a worker.

    Raises RunInputError for a turn that is not a completed turn of the parent or an intervention that does not
    fit it, RunConflict when the parent's frozen scenario no longer loads."""
    intervention = intervention or Intervention()
    parent = run
    if parent.turn < 1:
        raise RunInputError(f"run {parent.pk} has completed no turn yet: there is nothing to branch from")
    if isinstance(at_turn, bool) or not isinstance(at_turn, int) or not 1 <= at_turn <= parent.turn:
        raise RunInputError(f"run {parent.pk} has completed turns 1 to {parent.turn}: branch at one of them, not {at_turn}")
    try:
        config = EngineScenario.model_validate(parent.snapshot)
    except ValueError as exc:
        raise RunConflict(f"run {parent.pk}'s frozen scenario no longer loads, so it cannot be branched: {exc}") from None
    seats = {seat["short_name"]: dict(seat) for seat in parent.actors}
    _check(intervention, parent=parent, at_turn=at_turn, seats=seats)

    history = load_run_state(parent).with_history_until(at_turn, context_window=config.config.context_window_size)
    spent = history.total_cost
    credit_limit = quota_credit_limit(owner, requested=intervention.credit_limit, planned=parent.credit_limit)
    if credit_limit is not None and credit_limit <= spent:
        raise RunInputError(f"run {parent.pk} had spent ${spent:.4f} by turn {at_turn}, which the branch's ledger keeps: "
                            f"its credit limit must be more than that, not {credit_limit}")
    end_turn = intervention.end_turn if intervention.end_turn is not None else parent.max_turns
    if end_turn <= at_turn:
        raise RunInputError(f"run {parent.pk} ends at turn {parent.max_turns}: a branch at turn {at_turn} needs an end turn after it")

    config, seats, before = _applied(intervention, config, seats)
    world_before = next(w for w in history.world_states if w.turn == at_turn)
    if intervention.world_state is not None:
        before["world_state"] = world_before.content
    for key, value in (("credit_limit", parent.credit_limit), ("seed", parent.seed), ("end_turn", parent.max_turns)):
        if getattr(intervention, key) is not None:
            before[key] = value
    record = intervention.to_json()
    if before:
        record["before"] = before

    plan = services.run_plan(
        config=config, turns=end_turn, seed=intervention.seed if intervention.seed is not None else parent.seed,
        # An offline run's branches stay offline, so what differs between them is the intervention, not the server.
        provider="offline" if parent.offline else parent.provider_override, use_cache=parent.use_cache,
    )
    plan = replace(plan, credit_limit=credit_limit)
    with transaction.atomic():
        # A branch keeps its family's parts; whoever owns the parent, if someone else branched it, steers it too.
        family = roles.family_grants(parent)
        if parent.owner_id is not None and parent.owner != owner:
            family.append(roles.RoleGrant(RunRole.Role.FACILITATOR, user=parent.owner))
        child = services.run_create(plan=plan, slug=parent.scenario_slug, scenario=parent.scenario, owner=owner,
                                    roles=family, scenario_roles=False)
        child.actors = list(seats.values())
        child.parent, child.branch_turn, child.intervention = parent, at_turn, record
        child.model_override = "" if any(c.model for c in intervention.actors.values()) else parent.model_override
        child.human_timeout_minutes = parent.human_timeout_minutes
        child.save(update_fields=["actors", "parent", "branch_turn", "intervention", "model_override", "human_timeout_minutes"])
        initial = parent.turns.filter(turn=0).first()
        if initial is not None:  # the parent's own turn 0 (an imported run's may differ from its scenario's)
            Turn.objects.filter(run=child, turn=0).update(world_state=initial.world_state, exogenous_events=initial.exogenous_events)
        _copy_ledger(parent, child, at_turn)

        state = replace(history, run_id=child.engine_run_id, seed=child.seed,
                        actors=tuple(ActorState(**seat) for seat in child.actors))
        if intervention.world_state is not None:
            state = state.with_world_state(WorldState(at_turn, intervention.world_state, world_before.exogenous_events))
        state = state.with_status(ScenarioStatus.PAUSED, reason=f"branched from {parent} (run {parent.pk}) at turn {at_turn}: "
                                  f"start it to play turns {at_turn + 1} to {end_turn}")
        store_state(child, state, source="branch", location=f"run {child.pk}, turn {at_turn} (branched from run {parent.pk})")
        Run.objects.filter(pk=child.pk).update(finished_at=None)  # stored, not played: it has not finished anything
        child.refresh_from_db()
        if start:
            child = services.run_resume(run=child, by=owner)
    if child.output_dir:  # after the commit, as every save: the files never show what the database lacks
        async_to_sync(FilesystemPersistence(Path(child.output_dir), per_run_folder=False).save)(state)
    child.refresh_from_db()
    return child


def _check(intervention: Intervention, *, parent: Run, at_turn: int, seats: dict[str, dict]) -> None:
    """Every change fits the parent: known actors, real values, no NUL characters (PostgreSQL refuses them)."""
    def text(value: Any, where: str, *, blank: bool = False, limit: int | None = None) -> None:
        if not isinstance(value, str):
            raise RunInputError(f"{where} must be text")
        if "\x00" in value:
            raise RunInputError(f"{where} must not contain NUL characters")
        if not blank and not value.strip():
            raise RunInputError(f"{where} must not be empty")
        if limit is not None and len(value) > limit:
            raise RunInputError(f"{where} is longer than {limit} characters")

    for name, change in intervention.actors.items():
        if name not in seats:
            raise RunInputError(f"intervention: run {parent.pk} has no actor {name!r}; its actors are {', '.join(seats)}")
        where = f"intervention.actors.{name}"
        if change.model is not None:
            text(change.model, f"{where}.model", limit=200)
        if change.control is not None and change.control not in CONTROLS:
            raise RunInputError(f"{where}.control must be ai or human, not {change.control!r}")
        if change.system_prompt is not None:
            text(change.system_prompt, f"{where}.system_prompt", blank=True)
        for goal in change.goals or ():
            text(goal, f"{where}.goals")
    limit = intervention.credit_limit
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)
                              or not (math.isfinite(limit) and limit > 0)):
        raise RunInputError(f"the credit limit must be a positive number of USD, not {limit}")
    seed = intervention.seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -BIGINT <= seed < BIGINT):
        raise RunInputError(f"the seed must be a whole number (64 bits), not {seed!r}")
    if intervention.world_state is not None:
        text(intervention.world_state, "intervention.world_state")
    end = intervention.end_turn
    if end is not None and (isinstance(end, bool) or not isinstance(end, int) or not at_turn < end <= MAX_TURNS):
        raise RunInputError(f"the end turn must be after the branch turn {at_turn} and at most {MAX_TURNS}, not {end!r}")
    text(intervention.note, "intervention.note", blank=True, limit=MAX_NOTE)


def _applied(intervention: Intervention, config: EngineScenario, seats: dict[str, dict]) -> tuple[EngineScenario, dict[str, dict], dict]:
    """The child's scenario and seats with the actors' changes made, and the values they replaced."""
    before: dict[str, Any] = {}
    actors = []
    for actor in config.actors:
        seat = seats[actor.short_name]
        change = intervention.actors.get(actor.short_name, ActorChange())
        was: dict[str, Any] = {}
        if change.model is not None:
            was["model"], seat["model"] = seat["model"], change.model
        if change.control is not None:
            was["control"], seat["control"] = seat.get("control", "ai"), change.control
        updates: dict[str, Any] = {"llm_model": seat["model"], "control": seat.get("control", "ai")}
        if change.system_prompt is not None:
            was["system_prompt"], updates["system_prompt"] = actor.system_prompt, change.system_prompt
        if change.goals is not None:
            was["goals"], updates["goals"] = list(actor.goals), [g.strip() for g in change.goals]
        if was:
            before.setdefault("actors", {})[actor.short_name] = was
        actors.append(actor.model_copy(update=updates))
    return config.model_copy(update={"actors": actors}), seats, before


def _copy_ledger(parent: Run, child: Run, at_turn: int) -> None:
    """The parent's ledger lines up to the branch turn, as they were booked (task and latency too). Their
    events are the parent's, so they carry no seq: the child's page counts them as booked at its first save."""
    lines = parent.cost_records.filter(turn__lte=at_turn).order_by("position")
    book_ledger_lines(child.pk, [
        CostRecord(run=child, position=i, seq=None, turn=line.turn, phase=line.phase, actor=line.actor, task=line.task,
                   model=line.model, provider=line.provider, input_tokens=line.input_tokens,
                   output_tokens=line.output_tokens, cost=line.cost, cached=line.cached, latency_ms=line.latency_ms)
        for i, line in enumerate(lines)
    ])
