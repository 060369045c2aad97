"""Runs for tests, made through the services (plain functions, no fixture files)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from engine import Scenario
from runs import services
from runs.models import Run


def summit_config() -> Scenario:
    return Scenario.load(Path(settings.SCENARIO_LIBRARY_DIR) / "ai-summit")


def make_run(
    config: Scenario | None = None, *, slug: str = "ai-summit", owner=None, human_seats: tuple[str, ...] = (),
    human_timeout_minutes: float | None = None, **params,
) -> Run:
    """A QUEUED run of `config` (the bundled summit by default), as `run_scenario` would create it."""
    plan = services.run_plan(config=config or summit_config(), **params)
    return services.run_create(plan=plan, slug=slug, owner=owner, human_seats=human_seats,
                               human_timeout_minutes=human_timeout_minutes)
