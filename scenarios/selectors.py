"""Reads of stored scenarios."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from scenarios.models import Scenario


def scenario_get(*, slug: str) -> Scenario | None:
    """The scenario with this slug, or None."""
    return Scenario.objects.prefetch_related("actors", "background_documents").filter(slug=slug).first()


def scenario_list() -> QuerySet[Scenario]:
    """Every stored scenario by name, with `actor_count`."""
    return Scenario.objects.annotate(actor_count=Count("actors")).order_by("name", "slug")


def scenario_slug_exists(*, slug: str) -> bool:
    return Scenario.objects.filter(slug=slug).exists()
