"""Reads of API tokens: a person's own tokens, and one of them by id."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiToken


def api_tokens_for(*, owner) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=owner).order_by("-created_at", "-id")


def api_token_get_for(*, owner, token_id: int) -> ApiToken | None:
    """The token if it is `owner`'s; someone else's token is as absent as a missing one."""
    return ApiToken.objects.filter(owner=owner, pk=token_id).first()
