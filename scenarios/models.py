"""Scenarios as stored in the database: one row per scenario, its actors and background documents.

The columns mirror the engine's scenario folder (engine.scenario.schema); JSON columns hold the engine's
pydantic shapes and are validated at the boundary (services, admin forms), not here.
"""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from engine.scenario.schema import SHORT_NAME, ActorConfig, ScenarioConfig
from scenarios.fields import OrderedJSONField

# Actor files and background documents become file names on export.
file_name_validator = RegexValidator(
    SHORT_NAME, "Use letters, digits, '-', '_' or '.', starting with a letter or digit."
)
# Background documents come from any *.md file name (spaces included); only what cannot be a file name is refused.
document_name_validator = RegexValidator(
    r"^(?!\.)[^/\\\x00-\x1f]+$", "Use a file name without '/', '\\' or a leading '.'."
)


def validate_positive(value: float) -> None:
    if value is not None and not value > 0:
        raise ValidationError("Must be more than 0 (or empty for none).")


def _config_default(name: str):
    return ScenarioConfig.model_fields[name].default


def _actor_default(name: str):
    return ActorConfig.model_fields[name].default


class Scenario(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    system_prompt = models.TextField(blank=True)
    initial_world_state = models.TextField()
    turns = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(1000)])
    turn_duration = models.CharField(max_length=200, default=_config_default("turn_duration"))
    world_state_model = models.CharField(max_length=200, default=_config_default("world_state_model"))
    context_window_size = models.PositiveIntegerField(
        default=_config_default("context_window_size"), help_text="Past turns each actor is shown."
    )
    communication = OrderedJSONField(
        default=dict, blank=True,
        help_text="features.communications: enabled, max_per_turn, bilateral, coalition, public.",
    )
    features = OrderedJSONField(
        default=dict, blank=True,
        help_text="The other features: exogenous_events, metrics_extraction, quality_assurance, context_management.",
    )
    credit_limit = models.FloatField(
        null=True, blank=True, validators=[validate_positive], help_text="Default credit limit in USD."
    )
    seed = models.BigIntegerField(default=0)
    end_condition = models.CharField(
        max_length=500, blank=True,
        help_text="the run ends once this holds after a turn, e.g. `cooperation_level >= 8 or turns >= 20` "
                  "(metrics compared with numbers; `turns` is the cap); empty: it plays all its turns",
    )
    metrics = OrderedJSONField(null=True, blank=True, help_text="metrics.yaml as JSON: {\"metrics\": [...]}")
    validation_rules = OrderedJSONField(null=True, blank=True, help_text="validation-rules.yaml as JSON.")
    exogenous_events = OrderedJSONField(null=True, blank=True, help_text="exogenous-events.yaml as JSON.")
    roles = OrderedJSONField(default=dict, blank=True, help_text="Parts in every run by group, and what observers see: "
                             "{\"observer_view\": \"public\", \"facilitators\": [group], \"observers\": [group], "
                             "\"players\": {group: [actor]}}")
    extra = OrderedJSONField(default=dict, blank=True, help_text="Keys of scenario.yaml the site does not know, kept.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(credit_limit__isnull=True) | models.Q(credit_limit__gt=0),
                name="scenario_credit_limit_positive",
                violation_error_message="The credit limit must be more than 0 (or empty for none).",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Actor(models.Model):
    class Control(models.TextChoices):
        AI = "ai", "AI"
        HUMAN = "human", "Human"

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="actors")
    position = models.PositiveIntegerField(default=0)
    file_stem = models.CharField(
        max_length=100, blank=True, validators=[file_name_validator],
        help_text="Exported as actors/<file stem>.yaml; empty means the short name.",
    )
    name = models.CharField(max_length=200)
    short_name = models.CharField(max_length=64, validators=[file_name_validator])
    llm_model = models.CharField(max_length=200, default=_actor_default("llm_model"))
    system_prompt = models.TextField(blank=True)
    description = models.TextField(blank=True)
    goals = models.JSONField(default=list, blank=True, help_text="A list of text.")
    constraints = models.JSONField(default=list, blank=True, help_text="A list of text.")
    information_access = OrderedJSONField(
        null=True, blank=True,
        help_text="{\"public\": [...], \"private\": [...]}; \"private\" is the private information.",
    )
    expertise = OrderedJSONField(null=True, blank=True, help_text="Text, a mapping or a list.")
    decision_making_style = models.TextField(blank=True)
    control = models.CharField(max_length=10, choices=Control.choices, default=Control.AI)
    extra = OrderedJSONField(default=dict, blank=True, help_text="Keys of the actor file the site does not know, kept.")

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "short_name"], name="actor_short_name_unique_in_scenario"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.short_name})"


class BackgroundDocument(models.Model):
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="background_documents")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(
        max_length=200, validators=[document_name_validator], help_text="Exported as background/<name>.md."
    )
    text = models.TextField(blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "name"], name="background_name_unique_in_scenario"),
        ]

    def __str__(self) -> str:
        return self.name


class ScenarioVersion(models.Model):
    """One saved state of a scenario: its folder's files. A save that changes the scenario, or the text its
    author wrote on the site, makes a new version; runs record the version they played."""

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    files = OrderedJSONField(help_text="relative path -> text: as its author wrote it on the site, else as exported")
    # The stored scenario as the export writes it, hashed: what tells a save that changed the scenario from one
    # that did not, whatever comments or layout the author's text had.
    digest = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scenario", "number"]
        constraints = [models.UniqueConstraint(fields=["scenario", "number"], name="scenario_version_number_unique")]

    def __str__(self) -> str:
        return f"{self.scenario} v{self.number}"
