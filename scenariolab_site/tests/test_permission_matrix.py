"""Who may reach what: every URL the site serves (walked from Django's resolver; the API's methods from ninja's
router) and every socket, for each of anonymous, another user, the owner, staff, and a player and an observer
of the owner's waiting run.

A new page, endpoint or admin view is in the matrix the moment it is routed; one whose parameters the matrix
cannot fill fails with a message saying so. The rules per kind of URL:

- private (names someone's run, batch, seat or token, or the run comparison of someone's runs): anonymous is
  sent to sign in (pages 302, the API 401); another user gets 404, as if nothing were there; owner and staff
  may read it;
- admin: anyone not staff is sent to the admin's sign-in page, for GET and POST alike (admin actions too);
- scenario writes in the API need the model permission: 403 for users without it;
- every GET leaves the database as it was, and so does every POST that is refused;
- a page or answer another user may see never links to the owner's runs or batches;
- a player (of the seat the run waits for) and an observer (public view) of the owner's waiting run read it,
  as every signed-in page; steering it (and, for the observer, its seat) is 403, and so are its model calls
  (the full view's); the owner's other run, batch and token stay 404 to them, and no answer links to them.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.services import api_token_create
from batches.models import Batch
from batches.tests.factories import start_batch
from runs.execution import executor
from runs.models import ModelCall, Run, RunRole
from runs.tests.factories import make_run
from scenarios.services import scenario_import_library

pytestmark = pytest.mark.django_db(databases="__all__")

ROLES = ("anonymous", "other", "owner", "staff", "player", "observer")
PARTS = ("player", "observer")  # a part in the owner's waiting run (`RunRole`), nothing else
# Open to anyone: signing in and out, the API's documentation, the site's front door (it redirects), and the
# API's catch-all 404. Everything else needs a signed-in user at least.
PUBLIC = {"home", "login", "logout", "admin:login", "admin:logout", "api:openapi-json", "api:openapi-view",
          "api:api-root", None}
# API operations that change the shared scenario library: they need scenarios.add/change_scenario.
NEEDS_MODEL_PERMISSION = {"api:create_scenario", "api:update_scenario", "api:import_scenario"}
# Parameters that name something private, and the views taking query parameters that do.
PRIVATE_PARAMETERS = {"pk", "run_id", "batch_id", "actor", "object_id", "id", "content_type_id"}
PRIVATE_QUERIES = {"runs:compare", "api:compare_runs"}
# API bodies that pass the schema, so that the permission check (not the body's validation, which comes
# first) is what answers a stranger; other operations get {}. A new operation answering 422 belongs here.
API_BODIES = {
    "branch": {"at_turn": 1},
    "decision": {"long_term_goals": ["x"], "short_term_priorities": ["x"], "reasoning": "x", "action": "x"},
    "control": {"control": "ai"},
    "roles": {"role": "observer", "user": "nobody"},
}


@dataclass(frozen=True)
class Route:
    route: str  # as Django shows it, e.g. "runs/<int:pk>/seats/<str:actor>/"
    name: str | None
    url: str  # filled in, with its query string
    methods: tuple[str, ...]
    kind: str  # public | signed_in | private | admin | permission

    def __str__(self) -> str:
        return f"{self.name or self.route} ({self.url})"


def _walk(patterns, prefix="", namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(part for part in (namespace, pattern.namespace) if part) or None
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield prefix + str(pattern.pattern), name, pattern


def _api_methods(pattern: URLPattern) -> tuple[str, ...] | None:
    """The methods ninja routes at this path (every operation of its PathView), None for a non-API view."""
    from ninja.operation import PathView

    for cell in getattr(pattern.callback, "__closure__", None) or ():
        if isinstance(cell.cell_contents, PathView):
            operations = cell.cell_contents.operations
            return tuple(sorted({method for operation in operations for method in operation.methods}))
    return None


@dataclass
class World:
    owner: User
    other: User
    staff: User
    player: User
    observer: User
    seat_run: Run  # waiting for the owner's human seat
    played_run: Run  # queued
    batch: Batch
    seat: str
    token_pk: int
    call_seq: int  # a model call of the waiting run

    def private_markers(self) -> list[str]:
        return [f"/runs/{self.seat_run.pk}/", f"/runs/{self.played_run.pk}/", f"/batches/{self.batch.pk}/"]

    def shared(self, route: Route) -> bool:
        """Does the route name the run the player and the observer have a part in (and nothing else private)?"""
        path = route.url.split("?")[0]
        return (path.startswith((f"/runs/{self.seat_run.pk}/", f"/api/runs/{self.seat_run.pk}/"))
                or path == f"/api/runs/{self.seat_run.pk}") and route.kind == "private"


def _object_for(route: str, world: World) -> str:
    """The pk the admin's `<path:object_id>` stands for: an object of the route's model."""
    app_label, model_name = route.split("/")[1:3]
    model = apps.get_model(app_label, model_name)
    if model is Run:
        return str(world.played_run.pk)
    if model is User:
        return str(world.owner.pk)
    found = model._default_manager.order_by("pk").first()
    return str(found.pk) if found else "1"


def _fill(route: str, name: str | None, world: World) -> str | None:
    """The route with each parameter replaced by the owner's object; None when a parameter is unknown."""
    import re

    if route.startswith("^"):  # the API's catch-all regex
        return "api/no-such-endpoint"
    if "(?P<app_label>" in route:  # the admin's app index
        return "admin/runs/"
    if "(?P<url>" in route:  # the admin's catch-all
        return "admin/no-such-page/"
    values = {
        "slug": "ai-summit",
        "actor": world.seat,
        "run_id": str(world.seat_run.pk),
        "batch_id": str(world.batch.pk),
        "content_type_id": str(ContentType.objects.get_for_model(Run).pk),
        "id": str(world.owner.pk),
        "role_id": "1",  # a run's role: refused before it is looked for, to anyone who may not steer the run
        "seq": str(world.call_seq),
    }
    if route.startswith("accounts/tokens/"):
        values["pk"] = str(world.token_pk)
    elif route.startswith("batches/"):
        values["pk"] = str(world.batch.pk)
    else:
        values["pk"] = str(world.seat_run.pk)

    unknown = []

    def replace(match: re.Match) -> str:
        parameter = match.group(1).split(":")[-1]
        if parameter == "object_id":
            return str(world.played_run.pk) if route.startswith("admin/r/") else _object_for(route, world)
        if parameter not in values:
            unknown.append(parameter)
            return ""
        return values[parameter]

    filled = re.sub(r"<([^>]+)>", replace, route)
    return None if unknown else filled


