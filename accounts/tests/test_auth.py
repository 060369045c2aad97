"""ApiTokenAuth on its own and through the site's NinjaAPI: a bearer token acts as its owner, without CSRF."""

import pytest
from django.contrib.auth.models import User
from django.test import RequestFactory
from ninja.testing import TestClient

from accounts import services
from accounts.auth import ApiTokenAuth
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return User.objects.create_user("olga", password="pw")


@pytest.fixture(scope="module")
def api_client():
    return TestClient(api)


def bearer(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


def test_the_auth_returns_the_tokens_owner(owner):
    _, raw = services.api_token_create(owner=owner, name="ci")
    request = RequestFactory().get("/api/runs/", headers=bearer(raw))
    assert ApiTokenAuth()(request) == owner


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Basic b2xnYTpwdw==", "Bearer slb_00000000_nope", "Token {raw}"])
def test_the_auth_refuses_missing_wrong_and_other_schemes(owner, header):
    _, raw = services.api_token_create(owner=owner, name="ci")
    headers = {"Authorization": header.format(raw=raw)} if header is not None else {}
    assert ApiTokenAuth()(RequestFactory().get("/api/runs/", headers=headers)) is None


def test_a_token_opens_a_protected_endpoint_and_the_request_acts_as_its_owner(owner, api_client):
    token, raw = services.api_token_create(owner=owner, name="ci")
    assert api_client.get("/runs/").status_code == 401
    answer = api_client.get("/runs/", headers=bearer(raw))
    assert answer.status_code == 200, answer.content
    assert answer.json()["count"] == 0
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_revoked_or_wrong_token_is_a_401_in_the_error_shape(owner, api_client):
    token, raw = services.api_token_create(owner=owner, name="ci")
    services.api_token_revoke(token=token)
    for sent in (raw, raw + "x", "not-a-token"):
        answer = api_client.get("/runs/", headers=bearer(sent))
        assert answer.status_code == 401
        assert answer.json()["code"] == "unauthenticated"


def test_a_token_needs_no_csrf_token_to_change_things(owner, api_client):
    """A bearer POST reaches the endpoint (here: refused for its empty body), not a CSRF or auth refusal."""
    _, raw = services.api_token_create(owner=owner, name="ci")
    assert api_client.post("/runs/", json={}).status_code == 401
    answer = api_client.post("/runs/", json={}, headers=bearer(raw))
    assert answer.status_code == 422, answer.content
