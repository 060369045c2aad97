"""The site as an app: what belongs to no single app (every database migrated at once, deployment checks)."""

from django.apps import AppConfig


class SiteConfig(AppConfig):
    name = "scenariolab_site"
    verbose_name = "Scenario Lab site"

    def ready(self) -> None:
        from scenariolab_site import checks  # noqa: F401 - registers the checks
