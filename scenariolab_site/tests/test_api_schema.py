"""schemathesis against /api/openapi.json, in process: generated requests never get a 5xx, and every answer
matches the schema the API publishes (status codes, content types, bodies). Every operation, as a staff
user's token (so writes run too), with the bundled scenarios and a finished run present. Bounded: a few
examples per operation, so it fits `make test`; `SCENARIOLAB_FUZZ_EXAMPLES` sets the bound, and
SCENARIOLAB_RELIABILITY_FULL=1 (`make reliability`) raises it to 200."""

import os

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from schemathesis.specs.openapi.checks import status_code_conformance

from accounts.services import api_token_create
from runs.execution import executor
from runs.tests.factories import make_run
from scenarios.services import scenario_import_library

FULL = os.environ.get("SCENARIOLAB_RELIABILITY_FULL") == "1"
EXAMPLES = int(os.environ.get("SCENARIOLAB_FUZZ_EXAMPLES", "200" if FULL else "8"))
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """The WSGI handler closes database connections after each request; Django's test client stops it from
    doing so, and so must a test that calls the handler directly, or the test's transaction goes with it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(db):
    """A staff user's token and something to find: the bundled scenarios and a finished run."""
    staff = User.objects.create_user("fuzzer", password="pw", is_staff=True, is_superuser=True)
    scenario_import_library()
    executor.run_execute(run_id=make_run(turns=1, owner=staff).pk)
    return api_token_create(owner=staff, name="schemathesis")[1]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=not FULL)
def test_the_api_keeps_its_published_contract(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
