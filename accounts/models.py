"""API tokens: a named, revocable bearer credential per user, stored only as a hash."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What it is for, e.g. 'laptop notebook' or 'CI'.")
    # Public and not secret: shown in lists so people can tell their tokens apart.
    prefix = models.CharField(max_length=16, db_index=True)
    # sha256 of the whole token; the token itself is never stored.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        return f"slb_{self.prefix}…"

    def status_at(self, now) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())


class Quota(models.Model):
    """What one user, or every member of one group, may start: the largest credit limit of a run, runs under way
    at once, the largest batch, and where their runs stand in the workers' queue. An empty limit is no limit.

    A user's own quota wins; else the most generous of their groups' (field by field); else the site's defaults
    (SCENARIOLAB_QUOTA_*). Staff are unlimited unless a quota names them (SCENARIOLAB_QUOTA_STAFF_UNLIMITED)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="quota")
    group = models.OneToOneField("auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="quota")
    max_credit_limit = models.FloatField(null=True, blank=True, verbose_name="largest credit limit (USD)",
                                         help_text="of one run; a run started without a limit gets this one")
    max_runs_under_way = models.PositiveIntegerField(null=True, blank=True, verbose_name="runs under way at once",
                                                     help_text="queued, running or waiting for a person, batch runs included")
    max_batch_runs = models.PositiveIntegerField(null=True, blank=True, verbose_name="runs in one batch")
    max_batch_budget = models.FloatField(null=True, blank=True, verbose_name="largest batch budget (USD)",
                                         help_text="a batch started without a budget gets this one")
    max_batch_parallel = models.PositiveIntegerField(null=True, blank=True, verbose_name="batch max_parallel")
    priority = models.IntegerField(default=0, help_text="in the workers' queue, runs of a higher priority go first; "
                                                        "among equals, owners take turns")

    class Meta:
        constraints = [models.CheckConstraint(
            condition=models.Q(user__isnull=False, group__isnull=True) | models.Q(user__isnull=True, group__isnull=False),
            name="quota_for_a_user_or_a_group")]

    def __str__(self) -> str:
        return f"quota of {self.user or self.group}"
