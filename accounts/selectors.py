"""Reads of accounts: a person's own API tokens, one of them by id, a user by name."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from accounts.models import ApiToken


def api_tokens_for(*, owner) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=owner).order_by("-created_at", "-id")


def api_token_get_for(*, owner, token_id: int) -> ApiToken | None:
    """The token if it is `owner`'s; someone else's token is as absent as a missing one."""
    return ApiToken.objects.filter(owner=owner, pk=token_id).first()


def user_get(*, username: str):
    return get_user_model().objects.filter(username=username).first()
