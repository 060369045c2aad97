"""Every model change has its migration: a field changed without one would differ between a fresh database
and an upgraded one."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db(databases="__all__")
def test_no_model_change_lacks_a_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits non-zero (SystemExit) if one is missing
