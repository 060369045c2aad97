"""Signing in is throttled (django-axes): past the limit of failures in a row, one username from one address is
refused for the cool-off, even with the right password, on the site's login page and the admin's alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "the right password"


def sign_in(client: Client, username: str, password: str, *, url: str = "/accounts/login/", address: str = "10.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.fixture
def researcher():
    return User.objects.create_user("researcher", password=PASSWORD, is_staff=True)


def test_the_limit_of_failures_locks_that_username_from_that_address(settings, researcher):
    settings.AXES_FAILURE_LIMIT = 5
    client = Client()
    for _ in range(4):
        assert sign_in(client, "researcher", "wrong").status_code == 200  # the form again, with its error
    locked = sign_in(client, "researcher", "wrong")
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    right = sign_in(client, "researcher", PASSWORD)
    assert right.status_code == 429, "the right password does not lift the lock"
    assert "_auth_user_id" not in client.session
    assert sign_in(Client(), "researcher", PASSWORD, address="10.0.0.2").status_code == 302, "another address is not locked"
    assert sign_in(Client(), "someone-else", "wrong").status_code == 200, "another username is not locked"


def test_the_admin_login_counts_and_is_refused_too(settings, researcher):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        sign_in(client, "researcher", "wrong", url="/admin/login/")
    assert sign_in(client, "researcher", PASSWORD, url="/admin/login/?next=/admin/").status_code == 302
    for _ in range(3):
        last = sign_in(client, "researcher", "wrong", url="/admin/login/")
    assert last.status_code == 429
    assert sign_in(Client(), "researcher", PASSWORD).status_code == 429, "the site's own login page honours it"


def test_after_the_cool_off_the_right_password_signs_in(settings, researcher):
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 2
    client = Client()
    for _ in range(2):
        sign_in(client, "researcher", "wrong")
    assert sign_in(client, "researcher", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(hours=1))
    assert sign_in(client, "researcher", PASSWORD).status_code == 302
