"""The batch config (V1's batch-config.yaml), its variations and the runs they plan."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.llm.routing import PROVIDER_CHOICES
from engine.scenario.errors import closest
from engine.scenario.schema import ScenarioConfig
from engine.scenario.folder import Scenario

MAX_RUNS = 10_000


class BatchConfigError(ValueError):
    """The batch config cannot be played; the message names the key and what would be right."""


# ---- the config ----------------------------------------------------------------------------------------------
class VariationDimension(BaseModel):
    """One entry of `variations:`: an actor's model or a scenario.yaml key, and the values to try."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["actor_model", "scenario_parameter"]
    actor: str | None = Field(None, min_length=1, max_length=64, description="actor_model: the actor's short name")
    parameter: str | None = Field(None, min_length=1, max_length=200,
                                  description="scenario_parameter: a scenario.yaml key, dotted for nested ones")
    values: list[Any] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _complete(self) -> VariationDimension:
        if self.type == "actor_model":
            if not self.actor:
                raise ValueError("an actor_model variation needs `actor:` (the actor's short name)")
            if not all(isinstance(v, str) and v.strip() for v in self.values):
                raise ValueError("an actor_model variation's values are model names (text)")
        elif not self.parameter:
            raise ValueError("a scenario_parameter variation needs `parameter:` (a scenario.yaml key)")
        return self


