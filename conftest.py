"""What every test session shares: the embedded profile's channel-layer database, migrated.

Processes that tests start (workers, `run_scenario`) publish to the channel layer; without its tables they
would only log failures. Tests that declare the "channels" database get a test copy of their own as well.
"""

import pytest
from django.conf import settings
from django.core.management import call_command


@pytest.fixture(scope="session", autouse=True)
def channel_layer_tables(django_db_blocker):
    if "channels" in settings.DATABASES:
        with django_db_blocker.unblock():
            call_command("migrate", database="channels", verbosity=0)
