"""Requests a browser could be tricked into sending: every POST page and every API write refuses a session
without its CSRF token (a bearer token needs none), and the run socket refuses a page of another origin."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from accounts.services import api_token_create
from scenariolab_site.tests.test_permission_matrix import API_BODIES, Writes, make_world, routes

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _write_routes(world):
    found, problems = routes(world)
    assert not problems, problems
    return [route for route in found if route.kind != "public" and any(m in WRITES for m in route.methods)]


@pytest.fixture
def world():
    return make_world()


def _body(url: str) -> dict:
    return API_BODIES.get(url.rstrip("/").rsplit("/", 1)[-1], {})


@pytest.mark.django_db(databases="__all__")
def test_a_session_without_its_csrf_token_changes_nothing(world):
    """Every page and API write (admin ones too), as staff and as the owner: 403, nothing written."""
    problems = []
    for role in ("owner", "staff"):
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(getattr(world, role))
        for route in _write_routes(world):
            for method in (m for m in route.methods if m in WRITES):
                call = getattr(browser, method.lower())
                with Writes() as writes:
                    if route.url.startswith("/api/"):
                        response = call(route.url, json.dumps(_body(route.url)), content_type="application/json")
                    else:
                        response = call(route.url, {})
                if response.status_code != 403:
                    problems.append(f"{method} {route} as {role} without a CSRF token: {response.status_code}")
                if writes.statements:
                    problems.append(f"{method} {route} as {role} without a CSRF token wrote: {writes.statements[0]}")
    assert not problems, "\n".join(problems)


@pytest.mark.django_db(databases="__all__")
def test_a_bearer_token_needs_no_csrf_token(world):
    _, raw = api_token_create(owner=world.owner, name="script")
    script = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {raw}")
    problems = []
    for route in _write_routes(world):
        if not route.url.startswith("/api/"):
            continue
        for method in (m for m in route.methods if m in WRITES):
            response = getattr(script, method.lower())(route.url, json.dumps(_body(route.url)), content_type="application/json")
            if "csrf" in response.content.decode(errors="replace").lower():
                problems.append(f"{method} {route} with a bearer token: {response.status_code} {response.content[:120]!r}")
    assert not problems, "\n".join(problems)
    world.seat_run.refresh_from_db()
    assert world.seat_run.status == "cancelled", "the token's POST /cancel went through"


async def _connect(run_pk: int, headers: list[tuple[bytes, bytes]]):
    from scenariolab_site.asgi import application

    communicator = WebsocketCommunicator(application, f"/ws/runs/{run_pk}/", headers=headers)
    connected, _ = await communicator.connect()
    if not connected:
        return False
    first = await communicator.receive_output(timeout=2)  # the owner's socket starts with the stored events
    await communicator.disconnect()
    return first.get("type") != "websocket.close"


ORIGINS = [
    (b"http://localhost:8000", True),  # the site's own page
    (b"https://evil.example", False),
    (b"http://localhost.evil.example", False),
    (b"null", False),  # a sandboxed frame or a file
    (None, False),  # no Origin: not a browser page of ours
]


@pytest.mark.django_db(transaction=True)
async def test_the_run_socket_checks_the_origin(settings):
    """Through the whole ASGI application, with the owner's session cookie: only our own origin gets in."""
    from asgiref.sync import sync_to_async

    from runs.execution import executor
    from runs.tests.factories import make_run

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    def setup():
        owner = User.objects.create_user("owner", password="pw")
        run = executor.run_execute(run_id=make_run(turns=1, owner=owner).pk)
        client = Client()
        client.force_login(owner)
        return run.pk, client.cookies["sessionid"].value

    run_pk, session = await sync_to_async(setup)()
    wrong = []
    for origin, accepted in ORIGINS:
        headers = [(b"host", b"localhost:8000"), (b"cookie", f"sessionid={session}".encode())]
        if origin is not None:
            headers.append((b"origin", origin))
        if await _connect(run_pk, headers) is not accepted:
            wrong.append(f"Origin {origin!r}: {'refused' if accepted else 'accepted'}")
    assert not wrong, wrong


def _socket_scope(origin: str | None, *, host: str = "localhost:8000", scheme: str = "ws", proto: str | None = None) -> dict:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize("origin, scheme, proto, allowed", [
    ("http://localhost:8000", "ws", None, True),
    ("http://LOCALHOST:8000", "ws", None, True),  # hosts are compared without case
    ("http://localhost:8001", "ws", None, False),  # another port: another origin
    ("http://localhost", "ws", None, False),
    ("https://localhost:8000", "ws", None, False),  # a page over https, a socket over plain ws: not the same site
    ("https://localhost:8000", "wss", None, True),
    ("https://localhost:8000", "ws", "https", False),  # X-Forwarded-Proto is only believed behind a proxy
])
def test_the_socket_origin_must_match_scheme_host_and_port(settings, origin, scheme, proto, allowed):
    from scenariolab_site.proxies import origin_allowed

    settings.CSRF_TRUSTED_ORIGINS = []
    assert origin_allowed(_socket_scope(origin, scheme=scheme, proto=proto)) is allowed


def test_behind_a_proxy_the_forwarded_scheme_and_trusted_origins_count(settings):
    from scenariolab_site.proxies import origin_allowed

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.CSRF_TRUSTED_ORIGINS = ["https://lab.example.org", "https://*.example.net"]
    assert origin_allowed(_socket_scope("https://localhost:8000", proto="https"))
    assert not origin_allowed(_socket_scope("http://localhost:8000", proto="https"))
    assert origin_allowed(_socket_scope("https://lab.example.org"))
    assert origin_allowed(_socket_scope("https://team.example.net"))
    assert not origin_allowed(_socket_scope("https://example.net.evil.org"))
    assert not origin_allowed(_socket_scope("http://lab.example.org")), "a trusted origin is trusted with its scheme"
    assert not origin_allowed(_socket_scope("https://lab.example.org", host="evil.example")), "the Host must be ours"
