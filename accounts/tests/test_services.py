"""API token services on the real database: create shows the token once and stores only its hash; authenticate."""

import datetime as dt
import hashlib

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return User.objects.create_user("olga", password="pw")


def test_create_returns_the_token_once_and_stores_only_its_hash(owner):
    token, raw = services.api_token_create(owner=owner, name="notebook")
    assert raw.startswith(f"slb_{token.prefix}_") and len(raw) >= 50
    assert token.owner == owner and token.name == "notebook" and token.last_used_at is None and token.revoked_at is None
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    # Every column of the stored row, as the database holds it: the token is in none of them.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table} WHERE id = %s", [token.pk])
        row = cursor.fetchone()
    assert all(raw not in str(value) for value in row)
    assert all(raw.split("_", 2)[2] not in str(value) for value in row), "nor its secret part"


def test_tokens_are_unique_and_refuse_an_empty_name_or_a_past_expiry(owner):
    raws = {services.api_token_create(owner=owner, name=f"t{i}")[1] for i in range(5)}
    assert len(raws) == 5
    with pytest.raises(services.ApiTokenInputError):
        services.api_token_create(owner=owner, name="  ")
    with pytest.raises(services.ApiTokenInputError):
        services.api_token_create(owner=owner, name="old", expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert ApiToken.objects.count() == 5


def test_authenticate_returns_the_owner_and_records_the_use(owner):
    token, raw = services.api_token_create(owner=owner, name="ci")
    assert services.api_token_authenticate(raw=raw) == owner
    token.refresh_from_db()
    assert token.last_used_at is not None and timezone.now() - token.last_used_at < dt.timedelta(seconds=5)


def test_last_used_is_written_at_most_once_a_minute(owner):
    token, raw = services.api_token_create(owner=owner, name="ci")
    recent = timezone.now() - dt.timedelta(seconds=30)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=recent)
    assert services.api_token_authenticate(raw=raw) == owner
    token.refresh_from_db()
    assert token.last_used_at == recent, "used 30 s ago: no write"

    stale = timezone.now() - dt.timedelta(minutes=2)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=stale)
    assert services.api_token_authenticate(raw=raw) == owner
    token.refresh_from_db()
    assert token.last_used_at > stale


def test_authenticate_refuses_a_revoked_token(owner):
    token, raw = services.api_token_create(owner=owner, name="ci")
    services.api_token_revoke(token=token)
    assert token.revoked_at is not None and token.status == "revoked"
    assert services.api_token_authenticate(raw=raw) is None
    first = token.revoked_at
    services.api_token_revoke(token=token)
    assert token.revoked_at == first, "revoking again keeps the first time"


def test_authenticate_refuses_an_expired_token_and_accepts_one_not_yet_expired(owner):
    token, raw = services.api_token_create(owner=owner, name="ci", expires_at=timezone.now() + dt.timedelta(days=1))
    assert services.api_token_authenticate(raw=raw) == owner
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert services.api_token_authenticate(raw=raw) is None
    token.refresh_from_db()
    assert token.status == "expired"


def test_authenticate_refuses_an_inactive_user(owner):
    _, raw = services.api_token_create(owner=owner, name="ci")
    owner.is_active = False
    owner.save()
    assert services.api_token_authenticate(raw=raw) is None


@pytest.mark.parametrize("mangle", [
    lambda raw: raw[:-1] + ("A" if raw[-1] != "A" else "B"),  # one character of the secret wrong
    lambda raw: raw[:-1],
    lambda raw: raw + "x",
    lambda raw: raw.replace("slb_", "xyz_", 1),
    lambda raw: raw.split("_", 2)[2],  # the secret alone
    lambda raw: "slb__" + raw.split("_", 2)[2],  # no prefix
    lambda raw: "slb_" + raw.split("_", 2)[1] + "_",  # no secret
    lambda raw: "",
    lambda raw: "slb_" + "a" * 5000,
    lambda raw: hashlib.sha256(raw.encode()).hexdigest(),  # the stored hash is not a token
])
def test_authenticate_refuses_wrong_and_malformed_tokens(owner, mangle):
    _, raw = services.api_token_create(owner=owner, name="ci")
    assert services.api_token_authenticate(raw=mangle(raw)) is None
