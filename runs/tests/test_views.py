"""Run pages through the test client: the list, who may see and steer a run, CSRF, and the downloads."""

import io
import json
import zipfile

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.reading import EVERYTHING
from runs.execution import executor
from runs.models import Run, RunStatus
from runs.tests.factories import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return User.objects.create_user("olga", password="pw")


@pytest.fixture
def run(owner):
    return make_run(turns=1, owner=owner)


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def who(name: str, owner: User):
    """The four people of the permission matrix."""
    return {
        "anonymous": None,
        "other": User.objects.create_user("mallory", password="pw"),
        "owner": owner,
        "staff": User.objects.create_user("sam", password="pw", is_staff=True),
    }[name]


# ---- the list ----------------------------------------------------------------------------------------------
def test_the_list_shows_status_progress_cost_provider_and_scenario(owner):
    finished = executor.run_execute(run_id=make_run(turns=1, owner=owner, credit_limit=2.5).pk)
    queued = make_run(turns=3, owner=owner)
    page = client_for(owner).get(reverse("runs:list"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'href="{reverse("runs:detail", args=[finished.pk])}"' in html
    assert f'href="{reverse("runs:detail", args=[queued.pk])}"' in html
    assert 'class="status status-completed"' in html and 'class="status status-queued"' in html
    assert "1/1" in html and "0/3" in html
    assert f"{finished.total_cost:.4f} / 2.50" in html
    assert 'class="offline-badge"' in html and finished.scenario_name in html


def test_the_list_shows_a_crashed_run_as_crashed(owner, run):
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, heartbeat_at=None)
    html = client_for(owner).get(reverse("runs:list")).content.decode()
    assert 'class="status status-crashed"' in html


def test_people_see_their_own_runs_and_staff_see_all(owner, run):
    other = User.objects.create_user("mallory", password="pw")
    theirs = make_run(turns=1, owner=other)
    staff = User.objects.create_user("sam", password="pw", is_staff=True)

    own_rows = client_for(owner).get(reverse("runs:list")).context["rows"]
    assert [row["run"].pk for row in own_rows] == [run.pk]
    all_rows = client_for(staff).get(reverse("runs:list")).context["rows"]
    assert {row["run"].pk for row in all_rows} == {run.pk, theirs.pk}
    assert "mallory" in client_for(staff).get(reverse("runs:list")).content.decode(), "staff see owners"


def test_the_list_is_paginated_by_fifty(owner, run):
    copy = Run.objects.get(pk=run.pk)
    for offset in range(1, 52):
        copy.pk, copy.number = None, run.number + offset
        copy.save()
    client = client_for(owner)
    first, last = client.get(reverse("runs:list")), client.get(reverse("runs:list") + "?page=2")
    assert len(first.context["rows"]) == 50 and len(last.context["rows"]) == 2
    assert "Page 1 of 2" in first.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in_from_the_list():
    response = Client().get(reverse("runs:list"))
    assert response.status_code == 302 and response.url == reverse("login") + "?next=/runs/"


# ---- the permission matrix ---------------------------------------------------------------------------------
ENDPOINTS = [
    ("pause", "post"), ("resume", "post"), ("cancel", "post"), ("markdown_zip", "get"), ("state_json", "get"),
]


@pytest.mark.parametrize("name,method", ENDPOINTS)
@pytest.mark.parametrize("person", ["anonymous", "other", "owner", "staff"])
def test_permission_matrix(person, name, method, owner, run):
    url = reverse(f"runs:{name}", args=[run.pk])
    response = getattr(client_for(who(person, owner)), method)(url)
    if person == "anonymous":
        assert response.status_code == 302 and response.url.startswith(reverse("login") + "?next=")
    elif person == "other":
        assert response.status_code == 404
    elif method == "post":
        assert response.status_code == 302 and response.url == reverse("runs:detail", args=[run.pk])
    else:
        assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment;")
    run.refresh_from_db()
    if person in ("anonymous", "other"):
        assert run.status == RunStatus.QUEUED, "nothing changed for someone who may not see the run"


@pytest.mark.parametrize("person", ["anonymous", "other"])
def test_the_run_page_is_refused_to_people_who_may_not_see_it(person, owner, run):
    response = client_for(who(person, owner)).get(reverse("runs:detail", args=[run.pk]))
    assert response.status_code == (302 if person == "anonymous" else 404)


@pytest.mark.parametrize("person", ["owner", "staff"])
def test_the_run_page_opens_for_its_owner_and_staff(person, owner, run):
    assert client_for(who(person, owner)).get(reverse("runs:detail", args=[run.pk])).status_code == 200


def test_an_unknown_run_is_404(owner):
    assert client_for(owner).get(reverse("runs:state_json", args=[999999])).status_code == 404


@pytest.mark.parametrize("name", ["pause", "resume", "cancel"])
def test_controls_refuse_get(name, owner, run):
    assert client_for(owner).get(reverse(f"runs:{name}", args=[run.pk])).status_code == 405


# ---- CSRF --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pause", "resume", "cancel"])
def test_controls_need_the_csrf_token(name, owner, run):
    Run.objects.filter(pk=run.pk).update(status=RunStatus.PAUSED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    url = reverse(f"runs:{name}", args=[run.pk])

    assert client.post(url).status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED

    client.get(reverse("runs:list"))  # any page with a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    assert client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302


# ---- what the controls do ----------------------------------------------------------------------------------
def test_cancel_stops_an_idle_run_and_says_so(owner, run):
    client = client_for(owner)
    response = client.post(reverse("runs:cancel", args=[run.pk]), follow=False)
    run.refresh_from_db()
    assert response.status_code == 302 and run.status == RunStatus.CANCELLED
    assert "cancelled." in client.get(reverse("runs:list")).content.decode(), "the message is shown on the next page"


def test_a_conflict_is_a_message_not_a_500(owner, run):
    client = client_for(owner)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED, turn=1)
    for name in ("pause", "cancel", "resume"):
        assert client.post(reverse(f"runs:{name}", args=[run.pk])).status_code == 302
    html = client.get(reverse("runs:list")).content.decode()
    assert 'class="message message-error"' in html
    assert "only a running run can be paused" in html and "is already completed" in html
    assert "resume it with more turns" in html
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_resume_takes_a_new_credit_limit_and_end_turn(owner, run):
    Run.objects.filter(pk=run.pk).update(status=RunStatus.HALTED)
    client_for(owner).post(reverse("runs:resume", args=[run.pk]), {"credit_limit": "4.5", "end_turn": "3"})
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.credit_limit == 4.5 and run.max_turns == 3


def test_resume_refuses_bad_numbers_with_a_message(owner, run):
    Run.objects.filter(pk=run.pk).update(status=RunStatus.HALTED)
    client = client_for(owner)
    client.post(reverse("runs:resume", args=[run.pk]), {"credit_limit": "lots"})
    client.post(reverse("runs:resume", args=[run.pk]), {"credit_limit": "-2"})
    html = client.get(reverse("runs:list")).content.decode()
    assert "credit limit must be a number" in html and "must be a positive number" in html
    run.refresh_from_db()
    assert run.status == RunStatus.HALTED


# ---- downloads ---------------------------------------------------------------------------------------------
def test_downloads_hold_the_markdown_views_and_the_engine_state(owner):
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner).pk)
    client = client_for(owner)

    archive = client.get(reverse("runs:markdown_zip", args=[run.pk]))
    assert archive["Content-Type"] == "application/zip"
    assert archive["Content-Disposition"] == f'attachment; filename="ai-summit-run-{run.number:03d}.zip"'
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert any(name.endswith("summary.md") for name in names) and any(name.endswith("state.json") for name in names)

    state = client.get(reverse("runs:state_json", args=[run.pk]))
    assert state["Content-Type"].startswith("application/json")
    assert state["Content-Disposition"] == f'attachment; filename="ai-summit-run-{run.number:03d}-state.json"'
    body = json.loads(state.content)
    assert body["turn"] == 1 and body["status"] == "completed" and body["decisions"]


def test_the_run_page_polls_the_messages_its_socket_would_send(client):
    """What a page fetches when it cannot hold a socket: the stored events after its seq, rendered as the socket
    sends them, and the stored status; someone else's run is a 404 as for its page."""
    from runs.live import rendered_message

    owner = User.objects.create_user("poller", password="pw")
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner).pk)
    client.force_login(owner)
    body = client.get(f"/runs/{run.pk}/events/?after=3").json()
    stored = list(run.events.filter(seq__gt=3).order_by("seq"))
    assert [message["seq"] for message in body["events"]] == [event.seq for event in stored]
    first = {"seq": stored[0].seq, "type": stored[0].type, "data": stored[0].data, "timestamp": stored[0].timestamp.timestamp()}
    names = {a["short_name"]: a["name"] for a in run.actors}
    assert body["events"][0] == json.loads(rendered_message(run.pk, first, names=names, max_turns=run.max_turns, reader=EVERYTHING))
    assert body["status"]["status"] == "completed"
    assert client.get(f"/runs/{run.pk}/events/?after=nonsense").json()["events"][0]["seq"] == 1
    client.force_login(User.objects.create_user("stranger", password="pw"))
    assert client.get(f"/runs/{run.pk}/events/").status_code == 404
