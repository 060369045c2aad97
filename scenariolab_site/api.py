"""The JSON API: one NinjaAPI at /api/, a router per app, one error shape, token or session auth.

Every error is `{"code", "message", "fields"}` (`fields`: `[{"loc": [...], "message": ...}]`, possibly empty),
whatever raised it: request validation (422), bad input the services refuse (400), a body over the size limit
(413), missing credentials (401), someone else's object (404, as pages answer, so ids do not leak), a missing
permission (403) and state conflicts (409). Routers raise `ApiError` or let the services' exceptions through; the handlers here map them.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import SessionAuth

from accounts.auth import ApiTokenAuth
from engine.scenario.errors import ScenarioLoadError
from scenariolab_site.api_base import ApiError

logger = logging.getLogger(__name__)


class PublicRead:
    """With SCENARIOLAB_PUBLIC_READ on, anyone may read (GET); changing anything still needs a token or a
    signed-in session. Off by default."""

    def __call__(self, request: HttpRequest) -> Any:
        if getattr(settings, "PUBLIC_READ", False) and request.method in ("GET", "HEAD"):
            return AnonymousUser()
        return None


class ScenarioLabAPI(NinjaAPI):
    """Documents, on every operation, the errors any request can meet before its route runs: a body that is
    not JSON (400), no credentials (401) and parameters that do not fit (422), all in the one error shape."""

    ALWAYS = {"400": "the request body could not be parsed", "401": "no valid token or session",
              "413": "the request body is larger than the site accepts", "422": "the request does not match the schema"}

    def get_openapi_schema(self, *args: Any, **kwargs: Any):
        schema = super().get_openapi_schema(*args, **kwargs)
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in self.ALWAYS.items():
                    if status not in responses and int(status) not in responses:  # ninja's own keys are ints
                        responses[status] = {"description": description, "content": error}
        return schema


class SignedInSession(SessionAuth):
    """The browser's session, with CSRF on unsafe methods as the pages' forms have. Without a signed-in
    session it simply does not apply (ninja's own would fail the CSRF check first, answering a missing or
    revoked token with 403 "CSRF check failed" instead of 401)."""

    def __call__(self, request: HttpRequest) -> Any:
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)


# A bearer token needs no CSRF token: no browser sends it by itself.
api = ScenarioLabAPI(
    title="Scenario Lab API",
    version="1",
    urls_namespace="api",
    auth=[ApiTokenAuth(), SignedInSession(csrf=True), PublicRead()],
    description="Everything a page can do: scenarios, runs, their records and live events, comparisons.",
)


def _error(request: HttpRequest, status: int, code: str, message: str, fields: list[dict[str, Any]] | None = None):
    return api.create_response(request, {"code": code, "message": message, "fields": fields or []}, status=status)


@api.exception_handler(ApiError)
def _api_error(request, exc: ApiError):
    return _error(request, exc.status, exc.code, exc.message, exc.fields)


@api.exception_handler(NinjaValidationError)
def _validation(request, exc: NinjaValidationError):
    fields = [{"loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", [])], "message": e.get("msg", "")} for e in exc.errors]
    return _error(request, 422, "invalid_request", "the request does not match the schema", fields)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _error(request, 401, "unauthenticated", "sign in, or send 'Authorization: Bearer <token>' (tokens: /accounts/tokens/)")


@api.exception_handler(AuthorizationError)
def _forbidden(request, exc):
    return _error(request, 403, "forbidden", str(exc) or "not allowed")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, 404, "not_found", str(exc) or "not found")


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    codes = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 409: "conflict"}
    return _error(request, exc.status_code, codes.get(exc.status_code, "error"), str(exc))


@api.exception_handler(ScenarioLoadError)
def _scenario_invalid(request, exc: ScenarioLoadError):
    fields = [
        {"loc": [part for part in (e.file, e.key_path) if part] + ([e.line] if e.line else []),
         "message": e.message + (f" ({e.suggestion})" if e.suggestion else "")}
        for e in exc.errors
    ]
    return _error(request, 422, "invalid_scenario", str(exc).splitlines()[0], fields)


@api.exception_handler(RequestDataTooBig)
def _too_large(request, exc):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return _error(request, 413, "request_too_large", f"the request body is larger than {limit:,} bytes, the limit "
                  "for a request (SCENARIOLAB_MAX_REQUEST_BYTES); send less, or upload a file where a route takes one",
                  [{"loc": ["body"], "message": "too large"}])


@api.exception_handler(SuspiciousOperation)
def _suspicious(request, exc):
    # Django's own refusals of a request (too many form fields or files, a malformed multipart body).
    return _error(request, 400, "bad_request", str(exc) or "the request could not be read")


@api.exception_handler(Exception)
def _server_error(request, exc: Exception):
    # Logged in full here; the client gets the error shape, never a traceback (DEBUG or not).
    logger.exception("unhandled error in %s %s", request.method, request.path)
    return _error(request, 500, "server_error", "something went wrong on the server; it has been logged")


def not_found(request: HttpRequest, rest: str = ""):
    """Any /api/ path no route knows: the same JSON error as a route's 404, not Django's HTML page."""
    return JsonResponse({"code": "not_found", "message": f"no API endpoint at {request.path}", "fields": []}, status=404)


def _register_service_errors() -> None:
    from accounts.quotas import QuotaExceeded
    from runs.services import RunConflict, RunInputError

    @api.exception_handler(QuotaExceeded)
    def _quota(request, exc):
        return _error(request, exc.status, exc.code, str(exc))

    @api.exception_handler(RunConflict)
    def _conflict(request, exc):
        return _error(request, 409, "conflict", str(exc))

    @api.exception_handler(RunInputError)
    def _bad_input(request, exc):
        return _error(request, 400, "bad_request", str(exc))


_register_service_errors()
api.add_router("/scenarios/", "scenarios.api.router")
api.add_router("/scenarios/", "runs.api.scenario_router")
api.add_router("/runs/", "runs.api.router")
api.add_router("/batches/", "batches.api.router")