def _kind(route: str, name: str | None) -> str:
    if name in PUBLIC:
        return "public"
    if route.startswith("admin/"):
        return "admin"
    if name in NEEDS_MODEL_PERMISSION:
        return "permission"
    parameters = {part.split(":")[-1] for part in __import__("re").findall(r"<([^>]+)>", route)}
    if parameters & PRIVATE_PARAMETERS or name in PRIVATE_QUERIES:
        return "private"
    return "signed_in"


def routes(world: World) -> tuple[list[Route], list[str]]:
    found, problems, seen = [], [], set()
    query = f"?ids={world.seat_run.pk}&ids={world.played_run.pk}"
    for route, name, pattern in _walk(get_resolver().url_patterns):
        if route in seen:  # ninja registers one pattern per operation of a path; the PathView serves them all
            continue
        seen.add(route)
        filled = _fill(route, name, world)
        if filled is None:
            problems.append(f"{name or route}: the matrix cannot fill its parameters; teach _fill about them")
            continue
        methods = _api_methods(pattern) or ("GET", "POST")
        url = "/" + filled + (query if name in PRIVATE_QUERIES else "")
        found.append(Route(route, name, url, methods, _kind(route, name)))
    return found, problems


class Writes:
    """Every statement that changes a table, on every database, while it is open (signing in aside: the
    session table and a user's last_login are not what is tested)."""

    IGNORED = ("django_session", "last_login")

    def __init__(self) -> None:
        self.statements: list[str] = []
        self._stack = contextlib.ExitStack()

    def _record(self, execute, sql, params, many, context):
        head = sql.lstrip()[:6].upper()
        if head in ("INSERT", "UPDATE", "DELETE", "REPLAC") and not any(word in sql for word in self.IGNORED):
            self.statements.append(sql[:120])
        return execute(sql, params, many, context)

    def __enter__(self) -> Writes:
        for alias in connections:
            self._stack.enter_context(connections[alias].execute_wrapper(self._record))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()


@pytest.fixture
def world() -> World:
    return make_world()


