"""Parts in a run besides its owner's: who sees it, who steers it, who decides for which seat."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from ninja.testing import TestClient

from runs import selectors, services
from runs.roles import RoleGrant
from runs.seats import run_role_grant
from runs.execution import executor
from runs.models import HumanDecision, Run, RunRole, RunStatus
from runs.tests.factories import make_run
from runs.tests.test_seats import decision_for
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db
api_client = TestClient(api)


def grant(run: Run, role: str, **part) -> RunRole:
    return run_role_grant(run=run, grant=RoleGrant(role, **part))


@pytest.fixture
def people() -> dict[str, User]:
    return {name: User.objects.create_user(name, password="pw")
            for name in ("owner", "facilitator", "norvale_player", "meridian_player", "observer", "stranger")}


@pytest.fixture
def waiting(people) -> Run:
    """A run waiting for two seats, each assigned to its player, with a facilitator and an observer."""
    run = make_run(turns=1, owner=people["owner"])
    grant(run, "player", user=people["norvale_player"], seats=["norvale"])
    grant(run, "player", user=people["meridian_player"], seats=["meridian"])
    grant(run, "facilitator", user=people["facilitator"])
    grant(run, "observer", user=people["observer"], view="public")
    run = executor.run_execute(run_id=run.pk)
    assert run.status == RunStatus.WAITING_FOR_HUMAN
    return run


def test_a_players_seats_go_to_people_and_each_player_decides_only_their_own(people, waiting):
    assert {a["short_name"]: a["control"] for a in waiting.actors}["norvale"] == "human"
    assert {seat.actor for seat in selectors.run_pending_seats(run=waiting)} == {"norvale", "meridian"}
    mine = {name: [(s["run"], s["actor"]) for s in api_client.get("/runs/seats/pending", user=people[name]).json()]
            for name in ("norvale_player", "facilitator", "observer")}
    assert mine == {"norvale_player": [(waiting.pk, "norvale")], "observer": [], "facilitator": []}, \
        "a seat a player holds waits for its player (a facilitator may still decide for it)"
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
    grant(run, "observer", group=delegation)
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
        grant(run, role, user=people["stranger"], seats=seats)
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


def test_roles_given_at_the_start_over_the_api_and_the_start_form(people, client):
    from scenarios.services import scenario_import_library

    scenario_import_library()
    started = api_client.post("/runs/", user=people["owner"], json={
        "scenario": "ai-summit", "turns": 1, "roles": [
            {"role": "player", "user": "norvale_player", "seats": ["norvale"]},
            {"role": "observer", "user": "observer", "view": "public"}]})
    assert started.status_code == 201, started.content
    run = Run.objects.get(pk=started.json()["id"])
    assert {(p.user.username, p.role, tuple(p.seats), p.view) for p in RunRole.objects.filter(run=run)} == {
        ("norvale_player", "player", ("norvale",), "full"), ("observer", "observer", (), "public")}
    assert {a["short_name"]: a["control"] for a in run.actors}["norvale"] == "human", "a player's seat is a person's from the start"
    refused = api_client.post("/runs/", user=people["owner"], json={
        "scenario": "ai-summit", "roles": [{"role": "player", "user": "nobody", "seats": ["norvale"]}]})
    assert refused.status_code == 400 and "no user 'nobody'" in refused.json()["message"]

    client.force_login(people["owner"])
    Group.objects.create(name="analysts")
    form = {"start": "1", "turns": "1", "use_cache": "on", "player_norvale": "norvale_player",
            "player_meridian": "meridian_player", "facilitators": "facilitator", "observers": "group:analysts"}
    page = client.post("/scenarios/ai-summit/", form)
    assert page.status_code == 302, page.content.decode()[:2000]
    run = Run.objects.latest("pk")
    parts = {(p.user.username if p.user else f"group:{p.group.name}", p.role, tuple(p.seats)) for p in RunRole.objects.filter(run=run)}
    assert parts == {("norvale_player", "player", ("norvale",)), ("meridian_player", "player", ("meridian",)),
                     ("facilitator", "facilitator", ()), ("group:analysts", "observer", ())}
    wrong = client.post("/scenarios/ai-summit/", {**form, "player_norvale": "nobody"})
    assert wrong.status_code == 200 and "no user &#x27;nobody&#x27;" in wrong.content.decode()
    assert Run.objects.count() == 2, "nothing started"


def test_a_scenario_gives_its_runs_roles_and_says_what_observers_see(people):
    from runs.tests.factories import summit_config

    config = summit_config()
    red = Group.objects.create(name="red-team")
    people["meridian_player"].groups.add(red)
    roles_config = config.config.roles.model_copy(update={
        "observer_view": "public", "players": {"red-team": ["meridian"], "absent-team": ["norvale"]}})
    config = config.model_copy(update={"config": config.config.model_copy(update={"roles": roles_config})})
    run = make_run(config, turns=1, owner=people["owner"])
    part = RunRole.objects.get(run=run)
    assert (part.group, part.role, part.seats) == (red, "player", ["meridian"]), "a group the site lacks is skipped"
    assert {a["short_name"]: a["control"] for a in run.actors}["meridian"] == "human"
    observer = grant(run, "observer", user=people["observer"])
    assert observer.view == "public", "an observer sees what the scenario lets observers see"
    assert grant(run, "observer", user=people["stranger"], view="full").view == "full", "unless their role says"


def test_a_scenario_naming_a_seat_it_lacks_does_not_load(tmp_path):
    import shutil

    from django.conf import settings

    from engine import Scenario
    from engine.scenario.errors import ScenarioLoadError

    folder = tmp_path / "summit"
    shutil.copytree(f"{settings.SCENARIO_LIBRARY_DIR}/ai-summit", folder)
    with (folder / "scenario.yaml").open("a") as file:
        file.write("roles:\n  players:\n    red-team: [meridain]\n")
    with pytest.raises(ScenarioLoadError) as failed:
        Scenario.load(folder)
    message = str(failed.value)
    assert "seat 'meridain'" in message and "Did you mean 'meridian'" in message
    lines = (folder / "scenario.yaml").read_text().splitlines()
    assert f"scenario.yaml:{len(lines)}" in message or f"scenario.yaml:{len(lines) - 1}" in message, message


def test_a_branch_keeps_its_familys_roles(people):
    from runs import branching
    from runs.branching import Intervention

    run = executor.run_execute(run_id=make_run(turns=1, owner=people["owner"]).pk)
    grant(run, "facilitator", user=people["facilitator"])
    grant(run, "observer", user=people["observer"], view="public")
    child = branching.run_branch(run=run, at_turn=1, intervention=Intervention(end_turn=2), owner=people["facilitator"])
    parts = {(p.user.username, p.role, p.view) for p in RunRole.objects.filter(run=child)}
    assert parts == {("facilitator", "facilitator", "full"), ("observer", "observer", "public"),
                     ("owner", "facilitator", "full")}, "and the parent's owner steers a branch someone else made"
    tree = [member.run.pk for member in selectors.run_family(run=child, user=people["observer"])]
    assert tree == [run.pk, child.pk], "the family tree shows an observer every run of the family shared with them"


def test_a_stored_scenario_keeps_its_roles_and_its_start_form_says_so(tmp_path, people, client):
    import shutil

    from django.conf import settings

    from scenarios.services import scenario_import_folder, scenario_to_engine

    folder = tmp_path / "summit"
    shutil.copytree(f"{settings.SCENARIO_LIBRARY_DIR}/ai-summit", folder)
    with (folder / "scenario.yaml").open("a") as file:
        file.write("roles:\n  observer_view: public\n  players:\n    red-team: [meridian]\n")
    roles_config = scenario_to_engine(scenario=scenario_import_folder(path=folder, slug="summit")).config.roles
    assert (roles_config.observer_view, roles_config.players) == ("public", {"red-team": ["meridian"]})
    client.force_login(people["owner"])
    notice = client.get("/scenarios/summit/").content.decode().split('id="scenario-roles"')[1].split("</div>")[0]
    assert "red-team plays meridian" in notice


def test_parts_given_and_taken_back_on_the_run_page(people, client):
    run = make_run(turns=1, owner=people["owner"])
    client.force_login(people["owner"])
    client.post(f"/runs/{run.pk}/roles/", {"person": "norvale_player", "role": "player", "seats": "norvale"})
    client.post(f"/runs/{run.pk}/roles/", {"person": "observer", "role": "observer", "view": "public"})
    wrong = client.post(f"/runs/{run.pk}/roles/", {"person": "nobody", "role": "observer"}, follow=True)
    assert "no user &#x27;nobody&#x27;" in wrong.content.decode()
    parts = {part.user.username: (part.role, part.seats, part.view) for part in RunRole.objects.filter(run=run)}
    assert parts == {"norvale_player": ("player", ["norvale"], "full"), "observer": ("observer", [], "public")}
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="people"' in page and "what is public" in page
    client.force_login(people["norvale_player"])
    assert client.post(f"/runs/{run.pk}/roles/", {"person": "stranger", "role": "observer"}).status_code == 403
    part = RunRole.objects.get(run=run, user=people["observer"])
    assert client.post(f"/runs/{run.pk}/roles/{part.pk}/withdraw/").status_code == 403
    assert 'action="/runs/%d/roles/"' % run.pk not in client.get(f"/runs/{run.pk}/").content.decode(), "the form is the steerers'"
    client.force_login(people["owner"])
    client.post(f"/runs/{run.pk}/roles/{part.pk}/withdraw/")
    assert not RunRole.objects.filter(pk=part.pk).exists()


def test_the_admin_gives_a_player_their_seats_and_refuses_a_wrong_part(people, client):
    run = make_run(turns=1, owner=people["owner"])
    client.force_login(User.objects.create_user("admin", password="pw", is_staff=True, is_superuser=True))
    form = {"run": run.pk, "user": people["norvale_player"].pk, "role": "player", "seats": '["norvale"]', "view": "full"}
    added = client.post("/admin/runs/runrole/add/", form)
    assert added.status_code == 302, added.content.decode()[:3000]
    assert RunRole.objects.get(run=run).seats == ["norvale"]
    assert {a["short_name"]: a["control"] for a in Run.objects.get(pk=run.pk).actors}["norvale"] == "human"
    wrong = client.post("/admin/runs/runrole/add/", {**form, "user": people["stranger"].pk, "seats": '["atlantis"]'})
    assert wrong.status_code == 200 and "no actor &#x27;atlantis&#x27;" in wrong.content.decode()
