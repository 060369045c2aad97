"""The scenario editor's fields: which inputs each part of a scenario folder gets, where each edits (a path in
its file), how it reads and writes, and how it is labelled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scenarios.editor_yaml import Path

SCENARIO_FILE = "scenario.yaml"
METRICS_FILE = "metrics.yaml"
RULES_FILE = "validation-rules.yaml"
EVENTS_FILE = "exogenous-events.yaml"


@dataclass(frozen=True)
class Spec:
    """One input: where it edits (a path inside its item), how it reads and writes, and how it is labelled."""

    key: Path
    label: str
    kind: str = "text"  # text, textarea, model, choice, int, number, bool, lines, pairs, ints, range, key
    unit: str = ""
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    default: Any = None  # what an absent key means (switches and choices)
    aliases: tuple[str, ...] = ()  # older names read, and written back, in its place
    rows: int = 3
    clear: str = "blank"  # an emptied field: "blank" keeps the key with an empty value, "delete" removes it


# ---- what the form shows -----------------------------------------------------------------------------------------
MODEL_HELP = "any OpenRouter-style vendor/model; the list offers those with list prices"
TEXT_AS_LINES = "one per line"
SCENARIO_SPECS = (
    Spec(("name",), "Name"),
    Spec(("description",), "Description", "textarea", help="what the scenario is about, for the people who run it"),
    Spec(("system_prompt",), "Instructions to every actor", "textarea", rows=6),
    Spec(("initial_world_state",), "The world at the start", "textarea", rows=10,
         help="Markdown; the world model rewrites it every turn"),
    Spec(("turns",), "Length", "int", unit="turns", aliases=("num_turns", "max_turns", "scenario_length"),
         clear="delete"),
    Spec(("turn_duration",), "A turn lasts", help="e.g. 1 day, 4 hours"),
    Spec(("world_state_model",), "World model", "model", help=MODEL_HELP),
    Spec(("context_window_size",), "History each actor reads", "int", unit="turns", aliases=("context_window",),
         clear="delete"),
    Spec(("credit_limit",), "Credit limit", "number", unit="USD", help="a run stops before spending more",
         clear="delete"),
    Spec(("seed",), "Random seed", "int", help="the same seed draws the same outside events", clear="delete"),
    Spec(("end_condition",), "End early when", help="e.g. signatories >= 20 (the world's metrics and turns)",
         clear="delete"),
)
COMMUNICATION_SPECS = (
    Spec(("features", "communications", "enabled"), "Actors talk to each other", "bool", default=True),
    Spec(("features", "communications", "max_per_turn"), "Conversations each actor may start", "int",
         unit="a turn", clear="delete"),
    Spec(("features", "communications", "bilateral"), "Bilateral talks", "bool", default=True),
    Spec(("features", "communications", "coalition"), "Coalitions", "bool", default=True),
    Spec(("features", "communications", "public"), "Public statements", "bool", default=True),
)
FEATURE_SPECS = (
    Spec(("features", "exogenous_events", "enabled"), "Outside events happen", "bool", default=True),
    Spec(("features", "metrics_extraction", "enabled"), "Metrics are read", "bool", default=True),
    Spec(("features", "quality_assurance", "enabled"), "QA checks run", "bool", default=True),
)
ACTOR_SPECS = (
    Spec(("name",), "Name"),
    Spec(("short_name",), "Short name", help="letters, digits, '-', '_' or '.'; names the actor's files and seat"),
    Spec(("llm_model",), "Model", "model", aliases=("model",), help=MODEL_HELP),
    Spec(("control",), "Played by", "choice", choices=(("ai", "a model"), ("human", "a person")), default="ai"),
    Spec(("description",), "Who they are", "textarea"),
    Spec(("system_prompt",), "Instructions to this actor", "textarea", rows=4),
    Spec(("goals",), "Goals", "lines", help=TEXT_AS_LINES, aliases=("long_term_goals",), rows=4),
    Spec(("constraints",), "Constraints", "lines", help=TEXT_AS_LINES),
    Spec(("decision_making_style",), "How they decide", "textarea", aliases=("decision_style",)),
    Spec(("expertise",), "Expertise", "pairs", help="one per line, e.g. trade_law: expert"),
    Spec(("information_access", "private"), "What only they know", "lines", help=TEXT_AS_LINES),
)
METRIC_SPECS = (
    Spec(("name",), "Name", help="a name without spaces, as end conditions and events read it"),
    Spec(("description",), "What it measures", "textarea", rows=2),
    Spec(("unit",), "Unit"),
    Spec(("range",), "Range", "range", clear="delete"),
    Spec(("extraction", "type"), "Read by", "choice", choices=(
        ("pattern", "a pattern in the world's text"), ("keyword", "counting keywords"),
        ("llm", "asking a model"), ("manual", "hand (set by a person)"))),
    Spec(("extraction", "pattern"), "Pattern", help="a regular expression; its first group is the value",
         clear="delete"),
    Spec(("extraction", "keywords"), "Keywords", "lines", help=TEXT_AS_LINES, clear="delete"),
    Spec(("extraction", "prompt"), "Question to the model", "textarea", rows=2, clear="delete"),
    Spec(("actor_specific",), "One value per actor", "bool", default=False),
    Spec(("thresholds", "warning"), "Warning at", "number", clear="delete"),
    Spec(("thresholds", "critical"), "Critical at", "number", clear="delete"),
    Spec(("thresholds", "direction"), "Crossed when the value goes", "choice",
         choices=(("above", "above"), ("below", "below")), default="above"),
    Spec(("thresholds", "halt_on_critical"), "Stop the run when critical", "bool", default=False),
)
SEVERITIES = tuple((level, level) for level in ("low", "medium", "high", "critical"))
RULES_SPECS = (
    Spec(("validation_model",), "Model asked", "model", help=MODEL_HELP),
    Spec(("run_after_each_turn",), "Check every turn", "bool", default=True),
    Spec(("reporting", "halt_on_critical"), "Stop the run on a critical finding", "bool", default=False),
)
CHECK_SPECS = (
    Spec((), "Name", "key", help="a name without spaces"),
    Spec(("enabled",), "On", "bool", default=True),
    Spec(("severity",), "Severity", "choice", choices=SEVERITIES, default="medium"),
    Spec(("description",), "What the model checks", "textarea", rows=3),
)
_ONCE = Spec(("once",), "At most once a run", "bool", default=True)
EVENT_KINDS: dict[str, tuple[str, str, tuple[Spec, ...]]] = {
    "scheduled_events": ("Scheduled events", "on given turns", (
        Spec(("name",), "Name"), Spec(("description",), "Short description", "textarea", rows=2),
        Spec(("schedule", "turns"), "On turns", "ints", help="e.g. 2, 4", clear="delete"),
        Spec(("effect",), "What happens", "textarea"))),
    "random_events": ("Random events", "by chance, each turn", (
        Spec(("name",), "Name"), Spec(("description",), "Short description", "textarea", rows=2),
        Spec(("probability",), "Chance", "number", unit="each turn, 0 to 1", clear="delete"),
        Spec(("turn_range",), "Between turns", "range", clear="delete"),
        Spec(("effect",), "What happens", "textarea"), _ONCE)),
    "trends": ("Trends", "a slow change over turns", (
        Spec(("name",), "Name"), Spec(("description",), "Short description", "textarea", rows=2),
        Spec(("probability_per_turn",), "Chance", "number", unit="each turn, 0 to 1", clear="delete"))),
    "conditional_events": ("Conditional events", "when the world or a metric says so", (
        Spec(("name",), "Name"), Spec(("description",), "Short description", "textarea", rows=2),
        Spec(("effect",), "What happens", "textarea"), _ONCE)),
}
TREND_EFFECT_SPECS = (
    Spec(("turn_range",), "Turns", "range", clear="delete"),
    Spec(("description",), "What changes", "textarea", rows=2), Spec(("impact",), "Its impact", "textarea", rows=2),
)
CONDITION_SPECS = (
    Spec(("type",), "When", "choice", choices=(("metrics", "a metric compares"),
                                              ("world_state_contains", "the world's text matches"))),
    Spec(("metric",), "Metric", clear="delete"),
    Spec(("operator",), "Compares", "choice", choices=tuple((op, op) for op in (">", "<", ">=", "<=", "==", "!=")),
         default=">"),
    Spec(("value",), "Value", "number", clear="delete"),
    Spec(("pattern",), "Pattern", help="a regular expression", clear="delete"),
)
DOCUMENT_NAME = Spec(("name",), "Name", "docname", help="letters, digits, '-', '_' or spaces")
DOCUMENT_TEXT = Spec(("text",), "Text", "doctext", help="Markdown; every actor reads it", rows=8)