def make_world(tag: str = "") -> World:
    """The owner's runs (one waiting for their seat, one completed), batch and token; another user; staff.
    `tag` makes the user names unique where one database holds several worlds."""
    scenario_import_library()
    owner = User.objects.create_user(f"owner{tag}", password="pw")
    other = User.objects.create_user(f"other{tag}", password="pw")
    staff = User.objects.create_user(f"staff{tag}", password="pw", is_staff=True)
    player = User.objects.create_user(f"player{tag}", password="pw")
    observer = User.objects.create_user(f"observer{tag}", password="pw")
    seat = "norvale"
    seat_run = make_run(turns=1, owner=owner, human_seats=(seat,))
    seat_run = executor.run_execute(run_id=seat_run.pk)
    RunRole.objects.create(run=seat_run, user=player, role="player", seats=[seat])
    RunRole.objects.create(run=seat_run, user=observer, role="observer", view="public")
    played_run = make_run(turns=1, owner=owner)  # queued: reading and refusing need no records
    batch = start_batch(owner=owner)
    token, _ = api_token_create(owner=owner, name="owner's token")
    call = ModelCall.objects.filter(run=seat_run).first()
    assert call is not None, "the waiting run traced its calls"
    return World(owner, other, staff, player, observer, seat_run, played_run, batch, seat, token.pk, call.seq)


def _client(world: World, role: str) -> Client:
    client = Client()
    if role != "anonymous":
        client.force_login(getattr(world, role))
    return client


def _to_sign_in(response, admin: bool) -> bool:
    location = response.headers.get("Location", "")
    return response.status_code == 302 and location.startswith("/admin/login/" if admin else "/accounts/login/")


# The shared run's routes a part may use besides reading: the player decides for the seat (its page and the API's).
SEAT_ROUTES = {"runs:seat", "api:seat_view", "api:decide_seat"}
# The shared run's routes only its full view reads (neither this player nor this public observer has it).
FULL_VIEW_ROUTES = {"runs:calls", "api:run_calls", "api:run_call"}


def _refused(route: Route, role: str, response, world: World) -> bool:
    """Is this answer the refusal the rules above ask of `role` at `route`?"""
    api = route.url.startswith("/api/")
    if route.kind == "admin":
        return _to_sign_in(response, admin=True)
    if response.status_code == 405:  # a method the URL does not take reaches nothing
        return True
    if role == "anonymous":
        return response.status_code == 401 if api else _to_sign_in(response, admin=False)
    if route.kind == "permission" or (role in PARTS and world.shared(route)):
        return response.status_code == 403  # theirs to read, not to change
    return response.status_code == 404  # someone else's object


def _expect_refusal(route: Route, role: str, world: World, method: str = "GET") -> bool:
    if route.kind == "public":
        return False
    if route.kind == "admin":
        return role != "staff"
    if route.kind == "permission":
        return True  # nobody here holds scenarios.add/change_scenario, staff included
    if role == "anonymous":
        return True
    if role in PARTS and route.kind == "private":
        if not world.shared(route):
            return True
        if route.name in SEAT_ROUTES:
            return role == "observer"
        if route.name in FULL_VIEW_ROUTES:
            return True
        return method not in ("GET", "HEAD")  # a part reads the run; steering it is the owner's and facilitators'
    return route.kind == "private" and role == "other"


def _call(client: Client, method: str, url: str):
    """An empty form for pages; for the API a body its schema takes, so that the permission check (not the
    body's validation) is what answers: an empty JSON object, or a scenario zip for the import."""
    call = getattr(client, method.lower())
    if method in ("GET", "HEAD") or not url.startswith("/api/"):
        return call(url)
    if url.startswith("/api/scenarios/import"):
        from scenarios.tests.factories import make_zip, scenario_files

        upload = SimpleUploadedFile("harbour.zip", make_zip(scenario_files()), content_type="application/zip")
        return call(url, {"upload": upload})
    body = API_BODIES.get(url.rstrip("/").rsplit("/", 1)[-1], {})
    return call(url, json.dumps(body), content_type="application/json")


