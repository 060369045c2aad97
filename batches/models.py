"""A batch experiment and its runs: one row per planned run, linked to its `runs.Run` once it has started.

The batch's config is stored as given and parsed with the engine's `BatchConfig` where it is used; the base
scenario is frozen into `snapshot` when the batch is created, so every run of the batch plays the same
scenario whatever happens to the stored one. Nothing here holds business logic (see `batches.services`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from engine.batch import run_name


class BatchStatus(models.TextChoices):
    RUNNING = "running"  # runs start as slots and budget allow
    PAUSED = "paused"  # no run starts; running ones were asked to pause
    HALTED = "halted"  # the next run's limit does not fit in what the budget has left
    COMPLETED = "completed"  # every planned run has ended
    CANCELLED = "cancelled"


class Batch(models.Model):
    experiment_name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    config = models.JSONField(help_text="the batch config as given (V1's batch-config.yaml keys)")
    scenario = models.ForeignKey("scenarios.Scenario", null=True, blank=True, on_delete=models.SET_NULL, related_name="batches")
    scenario_name = models.CharField(max_length=200)
    scenario_slug = models.SlugField(max_length=100, help_text="its runs are numbered among this scenario's runs")
    snapshot = models.JSONField(help_text="the base scenario as it was when the batch was created")
    variations = models.JSONField(default=list, help_text="each variation as V1's batch-state.json lists it")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="batches")

    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.RUNNING, db_index=True)
    halt_reason = models.TextField(blank=True)
    # From the config, and changeable on resume (a halted batch goes on with a larger budget).
    max_parallel = models.PositiveIntegerField(default=1)
    budget_limit = models.FloatField(null=True, blank=True, help_text="USD for the whole batch; empty: no limit")

    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"{self.experiment_name} (batch {self.pk})"


class BatchRun(models.Model):
    """A planned run of a batch: its variation, its number within the variation, its seed; `run` once started."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="batch_runs")
    position = models.PositiveIntegerField(help_text="start order: run 1 of every variation, then run 2, …")
    variation = models.PositiveIntegerField(help_text="1-based, in the order of the Cartesian product")
    number = models.PositiveIntegerField(help_text="1-based within its variation")
    seed = models.BigIntegerField()
    reserved = models.FloatField(null=True, blank=True,
                                 help_text="USD the budget holds for the run until it ends: its credit limit, 0 if free")
    # PROTECT: a batch's run is part of its statistics; delete the batch first to delete the run.
    run = models.OneToOneField("runs.Run", null=True, blank=True, on_delete=models.PROTECT, related_name="batch_run")

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "variation", "number"], name="one_batch_run_per_slot"),
            models.UniqueConstraint(fields=["batch", "position"], name="one_batch_run_per_position"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return run_name(self.variation, self.number)
