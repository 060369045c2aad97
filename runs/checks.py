"""System checks: a half-configured scale-out profile would split workers from what they serve."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def scale_out_profile_complete(app_configs, **kwargs):
    if bool(settings.DATABASE_URL) == bool(settings.REDIS_URL):
        return []
    has, lacks = ("DATABASE_URL", "REDIS_URL") if settings.DATABASE_URL else ("REDIS_URL", "DATABASE_URL")
    return [Warning(
        f"{has} is set but {lacks} is not: the database and the queue are on different profiles, so workers on "
        "other machines would not see the runs or the tasks.",
        hint=f"Set {lacks} too for the scale-out profile, or unset {has} for the embedded one.",
        id="runs.W001",
    )]