def test_every_route_for_every_role(world):
    found, problems = routes(world)
    assert len(found) > 80, "the resolver walk found too few routes"
    clients = {role: _client(world, role) for role in ROLES}
    markers = world.private_markers()
    not_theirs = markers[1:]  # a part's pages may link to the shared run, never to the owner's others
    for route in found:
        reads = [m for m in route.methods if m in ("GET", "HEAD")]
        writes = [m for m in route.methods if m not in ("GET", "HEAD", "OPTIONS")]
        for role in ROLES:
            for method in reads:
                with Writes() as writes_seen:
                    response = _call(clients[role], method, route.url)
                if writes_seen.statements:
                    problems.append(f"{method} {route} as {role} wrote to the database: {writes_seen.statements[0]}")
                where = f"{method} {route} as {role}: {response.status_code}"
                if response.status_code >= 500:
                    problems.append(f"{where}, a server error")
                elif _expect_refusal(route, role, world, method) and not _refused(route, role, response, world):
                    problems.append(f"{where}, expected a refusal")
                elif not _expect_refusal(route, role, world, method) and route.kind not in ("public", "permission") \
                        and response.status_code != 405 and _refused(route, role, response, world):
                    problems.append(f"{where}, refused someone who may read it")
                elif role in ("other", *PARTS) and response.status_code < 300 and not response.streaming:
                    body = response.content.decode(errors="replace")
                    leaked = [m for m in (markers if role == "other" else not_theirs) if m in body]
                    if leaked:
                        problems.append(f"{where}, shows the owner's {leaked}")
        for role in ROLES:
            for method in writes:
                if not _expect_refusal(route, role, world, method):
                    continue  # what the owner, staff and a seat's player may change is the functional tests' business
                with Writes() as writes_seen:
                    response = _call(clients[role], method, route.url)
                if role in PARTS and not route.url.startswith("/api/") and not writes_seen.statements \
                        and response.status_code < 400:
                    continue  # a page that reads answers a POST as a GET: it changes nothing, which is what counts
                if not _refused(route, role, response, world):
                    problems.append(f"{method} {route} as {role}: {response.status_code}, expected a refusal")
                if writes_seen.statements:
                    problems.append(f"{method} {route} as {role} wrote to the database: {writes_seen.statements[0]}")
    assert not problems, "unexpected outcomes:\n" + "\n".join(problems)


def test_admin_actions_are_refused_to_everyone_but_staff(world):
    """Every action of every model admin, posted on its change list as someone who is not staff."""
    from django.contrib import admin

    problems, tried = [], 0
    for role in ("anonymous", "other", "owner"):
        client = _client(world, role)
        for model, model_admin in admin.site._registry.items():
            selected = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)]
            url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
            for action in model_admin.get_actions(_request_as(world.staff)) or {}:
                tried += 1
                with Writes() as writes_seen:
                    response = client.post(url, {"action": action, "_selected_action": selected, "index": 0})
                if not _to_sign_in(response, admin=True):
                    problems.append(f"admin action {model._meta.label}.{action} as {role}: {response.status_code}")
                if writes_seen.statements:
                    problems.append(f"admin action {model._meta.label}.{action} as {role} wrote: {writes_seen.statements[0]}")
    assert tried >= 3 * 8, "fewer admin actions than the site has"
    assert not problems, "\n".join(problems)


def _request_as(user: User):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = User(is_staff=True, is_superuser=True, username="probe")  # every action there is
    return request


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_every_socket_for_every_role(settings):
    """Each socket route, for each role: open (a first message, or silence) or closed with 4403 at once."""
    from asgiref.sync import async_to_sync
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth.models import AnonymousUser

    from runs.routing import websocket_urlpatterns

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    world = make_world()
    shared, other_run = world.seat_run.pk, world.played_run.pk
    sockets = {f"/ws/runs/{shared}/": "shared", f"/api/runs/{shared}/stream": "shared", f"/ws/runs/{other_run}/": "owner's",
               "/ws/seats/": "signed_in"}
    assert len(sockets) - 1 == len(websocket_urlpatterns), "a socket route the matrix does not know"
    opens = {"shared": {"owner", "staff", *PARTS}, "owner's": {"owner", "staff"}, "signed_in": set(ROLES) - {"anonymous"}}

    async def first_message(path: str, user) -> dict:
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
        communicator.scope["user"] = user
        await communicator.connect()
        if await communicator.receive_nothing(timeout=0.5):
            message = {"type": "websocket.send", "text": "(open, nothing to send yet)"}
        else:
            message = await communicator.receive_output(timeout=10)
        await communicator.disconnect()
        return message

    problems = []
    for role in ROLES:
        user = AnonymousUser() if role == "anonymous" else getattr(world, role)
        for path, kind in sockets.items():
            message = async_to_sync(first_message)(path, user)
            opened = message["type"] == "websocket.send"
            if opened != (role in opens[kind]) or (not opened and message.get("code") != 4403):
                problems.append(f"{path} as {role}: {message}")
    assert not problems, "\n".join(problems)
