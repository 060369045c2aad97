"""Bearer-token authentication for the JSON API: `Authorization: Bearer slb_…` makes request.auth the token's owner."""

from __future__ import annotations

from ninja.security import HttpBearer

from accounts.services import api_token_authenticate


class ApiTokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        return api_token_authenticate(raw=token)
