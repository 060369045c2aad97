"""System checks for a deployment (`manage.py check --deploy`)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


def static_files_problem() -> str | None:
    """Why the site cannot serve its static files with debug off, if it cannot: the hashed names pages use
    come from collectstatic's manifest, and without it every page would answer 500."""
    from django.contrib.staticfiles.storage import ManifestStaticFilesStorage, staticfiles_storage

    if settings.DEBUG or not isinstance(staticfiles_storage, ManifestStaticFilesStorage):
        return None
    if staticfiles_storage.manifest_storage.exists(staticfiles_storage.manifest_name):
        return None
    return (f"the static files are not collected in {settings.STATIC_ROOT}: run `manage.py collectstatic --no-input` "
            "(or `make deploy-check`) before starting the site with SCENARIOLAB_DEBUG off")


@register(Tags.staticfiles, deploy=True)
def check_static_files_collected(app_configs, **kwargs) -> list[Error]:
    problem = static_files_problem()
    return [Error(problem, id="scenariolab.E001")] if problem else []
