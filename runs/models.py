"""A run and its records: turns, decisions, messages, the cost ledger, metrics, QA findings and events.

Records are written by the ORM persistence (`runs.execution`) from the engine's state and events; nothing
here holds business logic. A run's `ScenarioState` can be rebuilt from these rows alone (`position` keeps
each record's place in the state), so a run resumes in any process on any machine.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import models

from engine.run_names import run_folder_name
from engine.state import ScenarioStatus
from scenarios.fields import OrderedJSONField


# A run's status is the engine's (`ScenarioStatus`), but for one: a run waiting for a worker (new, or asked to
# resume) is `queued`, where its state says `created` or what it stopped as. One list of values, so a status
# added to the engine is a run's status too.
RunStatus = models.TextChoices(
    "RunStatus", [("QUEUED", "queued")] + [(s.name, s.value) for s in ScenarioStatus if s is not ScenarioStatus.CREATED]
)


class Run(models.Model):
    scenario = models.ForeignKey("scenarios.Scenario", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    scenario_name = models.CharField(max_length=200)
    scenario_slug = models.SlugField(max_length=100)
    number = models.PositiveIntegerField(help_text="run-NNN within its scenario: the Markdown folder's name")
    # The scenario as it was when the run was created (model overrides applied): edits to the scenario
    # afterwards never change a run, and a resume plays the same scenario.
    snapshot = OrderedJSONField()  # the scenario as the run plays it: its mappings in the author's order
    scenario_version = models.PositiveIntegerField(null=True, blank=True,
                                                   help_text="the stored scenario's version the run was made from")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")

    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    max_turns = models.PositiveIntegerField()
    credit_limit = models.FloatField(null=True, blank=True, help_text="USD; empty means no limit")
    seed = models.BigIntegerField(default=0)
    model_override = models.CharField(max_length=200, blank=True)
    provider_override = models.CharField(max_length=32, blank=True)
    use_cache = models.BooleanField(default=True)
    provider = models.TextField(blank=True, help_text="where answers come from, as shown to people")
    offline = models.BooleanField(default=False, help_text="played by the built-in offline provider")
    actors = models.JSONField(default=list, help_text="the seats: short name, name, model, control")
    output_dir = models.CharField(max_length=500, blank=True)
    # A run played elsewhere and stored here (a V1 run directory): where it came from, what V1 said of it, and
    # the key that spots a second import of the same run. Empty for runs played here.
    imported_from = models.JSONField(null=True, blank=True, help_text="where an imported run came from")
    notes = models.TextField(blank=True, help_text="the researchers' free-text notes on the run")
    # Lineage: a branch starts from its parent's state after `branch_turn`, with the changes in `intervention`.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="branches")
    branch_turn = models.PositiveIntegerField(null=True, blank=True)
    intervention = models.JSONField(null=True, blank=True, help_text="what was changed at the branch point")
    # Human seats: how long a seat may keep the run waiting before the model takes it (empty: wait).
    human_timeout_minutes = models.FloatField(null=True, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)

    # The engine's progress, written at every save; costs are summed as each call is booked.
    turn = models.PositiveIntegerField(default=0, help_text="last completed turn")
    completed_phases = models.JSONField(default=list)
    completed_steps = models.JSONField(default=list)
    total_cost = models.FloatField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)
    halt_reason = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # The number of the run's last stored event: the store numbers each event it appends from here.
    last_seq = models.PositiveIntegerField(default=0)

    worker = models.CharField(max_length=200, blank=True)
    # Changes with every claim: an executor that lost its claim (it looked crashed and the run was resumed
    # elsewhere) finds its heartbeat and saves refused, and stops.
    claim = models.CharField(max_length=32, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    pause_requested = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["scenario_slug", "number"], name="run_number_per_scenario")]

    def __str__(self) -> str:
        return f"{self.scenario_name} {self.label}"

    @property
    def label(self) -> str:
        """Its name within its scenario (`run-007`), as its folder and V1 name it."""
        return run_folder_name(self.number)

    @property
    def file_stem(self) -> str:
        """What its downloads are called: `ai-summit-run-007`."""
        return f"{self.scenario_slug}-{self.label}"

    @property
    def engine_run_id(self) -> str:
        return str(self.pk)


class RunTag(models.Model):
    """A label people put on a run ("baseline", "pilot-2") to find it again in the run table."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=64)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="one_tag_of_a_name_per_run")]
        indexes = [models.Index(fields=["name"], name="runs_tag_name")]

    def __str__(self) -> str:
        return self.name


