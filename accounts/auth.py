"""Bearer-token authentication: `Authorization: Bearer slb_…` makes the token's owner the caller, of the JSON API
(request.auth) and of the run stream's WebSocket (scope["user"])."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from ninja.security import HttpBearer

from accounts.services import api_token_authenticate


class ApiTokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        return api_token_authenticate(raw=token)


def bearer_token(scope: dict) -> str | None:
    """The token of an `Authorization: Bearer …` header of an ASGI request, if it has one."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class BearerTokenSocketAuth:
    """WebSockets for scripts: a request with `Authorization: Bearer slb_…` acts as the token's owner (an
    invalid token as nobody), whatever cookie it also sent. Wraps the app inside Channels' session auth."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        token = bearer_token(scope)
        if token is not None:
            user = await database_sync_to_async(api_token_authenticate)(raw=token)
            scope = {**scope, "user": user or AnonymousUser()}
        return await self.application(scope, receive, send)
