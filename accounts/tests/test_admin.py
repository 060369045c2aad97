"""The API token admin through the test client: a list without secrets, revoke, and create-for-a-user shown once."""

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from accounts import services
from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("admin", "admin@example.org", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def olga():
    return User.objects.create_user("olga", password="pw")


def test_the_list_shows_owner_name_prefix_and_status_never_a_hash_or_token(client, staff, olga):
    token, raw = services.api_token_create(owner=olga, name="laptop notebook")
    services.api_token_authenticate(raw=raw)
    for url in (reverse("admin:accounts_apitoken_changelist"), reverse("admin:accounts_apitoken_change", args=[token.pk])):
        answer = client.get(url)
        assert answer.status_code == 200
        html = answer.content.decode()
        assert "laptop notebook" in html and f"slb_{token.prefix}" in html and "olga" in html and "active" in html
        assert token.token_hash not in html and raw not in html and raw.split("_", 2)[2] not in html


def test_a_token_cannot_be_edited(client, staff, olga):
    token, _ = services.api_token_create(owner=olga, name="ci")
    client.post(reverse("admin:accounts_apitoken_change", args=[token.pk]), {"name": "renamed", "owner": staff.pk})
    token.refresh_from_db()
    assert token.name == "ci" and token.owner == olga


def test_the_revoke_action_revokes_the_selected_tokens(client, staff, olga):
    first, raw_first = services.api_token_create(owner=olga, name="one")
    second, raw_second = services.api_token_create(owner=olga, name="two")
    kept, raw_kept = services.api_token_create(owner=olga, name="three")
    answer = client.post(reverse("admin:accounts_apitoken_changelist"),
                         {"action": "revoke_tokens", "_selected_action": [first.pk, second.pk]}, follow=True)
    assert "Revoked 2 token(s)." in answer.content.decode()
    assert services.api_token_authenticate(raw=raw_first) is None and services.api_token_authenticate(raw=raw_second) is None
    assert services.api_token_authenticate(raw=raw_kept) == olga

    filtered = client.get(reverse("admin:accounts_apitoken_changelist") + "?status=revoked").content.decode()
    assert "one" in filtered and "two" in filtered and ">three<" not in filtered


def test_viewing_staff_see_tokens_but_cannot_revoke(client, olga):
    viewer = User.objects.create_user("vic", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    client.force_login(viewer)
    token, _ = services.api_token_create(owner=olga, name="ci")
    page = client.get(reverse("admin:accounts_apitoken_changelist"))
    assert page.status_code == 200 and "revoke_tokens" not in page.content.decode()
    client.post(reverse("admin:accounts_apitoken_changelist"), {"action": "revoke_tokens", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is None
    assert client.get(reverse("admin:accounts_apitoken_add")).status_code == 403


def test_creating_a_token_for_a_user_shows_it_once(client, staff, olga):
    form = client.get(reverse("admin:accounts_apitoken_add"))
    assert form.status_code == 200 and 'name="owner"' in form.content.decode()

    answer = client.post(reverse("admin:accounts_apitoken_add"), {"owner": olga.pk, "name": "for olga", "expires_in_days": "7"})
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    html = answer.content.decode()
    raw = re.search(r'<code id="new-token"[^>]*>([^<]+)</code>', html).group(1)
    assert "it is not shown again" in html
    token = ApiToken.objects.get()
    assert token.owner == olga and token.name == "for olga" and token.expires_at is not None
    assert services.api_token_authenticate(raw=raw) == olga

    for url in (reverse("admin:accounts_apitoken_changelist"), reverse("admin:accounts_apitoken_change", args=[token.pk])):
        assert raw not in client.get(url).content.decode()
    assert raw not in str(dict(client.session))


def test_a_bad_admin_form_creates_nothing(client, staff, olga):
    answer = client.post(reverse("admin:accounts_apitoken_add"), {"owner": olga.pk, "name": ""})
    assert answer.status_code == 200 and 'id="new-token"' not in answer.content.decode()
    assert not ApiToken.objects.exists()


def test_staff_who_may_add_tokens_can_make_them_only_for_themselves(client):
    from django.contrib.auth.models import Permission

    boss = User.objects.create_superuser("boss", "boss@example.org", "pw")
    helper = User.objects.create_user("helper", password="pw", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="add_apitoken"))
    client.force_login(helper)
    page = client.post(reverse("admin:accounts_apitoken_add"), {"owner": boss.pk, "name": "escalate"})
    assert page.status_code == 200 and "owner" in page.context["form"].errors
    assert not ApiToken.objects.filter(owner=boss).exists()
    mine = client.post(reverse("admin:accounts_apitoken_add"), {"owner": helper.pk, "name": "mine"})
    assert mine.status_code == 200 and ApiToken.objects.filter(owner=helper).count() == 1