class RunRole(models.Model):
    """Someone's part in a run besides its owner's: a facilitator (sees everything, steers, assigns seats), a
    player of one or more seats (decides for them, sees what their actor may know) or an observer (reads the
    run, in full or only what is public). Given to a user or to everyone in a Django group."""

    class Role(models.TextChoices):
        FACILITATOR = "facilitator"
        PLAYER = "player"
        OBSERVER = "observer"

    class View(models.TextChoices):
        FULL = "full"  # every actor's messages, reasoning and private information
        PUBLIC = "public"  # the world, public statements and decisions' actions only

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="roles")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="run_roles")
    group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="run_roles")
    role = models.CharField(max_length=20, choices=Role.choices)
    seats = models.JSONField(default=list, blank=True, help_text="a player's actors (short names)")
    view = models.CharField(max_length=10, choices=View.choices, default=View.FULL, help_text="what an observer sees")
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "granted_at", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(user__isnull=False, group__isnull=True)
                                   | models.Q(user__isnull=True, group__isnull=False), name="run_role_for_a_user_or_a_group"),
            models.UniqueConstraint(fields=["run", "user"], condition=models.Q(user__isnull=False), name="one_role_per_user_and_run"),
            models.UniqueConstraint(fields=["run", "group"], condition=models.Q(group__isnull=False), name="one_role_per_group_and_run"),
        ]

    def __str__(self) -> str:
        who = self.user.get_username() if self.user_id else f"group {self.group}"
        return f"{who}: {self.role} of run {self.run_id}"


class RunRecord(models.Model):
    """What every record of a run has: its run, its turn, and its place in the state's list."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE)
    turn = models.PositiveIntegerField()
    position = models.PositiveIntegerField()

    class Meta:
        abstract = True
        ordering = ["position"]


class Turn(RunRecord):
    """The world as it stood after a turn (turn 0: the initial world)."""

    world_state = models.TextField()
    exogenous_events = models.JSONField(default=list)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta(RunRecord.Meta):
        default_related_name = "turns"
        constraints = [models.UniqueConstraint(fields=["run", "turn"], name="one_world_per_turn")]


class Decision(RunRecord):
    actor = models.CharField(max_length=64)
    long_term_goals = models.JSONField(default=list)
    short_term_priorities = models.JSONField(default=list)
    reasoning = models.TextField(blank=True)
    action = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=64, blank=True)

    class Meta(RunRecord.Meta):
        default_related_name = "decisions"
        constraints = [models.UniqueConstraint(fields=["run", "turn", "actor"], name="one_decision_per_actor_turn")]


class HumanDecision(models.Model):
    """A person's answer for a seat the run waits for, as submitted: the run's executor applies it (the
    seat's `Decision` and its replies) when the run goes on, as it applies a model's."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="human_decisions")
    turn = models.PositiveIntegerField()
    actor = models.CharField(max_length=64)
    long_term_goals = models.JSONField(default=list)
    short_term_priorities = models.JSONField(default=list)
    reasoning = models.TextField()
    action = models.TextField()
    replies = models.JSONField(default=dict, help_text="proposal id -> the reply")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["turn", "decided_at"]
        constraints = [models.UniqueConstraint(fields=["run", "turn", "actor"], name="one_human_decision_per_seat_turn")]


class Communication(RunRecord):
    message_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=16)
    sender = models.CharField(max_length=64)
    recipients = models.JSONField(default=list)
    content = models.TextField()
    in_reply_to = models.CharField(max_length=64, blank=True)

    class Meta(RunRecord.Meta):
        default_related_name = "communications"


