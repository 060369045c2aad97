"""Where a request came from when a reverse proxy stands in front of the site (SCENARIOLAB_BEHIND_PROXY), and
whether a WebSocket's Origin is the site itself: the same rule as Django's CSRF origin check."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address: the socket's peer, or behind SCENARIOLAB_PROXY_COUNT proxies the address the
    outermost of them saw (X-Forwarded-For, counted from the right: entries further left are the client's
    own word and could be anything)."""
    count = settings.PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if count > 0 and len(forwarded) >= count:
        return forwarded[-count]
    return request.META.get("REMOTE_ADDR")


def normalised_origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, the port written out; None for anything else ("null")."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def socket_origin(scope: dict) -> tuple[str, str, int] | None:
    """The origin a WebSocket request was sent to: its Host with the scheme it arrived over (wss, or https in
    a trusted X-Forwarded-Proto), as a browser page of the site itself would have for its Origin."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    secure = scope.get("scheme") in ("wss", "https")
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name, value = proxy
        forwarded = _header(scope, name.removeprefix("HTTP_").replace("_", "-").lower().encode())
        if forwarded is not None:
            secure = forwarded.split(",")[0].strip().lower() == value
    return normalised_origin(f"{'https' if secure else 'http'}://{host}")


def origin_allowed(scope: dict) -> bool:
    """Is the socket's Origin the site's own (scheme, host and port), or one of CSRF_TRUSTED_ORIGINS?"""
    origin = _header(scope, b"origin")
    theirs = normalised_origin(origin) if origin else None
    ours = socket_origin(scope)
    if theirs is None or ours is None:  # no Origin (not a browser page), or a Host the site does not serve
        return False
    if theirs == ours:
        return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        scheme, _, rest = trusted.partition("://")
        if rest.startswith("*."):  # Django's form for every subdomain
            suffix = normalised_origin(f"{scheme}://{rest[2:]}")
            if suffix and theirs[0] == suffix[0] and theirs[2] == suffix[2] and theirs[1].endswith("." + suffix[1]):
                return True
        elif theirs == normalised_origin(trusted):
            return True
    return False