class BatchConfig(BaseModel):
    """batch-config.yaml. V1's other keys (timeout_per_run, save_individual_runs, aggregate_metrics) are kept; any
    other key is refused with the closest known one (a misspelt key silently ignored would leave the batch
    measuring something other than the experiment asked for)."""

    model_config = ConfigDict(extra="forbid")

    experiment_name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)
    base_scenario: str = Field(min_length=1, max_length=500,
                               description="a stored scenario's slug or a scenario folder")
    variations: list[VariationDimension] = Field(default_factory=list, max_length=20)
    runs_per_variation: int = Field(1, ge=1, le=1000)
    max_parallel: int = Field(1, ge=1, le=64)
    budget_limit: float | None = Field(None, gt=0, allow_inf_nan=False, description="USD for the whole batch")
    cost_per_run_limit: float | None = Field(None, gt=0, allow_inf_nan=False, description="USD: each run's credit limit")
    output_dir: str = Field("", max_length=500)
    seeds: list[int] | None = Field(None, max_length=1000, description="run N of every variation plays seeds[N-1]")
    provider: str = Field("", description="offline, openrouter, openai, ollama or local; empty: by model")
    turns: int | None = Field(None, ge=1, le=1000, description="turns each run plays; default: the scenario's")
    # V1's keys that change nothing here: accepted so a V1 config loads as it is.
    timeout_per_run: Any = None
    save_individual_runs: Any = None
    aggregate_metrics: Any = None

    @field_validator("variations", mode="before")
    @classmethod
    def _v1_dict_form(cls, value: Any) -> Any:
        """V1 also accepted `variations: {actor_models: {actor: [models]}}`."""
        if value is None:
            return []
        if isinstance(value, dict):
            unknown = set(value) - {"actor_models"}
            if unknown:
                raise ValueError(f"unknown variation kind {sorted(unknown)[0]!r}: use a list of "
                                 "{type: actor_model|scenario_parameter, ...}")
            return [{"type": "actor_model", "actor": actor, "values": models}
                    for actor, models in (value.get("actor_models") or {}).items()]
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value and value not in PROVIDER_CHOICES:
            raise ValueError(f"unknown provider {value!r}: choose one of {', '.join(PROVIDER_CHOICES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BatchConfig:
        if self.seeds is not None and len(self.seeds) < self.runs_per_variation:
            raise ValueError(f"seeds: {len(self.seeds)} given, but runs_per_variation is {self.runs_per_variation} "
                             "(one seed per run of a variation)")
        if self.total_runs > MAX_RUNS:
            raise ValueError(f"the batch would play {self.total_runs} runs; at most {MAX_RUNS}")
        if self.budget_limit is not None and self.cost_per_run_limit is not None and self.cost_per_run_limit > self.budget_limit:
            raise ValueError(f"cost_per_run_limit ({self.cost_per_run_limit}) is above budget_limit "
                             f"({self.budget_limit}): not even one run would fit")
        return self

    @classmethod
    def parse(cls, data: Any, *, source: str = "the batch config") -> BatchConfig:
        """The config, or BatchConfigError naming every wrong key."""
        if not isinstance(data, dict):
            raise BatchConfigError(f"{source}: expected a mapping of keys (experiment_name, base_scenario, …)")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"]) or "(top level)"
                if error["type"] == "extra_forbidden":
                    problems.append(_unknown_key(error["loc"]))
                else:
                    problems.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
            raise BatchConfigError(f"{source}: " + "; ".join(problems)) from None

    @property
    def variation_count(self) -> int:
        return math.prod(len(d.values) for d in self.variations) if self.variations else 1

    @property
    def total_runs(self) -> int:
        return self.variation_count * self.runs_per_variation

    def default_output_dir(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.experiment_name.lower()).strip("-") or "batch"
        return self.output_dir or f"experiments/{slug}"

    def seed_for(self, run_number: int, *, base_seed: int) -> int:
        """Run N plays seeds[N-1], else its scenario's seed + N - 1: every variation meets the same draws
        (unless a variation varies `seed` itself)."""
        return self.seeds[run_number - 1] if self.seeds else base_seed + run_number - 1


def _unknown_key(loc: tuple) -> str:
    """`where: unknown key 'x'`, with the closest key that level knows."""
    where = ".".join(str(part) for part in loc)
    known = VariationDimension.model_fields if len(loc) > 1 and loc[0] == "variations" else BatchConfig.model_fields
    return f"{where}: unknown key{_did_you_mean(str(loc[-1]), known)}"


def _did_you_mean(word: str, candidates) -> str:
    match = closest(word, candidates, cutoff=0.6)
    return f"; did you mean '{match}'?" if match else f" (known: {', '.join(sorted(candidates))})"


# ---- variations ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variation:
    variation_id: int  # 1-based, in the order of the Cartesian product
    description: str
    actor_models: Mapping[str, str] = field(default_factory=dict)
    scenario_overrides: Mapping[str, Any] = field(default_factory=dict)

    def to_v1(self) -> dict[str, Any]:
        """As V1's batch-state.json lists it."""
        if not self.actor_models and not self.scenario_overrides:
            return {"variation_id": self.variation_id, "description": self.description, "modifications": {}}
        return {"variation_id": self.variation_id, "description": self.description,
                "modifications": {"actor_models": dict(self.actor_models), "scenario_overrides": dict(self.scenario_overrides)}}

    @classmethod
    def from_v1(cls, data: Mapping[str, Any]) -> Variation:
        modifications = data.get("modifications") or {}
        return cls(int(data["variation_id"]), str(data.get("description") or ""),
                   dict(modifications.get("actor_models") or {}), dict(modifications.get("scenario_overrides") or {}))


def variations(config: BatchConfig) -> list[Variation]:
    """Every combination of the variation values (the first dimension varies slowest), numbered from 1."""
    if not config.variations:
        return [Variation(1, "Base configuration")]
    found = []
    for number, combination in enumerate(itertools.product(*(d.values for d in config.variations)), start=1):
        models: dict[str, str] = {}
        overrides: dict[str, Any] = {}
        parts = []
        for dimension, value in zip(config.variations, combination):
            if dimension.type == "actor_model":
                models[dimension.actor] = value
                parts.append(f"{dimension.actor}={value.rsplit('/', 1)[-1]}")
            else:
                overrides[dimension.parameter] = value
                parts.append(f"{dimension.parameter}={value}")
        found.append(Variation(number, ", ".join(parts), models, overrides))
    return found


@dataclass(frozen=True)
class PlannedRun:
    variation_id: int
    run_number: int  # 1-based within its variation
    seed: int

    @property
    def name(self) -> str:
        return run_name(self.variation_id, self.run_number)


def run_name(variation_id: int, run_number: int) -> str:
    """V1's run id and folder name: var-001-run-003."""
    return f"var-{variation_id:03d}-run-{run_number:03d}"


def planned_runs(config: BatchConfig, *, base_seeds: Sequence[int]) -> list[PlannedRun]:
    """Every run of the batch in the order they start: run 1 of each variation, then run 2, and so on.
    `base_seeds`: each variation's scenario seed (a variation may set `seed`), by variation id - 1."""
    return [PlannedRun(variation, number, config.seed_for(number, base_seed=base_seeds[variation - 1]))
            for number in range(1, config.runs_per_variation + 1) for variation in range(1, config.variation_count + 1)]


def _field_name(parameter: str) -> str:
    """A scenario.yaml key as ScenarioConfig names it (V1's `num_turns` is `turns`)."""
    for name, info in ScenarioConfig.model_fields.items():
        aliases = getattr(info.validation_alias, "choices", None) or ()
        if parameter == name or parameter in aliases:
            return name
    return parameter


def apply_variation(scenario: Scenario, variation: Variation) -> Scenario:
    """The scenario a variation plays: actors' models replaced, scenario.yaml keys set (and validated)."""
    known = {a.short_name for a in scenario.actors}
    for actor in variation.actor_models:
        if actor not in known:
            raise BatchConfigError(f"variation {variation.variation_id}: no actor {actor!r} in {scenario.name} "
                                   f"(actors: {', '.join(sorted(known))})")
    actors = [a.model_copy(update={"llm_model": variation.actor_models[a.short_name]}) if a.short_name in variation.actor_models else a
              for a in scenario.actors]
    config = scenario.config
    if variation.scenario_overrides:
        data = config.model_dump(mode="json")
        for parameter, value in variation.scenario_overrides.items():
            path = parameter.split(".")
            path[0] = _field_name(path[0])
            target = data
            for part in path[:-1]:
                if not isinstance(target.get(part), dict):
                    target[part] = {}
                target = target[part]
            target[path[-1]] = value
        try:
            config = ScenarioConfig.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise BatchConfigError(f"variation {variation.variation_id} ({variation.description}): scenario.yaml "
                                   f"{where}: {str(error['msg']).removeprefix('Value error, ')}") from None
    return scenario.model_copy(update={"config": config, "actors": actors})


def check_variations(config: BatchConfig, scenario: Scenario) -> list[Variation]:
    """The variations, each checked to apply to `scenario` and to play a scenario of its own: BatchConfigError
    names an actor or scenario.yaml key the scenario lacks (with the closest it has), a value that does not fit,
    or two variations that would play the same scenario (the experiment would measure nothing between them)."""
    actors = {a.short_name for a in scenario.actors}
    for index, dimension in enumerate(config.variations):
        where = f"variations.{index}"
        if dimension.type == "actor_model" and dimension.actor not in actors:
            raise BatchConfigError(f"{where}.actor: {scenario.name} has no actor {dimension.actor!r}"
                                   f"{_did_you_mean(str(dimension.actor), actors)}")
        if dimension.type == "scenario_parameter":
            _check_parameter(f"{where}.parameter", str(dimension.parameter))
    found = variations(config)
    played: dict[str, Variation] = {}
    for variation in found:
        key = _played(apply_variation(scenario, variation))
        if len(found) == 1 and config.variations and key == _played(scenario):
            raise BatchConfigError(f"variation 1 ({variation.description}) changes nothing: {scenario.name} already "
                                   "plays it. Give a value it does not have")
        if key in played:
            same = played[key]
            raise BatchConfigError(
                f"variations {same.variation_id} ({same.description}) and {variation.variation_id} "
                f"({variation.description}) play the same scenario: a value is repeated, or sets what the scenario "
                "already has. Each variation must change something")
        played[key] = variation
    return found


def _played(scenario: Scenario) -> str:
    """What a variation can change of a scenario: its scenario.yaml and its actors' models."""
    return scenario.config.model_dump_json() + "|" + "|".join(a.llm_model for a in scenario.actors)


def _check_parameter(where: str, parameter: str) -> None:
    """A dotted scenario.yaml key must name a key the engine reads (ScenarioConfig's, or an older name of one):
    an unknown key would be stored and change nothing."""
    model: type[BaseModel] | None = ScenarioConfig
    for depth, part in enumerate(parameter.split(".")):
        if model is None:
            return  # inside a free-form mapping: any key
        name = _field_name(part) if depth == 0 else part
        fields = model.model_fields
        if name not in fields:
            known = set(fields) | ({a for f in fields.values() for a in getattr(f.validation_alias, "choices", None) or ()
                                    if isinstance(a, str)} if depth == 0 else set())
            prefix = ".".join(parameter.split(".")[:depth])
            raise BatchConfigError(f"{where}: scenario.yaml has no key {parameter!r}"
                                   + (f" (no {part!r} in {prefix})" if prefix else "") + _did_you_mean(part, known))
        model = _model_of(fields[name].annotation)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (through Optional), or None for a value or a free mapping."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()) or ():
        if isinstance(argument, type) and issubclass(argument, BaseModel):
            return argument
    return None
