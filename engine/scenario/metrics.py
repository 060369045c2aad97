"""metrics.yaml: how each metric is read (pattern, keyword, a model's judgement, or by hand), in the list form,
V1's dict form, and an older flat form."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from engine.scenario.base import OpenModel


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class MetricExtraction(OpenModel):
    """How a metric is read. `regex` is an older name of `pattern`; `patterns` (a list) are tried in order after
    `pattern`, the first that matches giving the value."""

    type: Literal["pattern", "keyword", "llm", "manual"]
    pattern: str | None = None
    patterns: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    scoring: Literal["count", "presence", "density"] = "count"
    prompt: str | None = None
    model: str | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _regex_is_pattern(cls, value: Any) -> Any:
        return "pattern" if value == "regex" else value

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        return value if value is None else _compiles(value)

    @field_validator("patterns", mode="before")
    @classmethod
    def _one_pattern_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        return [_compiles(item) for item in value]

    @property
    def all_patterns(self) -> list[str]:
        return ([self.pattern] if self.pattern else []) + self.patterns

    @model_validator(mode="after")
    def _has_what_its_type_needs(self) -> MetricExtraction:
        if self.type == "pattern" and not self.all_patterns:
            raise ValueError("a pattern extraction needs `pattern:` (a regular expression) or `patterns:` (a list)")
        if self.type == "keyword" and not self.keywords:
            raise ValueError("a keyword extraction needs `keywords:` (a list of words or phrases)")
        if self.type == "llm" and not self.prompt:
            raise ValueError("an llm extraction needs `prompt:` (the question put to the model)")
        return self


class MetricThresholds(OpenModel):
    warning: float | None = None
    critical: float | None = None
    direction: Literal["above", "below"] = "above"
    halt_on_critical: bool = False


FLAT_EXTRACTION_KEYS = {"extraction_prompt": "prompt", "pattern": "pattern", "patterns": "patterns",
                         "keywords": "keywords", "scoring": "scoring", "extraction_model": "model"}


class MetricDefinition(OpenModel):
    """One metric. An older flat form is read too: `extraction_type` (llm, keyword, pattern, regex, manual) with
    `extraction_prompt`, `pattern`/`patterns` or `keywords` beside it, for the nested `extraction:`."""

    v1_keys: ClassVar[tuple[str, ...]] = ("extraction_type", *FLAT_EXTRACTION_KEYS)

    name: str = Field(min_length=1)
    description: str = ""
    type: str = "continuous"
    range: tuple[float, float] | None = None
    unit: str = ""
    extraction: MetricExtraction
    actor_specific: bool = False
    actor: str | None = None
    thresholds: MetricThresholds | None = None

    @field_validator("range")
    @classmethod
    def _low_to_high(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"a range is [lowest, highest]; {list(value)} ends below where it starts")
        return value

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "extraction_type" not in data or "extraction" in data:
            return data
        data = dict(data)
        extraction = {"type": data.pop("extraction_type")}
        for flat, nested in FLAT_EXTRACTION_KEYS.items():
            if flat in data:
                extraction[nested] = data.pop(flat)
        data["extraction"] = extraction
        return data


class LegacyMetricDefinition(OpenModel):
    """V1's dict form: `metrics: {name: {extraction_method: regex|manual, pattern: ...}}`.

    As in V1, `type` (integer, float, boolean, string; string when not given) says how a matched value is read,
    and a metric with a pattern but no extraction_method is a regex one."""

    description: str = ""
    type: str = "string"
    unit: str = ""
    extraction_method: Literal["regex", "pattern", "keyword", "llm", "manual"] = "manual"
    pattern: str | None = None
    keywords: list[str] = Field(default_factory=list)
    prompt: str | None = None
    actor_specific: bool = False
    actor: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _v1_default_method(cls, data: Any) -> Any:
        if isinstance(data, dict) and "extraction_method" not in data and data.get("pattern"):
            return {**data, "extraction_method": "regex"}
        return data

    @model_validator(mode="after")
    def _convertible(self) -> LegacyMetricDefinition:
        # Check now what `to_definition` needs, so a bad V1 metric fails at load rather than mid-run.
        kind = "pattern" if self.extraction_method == "regex" else self.extraction_method
        try:
            MetricExtraction(type=kind, pattern=self.pattern, keywords=self.keywords, prompt=self.prompt)
        except ValidationError as exc:
            raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
        return self

    def to_definition(self, name: str) -> MetricDefinition:
        kind = "pattern" if self.extraction_method == "regex" else self.extraction_method
        extraction = MetricExtraction(type=kind, pattern=self.pattern, keywords=self.keywords, prompt=self.prompt)
        return MetricDefinition(
            name=name,
            description=self.description,
            type=self.type,
            unit=self.unit,
            extraction=extraction,
            actor_specific=self.actor_specific,
            actor=self.actor,
        )


def _metrics_form(value: Any) -> str:
    return "legacy" if isinstance(value, dict) else "list"


class MetricsConfig(OpenModel):
    metrics: Annotated[
        Union[
            Annotated[list[MetricDefinition], Tag("list")],
            Annotated[dict[str, LegacyMetricDefinition], Tag("legacy")],
        ],
        Discriminator(_metrics_form),
    ] = Field(default_factory=list)

    @field_validator("metrics", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return [] if value is None else value  # `metrics:` with nothing under it

    @property
    def definitions(self) -> list[MetricDefinition]:
        if isinstance(self.metrics, dict):
            return [legacy.to_definition(name) for name, legacy in self.metrics.items()]
        return list(self.metrics)
