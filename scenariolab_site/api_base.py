"""What every API router needs, without importing the API itself: the error shape, ApiError, the caller."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Schema


class FieldError(Schema):
    loc: list[str | int]
    message: str


class ErrorOut(Schema):
    code: str
    message: str
    fields: list[FieldError] = []


ERRORS: dict[int | str, type[Schema]] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


def errors(*codes: int) -> dict[int, type[Schema]]:
    """The error responses an operation documents, for its `response=` (every one has the one error shape)."""
    return {code: ERRORS[code] for code in codes}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or []


def caller(request: HttpRequest):
    """The user a request acts for: a token's owner, the session's user, or anonymous (public reads)."""
    auth = getattr(request, "auth", None)
    return auth if auth is not None and hasattr(auth, "is_authenticated") else request.user
