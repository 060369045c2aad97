"""ASGI entry point: HTTP through Django (static files included, with debug off too), WebSockets through
Channels with the session's user and an origin check (a page of another site cannot open a socket with our
visitors' cookies). `daphne scenariolab_site.asgi:application` or `uvicorn` serves the whole site."""

import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings")
django_asgi_app = get_asgi_application()  # first: it sets up Django before the consumers import models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import WebsocketDenier  # noqa: E402

from accounts.auth import BearerTokenSocketAuth, bearer_token  # noqa: E402
from runs.routing import websocket_urlpatterns  # noqa: E402
from scenariolab_site.checks import static_files_problem  # noqa: E402
from scenariolab_site.proxies import origin_allowed  # noqa: E402

if problem := static_files_problem():
    sys.exit(problem)  # one line, before the server listens: not a 500 on every page


class SameOrigin:
    """Let a WebSocket in only from a page of the site itself: its Origin's scheme, host and port must be the
    request's own (through a trusted proxy: as the browser saw them), or one of CSRF_TRUSTED_ORIGINS. A script
    (no Origin) gets in with a bearer token: it carries its credential itself, no browser lends it a cookie."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope) and not _scripted(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def _scripted(scope: dict) -> bool:
    has_origin = any(name.lower() == b"origin" for name, _ in scope.get("headers", []))
    return not has_origin and bearer_token(scope) is not None


application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": SameOrigin(AuthMiddlewareStack(BearerTokenSocketAuth(URLRouter(websocket_urlpatterns)))),
})