class CostRecord(models.Model):
    """One model call in the ledger, written the moment the call returns (from its cost event)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="cost_records")
    position = models.PositiveIntegerField(help_text="its place in the run's ledger: a call is booked once")
    seq = models.PositiveIntegerField(null=True, blank=True, help_text="the cost event that announced it")
    turn = models.PositiveIntegerField()
    phase = models.CharField(max_length=32)
    actor = models.CharField(max_length=64, blank=True, help_text="empty for calls made for the world")
    task = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=64)
    input_tokens = models.PositiveIntegerField()
    output_tokens = models.PositiveIntegerField()
    cost = models.FloatField()
    cached = models.BooleanField(default=False)
    latency_ms = models.FloatField(default=0)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="one_cost_record_per_ledger_line")]

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ModelCall(models.Model):
    """One answered model call of a run, as the engine traced it: what it was sent, what it answered and what
    became of the answer. Its ledger line is the `CostRecord` its cost event booked just before."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_calls")
    seq = models.PositiveIntegerField(help_text="its model_called event")
    turn = models.PositiveIntegerField()
    phase = models.CharField(max_length=32)
    task = models.CharField(max_length=32)
    actor = models.CharField(max_length=64, blank=True, help_text="empty for calls made for the world")
    subject = models.CharField(max_length=200, blank=True, help_text="the metric or check a judge's call measures")
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=64)
    attempt = models.PositiveSmallIntegerField(default=1, help_text="2 and more: asked again after an unusable answer")
    outcome = models.CharField(max_length=16, help_text="used, re-asked or unusable")
    repair = models.CharField(max_length=32, blank=True, help_text="how a near-JSON answer was mended")
    error = models.TextField(blank=True, help_text="why the answer could not be used")
    tries = models.PositiveSmallIntegerField(default=1, help_text="requests sent for this answer (retries + 1)")
    input_tokens = models.PositiveIntegerField()
    output_tokens = models.PositiveIntegerField()
    cost = models.FloatField()
    latency_ms = models.FloatField(default=0)
    cached = models.BooleanField(default=False)
    messages = models.JSONField(default=list, help_text="the request's messages: [{role, content}]")
    parameters = models.JSONField(default=dict, help_text="temperature, seed, max_tokens, schema_name")
    answer = models.TextField(blank=True)
    parsed = models.JSONField(null=True, blank=True)
    truncated = models.BooleanField(default=False, help_text="a text was cut at SCENARIOLAB_CALL_TRACE_MAX_CHARS")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_call_per_event")]
        indexes = [models.Index(fields=["run", "turn", "task"], name="runs_call_turn_task")]

    @property
    def task_label(self) -> str:
        return self.task.replace("_", " ")

    @property
    def parsed_json(self) -> str:
        return json.dumps(self.parsed, indent=2, ensure_ascii=False)


class MetricRecord(RunRecord):
    name = models.CharField(max_length=200)
    value = models.JSONField(null=True)
    actor = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=200, blank=True)

    class Meta(RunRecord.Meta):
        default_related_name = "metric_records"


class ValidationResult(RunRecord):
    check_name = models.CharField(max_length=200)
    passed = models.BooleanField()
    severity = models.CharField(max_length=16)
    actor = models.CharField(max_length=64, blank=True)
    issues = models.JSONField(default=list)
    explanation = models.TextField(blank=True)

    class Meta(RunRecord.Meta):
        default_related_name = "validation_results"


class ContextSummary(RunRecord):
    """A model-written summary of turns first_turn..turn (`turn` is the last turn it covers)."""

    first_turn = models.PositiveIntegerField()
    text = models.TextField()

    class Meta(RunRecord.Meta):
        default_related_name = "context_summaries"


class RunEvent(models.Model):
    """Every engine event of a run, in seq order: what live pages replay after the state they loaded."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40)
    data = models.JSONField(default=dict)
    source = models.CharField(max_length=40, blank=True)
    timestamp = models.DateTimeField()

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_event_per_seq")]
