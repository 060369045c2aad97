"""API tokens: create (the plain token is returned once), revoke, and authenticate a bearer token."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiToken

TOKEN_PREFIX = "slb"
# last_used_at is a hint for people, not an audit log: one write a minute per token, not one per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
# Longer than any token we issue (slb_ + 8 + _ + 43 = 56); anything longer is refused before hashing.
MAX_TOKEN_LENGTH = 200


class ApiTokenInputError(ValueError):
    """A token cannot be created as asked (empty name, expiry in the past)."""


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_create(*, owner, name: str, expires_at: dt.datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for `owner`, and its plain text: shown once to the person, never stored."""
    name = (name or "").strip()
    if not name:
        raise ApiTokenInputError("a token needs a name saying what it is for")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiTokenInputError("the expiry must be in the future")
    prefix = secrets.token_hex(4)  # hex: no '_' to confuse the split in authenticate
    raw = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(owner=owner, name=name[:100], prefix=prefix, token_hash=_hash(raw), expires_at=expires_at)
    return token, raw


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke `token` now; revoking a revoked token keeps its first revocation time."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token


def api_token_authenticate(*, raw: str):
    """The active owner (a User) of a valid, unrevoked, unexpired token, or None.

    The row is found by the sha256 of the whole token, so lookup time says nothing about how much of a
    guess was right; the final compare_digest is belt and braces.
    """
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    digest = _hash(raw)
    token = ApiToken.objects.select_related("owner").filter(token_hash=digest).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    now = timezone.now()
    if token.status_at(now) != "active" or not token.owner.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # A conditional update: concurrent requests write at most once, and nothing else on the row is touched.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
    return token.owner
