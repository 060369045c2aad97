"""Parts in a run besides its owner's: who sees it, who steers it, who decides for which seat."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from ninja.testing import TestClient

from runs import roles, selectors, services
from runs.execution import executor
from runs.models import HumanDecision, Run, RunRole, RunStatus
from runs.tests.factories import make_run
from runs.tests.test_seats import decision_for
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db
api_client = TestClient(api)


@pytest.fixture
def people() -> dict[str, User]:
    return {name: User.objects.create_user(name, password="pw")
            for name in ("owner", "facilitator", "norvale_player", "meridian_player", "observer", "stranger")}


@pytest.fixture
def waiting(people) -> Run:
    """A run waiting for two seats, each assigned to its player, with a facilitator and an observer."""
    run = make_run(turns=1, owner=people["owner"])
    roles.run_role_grant(run=run, role="player", user=people["norvale_player"], seats=["norvale"])
    roles.run_role_grant(run=run, role="player", user=people["meridian_player"], seats=["meridian"])
    roles.run_role_grant(run=run, role="facilitator", user=people["facilitator"])
    roles.run_role_grant(run=run, role="observer", user=people["observer"], view="public")
    run = executor.run_execute(run_id=run.pk)
    assert run.status == RunStatus.WAITING_FOR_HUMAN
    return run


def test_a_players_seats_go_to_people_and_each_player_decides_only_their_own(people, waiting):
    assert {a["short_name"]: a["control"] for a in waiting.actors}["norvale"] == "human"
    assert {seat.actor for seat in selectors.run_pending_seats(run=waiting)} == {"norvale", "meridian"}
    mine = {name: [(s["run"], s["actor"]) for s in api_client.get("/runs/seats/pending", user=people[name]).json()]
            for name in ("norvale_player", "facilitator", "observer")}
    assert mine == {"norvale_player": [(waiting.pk, "norvale")], "observer": [],
                    "facilitator": [(waiting.pk, "norvale"), (waiting.pk, "meridian")]}, mine
    url = f"/runs/{waiting.pk}/seats/{{}}/decision"
    refused = api_client.post(url.format("meridian"), json=decision_for(waiting, "meridian"), user=people["norvale_player"])
    assert refused.status_code == 403 and not HumanDecision.objects.exists()
    for actor in ("norvale", "meridian"):
        decided = api_client.post(url.format(actor), json=decision_for(waiting, actor), user=people[f"{actor}_player"])
        assert decided.status_code == 200, decided.content
    assert {(d.actor, d.decided_by.username) for d in HumanDecision.objects.all()} == {
        ("norvale", "norvale_player"), ("meridian", "meridian_player")}
    assert executor.run_execute(run_id=waiting.pk).status == RunStatus.COMPLETED


def test_who_sees_and_who_steers(people, waiting, client):
    for name in ("owner", "facilitator", "norvale_player", "observer"):
        assert api_client.get(f"/runs/{waiting.pk}", user=people[name]).status_code == 200, name
        assert waiting.pk in {run.pk for run in selectors.runs_for(people[name])}, name
        client.force_login(people[name])
        assert client.get(f"/runs/{waiting.pk}/").status_code == 200, name
        assert str(waiting.pk) in client.get("/runs/").content.decode(), f"{name}'s run list shows the shared run"
    assert api_client.get(f"/runs/{waiting.pk}", user=people["stranger"]).status_code == 404
    # Steering is the owner's, a facilitator's or staff's: a player and an observer are refused (403), a stranger
    # does not see the run at all (404).
    control = f"/runs/{waiting.pk}/seats/norvale/control"
    assert api_client.post(control, json={"control": "ai"}, user=people["observer"]).status_code == 403
    assert api_client.post(control, json={"control": "ai"}, user=people["norvale_player"]).status_code == 403
    assert api_client.post(control, json={"control": "ai"}, user=people["stranger"]).status_code == 404
    client.force_login(people["observer"])
    assert client.post(f"/runs/{waiting.pk}/cancel/").status_code == 403
    assert Run.objects.get(pk=waiting.pk).status == RunStatus.WAITING_FOR_HUMAN
    # The facilitator decides for any seat and steers.
    facilitated = api_client.post(f"/runs/{waiting.pk}/seats/meridian/decision", json=decision_for(waiting, "meridian"),
                                  user=people["facilitator"])
    assert facilitated.status_code == 200
    assert api_client.post(control, json={"control": "ai"}, user=people["facilitator"]).status_code == 200


def test_a_role_given_to_a_group_reaches_its_members(people):
    run = make_run(turns=1, owner=people["owner"])
    delegation = Group.objects.create(name="delegation")
    people["stranger"].groups.add(delegation)
    assert not people["stranger"].has_perm("runs.see_run", run)
    roles.run_role_grant(run=run, role="observer", group=delegation)
    assert User.objects.get(pk=people["stranger"].pk).has_perm("runs.see_run", run)  # a fresh user: no cache


@pytest.mark.parametrize(("role", "seats", "problem"), [
    ("player", [], "a player needs at least one seat"),
    ("player", ["atlantis"], "no actor 'atlantis'"),
    ("observer", ["norvale"], "only a player has seats"),
    ("referee", [], "role must be one of"),
])
def test_a_wrong_role_is_refused_naming_the_fix(people, role, seats, problem):
    run = make_run(turns=1, owner=people["owner"])
    with pytest.raises(services.RunInputError, match=problem):
        roles.run_role_grant(run=run, role=role, user=people["stranger"], seats=seats)
    assert not RunRole.objects.exists()


def test_roles_over_the_api(people):
    run = make_run(turns=1, owner=people["owner"])
    url = f"/runs/{run.pk}/roles"
    granted = api_client.post(url, json={"role": "player", "user": "norvale_player", "seats": ["norvale"]}, user=people["owner"])
    assert granted.status_code == 201, granted.content
    assert granted.json()["seats"] == ["norvale"] and granted.json()["user"] == "norvale_player"
    assert {a["short_name"]: a["control"] for a in Run.objects.get(pk=run.pk).actors}["norvale"] == "human"
    # Reading the roles is anyone's with a part; granting is the steerers'.
    assert [r["role"] for r in api_client.get(url, user=people["norvale_player"]).json()] == ["player"]
    refused = api_client.post(url, json={"role": "observer", "user": "stranger"}, user=people["norvale_player"])
    assert refused.status_code == 403
    assert api_client.get(url, user=people["stranger"]).status_code == 404
    for body, problem in [({"role": "player", "user": "nobody", "seats": ["norvale"]}, "no user 'nobody'"),
                          ({"role": "player", "user": "stranger", "seats": ["atlantis"]}, "no actor 'atlantis'"),
                          ({"role": "observer"}, "one user"),
                          ({"role": "observer", "group": "no-such-group"}, "no group")]:
        answer = api_client.post(url, json=body, user=people["owner"])
        assert answer.status_code == 400 and problem in answer.json()["message"], answer.content
    part = granted.json()["id"]
    assert api_client.delete(f"{url}/{part}", user=people["norvale_player"]).status_code == 403
    assert api_client.delete(f"{url}/{part}", user=people["owner"]).status_code == 204
    assert api_client.get(f"/runs/{run.pk}", user=people["norvale_player"]).status_code == 404
