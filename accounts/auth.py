"""Bearer-token authentication for the JSON API (stub: the accounts work fills it in)."""

from ninja.security import HttpBearer


class ApiTokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        return None
