"""The account page through the test client: list, create (the token shown once), revoke (owner only, CSRF)."""

import datetime as dt
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken

pytestmark = [pytest.mark.django_db, pytest.mark.urls("accounts.tests.urls")]


@pytest.fixture
def owner():
    return User.objects.create_user("olga", password="pw")


@pytest.fixture
def client(owner):
    client = Client()
    client.force_login(owner)
    return client


def shown_token(html: str) -> str | None:
    found = re.search(r'<code id="new-token">([^<]+)</code>', html)
    return found.group(1) if found else None


def test_the_page_needs_a_sign_in():
    answer = Client().get(reverse("accounts:tokens"))
    assert answer.status_code == 302 and answer.url.startswith(reverse("login"))


def test_the_page_lists_only_your_tokens_with_name_prefix_and_status(client, owner):
    mine, _ = services.api_token_create(owner=owner, name="laptop notebook")
    gone, _ = services.api_token_create(owner=owner, name="old ci")
    services.api_token_revoke(token=gone)
    theirs, _ = services.api_token_create(owner=User.objects.create_user("mallory"), name="mallory's script")
    html = client.get(reverse("accounts:tokens")).content.decode()
    assert "laptop notebook" in html and f"slb_{mine.prefix}" in html and "old ci" in html
    assert "mallory's script" not in html and theirs.prefix not in html
    assert ">revoked<" in html and ">active<" in html and "never" in html
    assert reverse("accounts:token_revoke", args=[mine.pk]) in html
    assert reverse("accounts:token_revoke", args=[gone.pk]) not in html, "no revoke button for a revoked token"


def test_creating_shows_the_token_once_and_it_works(client, owner):
    answer = client.post(reverse("accounts:tokens"), {"name": "ci", "expires_in_days": "30"})
    assert answer.status_code == 200
    assert "no-store" in answer["Cache-Control"]
    html = answer.content.decode()
    raw = shown_token(html)
    assert raw and "it is not shown again" in html
    token = ApiToken.objects.get(owner=owner)
    assert token.name == "ci" and raw.startswith(f"slb_{token.prefix}_")
    assert dt.timedelta(days=29) < token.expires_at - timezone.now() <= dt.timedelta(days=30)
    assert services.api_token_authenticate(raw=raw) == owner

    again = client.get(reverse("accounts:tokens")).content.decode()
    assert raw not in again and raw.split("_", 2)[2] not in again and shown_token(again) is None
    assert f"slb_{token.prefix}" in again
    assert raw not in str(dict(client.session)), "nor is it kept in the session"


def test_a_token_without_expiry_never_expires_and_a_bad_form_creates_nothing(client, owner):
    client.post(reverse("accounts:tokens"), {"name": "forever"})
    assert ApiToken.objects.get().expires_at is None
    for bad in ({"name": ""}, {"name": "x", "expires_in_days": "0"}, {"name": "x", "expires_in_days": "soon"}):
        answer = client.post(reverse("accounts:tokens"), bad)
        assert answer.status_code == 400 and shown_token(answer.content.decode()) is None
    assert ApiToken.objects.count() == 1


def test_revoking_your_token(client, owner):
    token, raw = services.api_token_create(owner=owner, name="ci")
    answer = client.post(reverse("accounts:token_revoke", args=[token.pk]), follow=True)
    assert answer.redirect_chain[-1][0] == reverse("accounts:tokens")
    assert "Revoked ci" in answer.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None and services.api_token_authenticate(raw=raw) is None


def test_someone_elses_token_is_a_404_and_stays_active(client):
    theirs, raw = services.api_token_create(owner=User.objects.create_user("mallory"), name="theirs")
    assert client.post(reverse("accounts:token_revoke", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("accounts:token_revoke", args=[theirs.pk + 1000])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None and services.api_token_authenticate(raw=raw) is not None


def test_revoke_is_post_only_and_needs_csrf(owner):
    token, _ = services.api_token_create(owner=owner, name="ci")
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    url = reverse("accounts:token_revoke", args=[token.pk])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None

    page = client.get(reverse("accounts:tokens"))
    csrf = page.cookies["csrftoken"].value
    assert client.post(url, {"csrfmiddlewaretoken": csrf}).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_create_needs_csrf(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(reverse("accounts:tokens"), {"name": "ci"}).status_code == 403
    assert not ApiToken.objects.exists()
