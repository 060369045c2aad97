"""Branching: a run from a completed turn of another, with an intervention; the service, API, pages and admin.

Runs are played for real on the test database. What would leave the machine (the model calls) goes to a priced
test provider whose every request is kept, so a test reads the prompt a model would have been sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from ninja.testing import TestClient

from engine.llm.provider import LLMRequest, LLMResponse
from engine.testing.providers import FixedCostProvider
from runs import selectors, services
from runs import record_selectors
from runs.execution import executor
from runs.branching import ActorChange, Intervention, run_branch
from runs.forms import RunBranchForm
from runs.models import (
    Communication, CostRecord, Decision, MetricRecord, Run, RunEvent, RunRole, RunStatus, Turn, ValidationResult,
)
from runs.execution.store import load_run_state
from runs.tests.factories import make_run
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db
api_client = TestClient(api)

COST = 0.001  # USD per call: a ledger worth comparing
ACTOR = "norvale"
NEW_PROMPT = "You are the Norvalese chair, and tonight you have decided to walk out of the summit."


class Recording:
    """The provider a run is given, every request kept in order: what a model would have been sent."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.requests: list[LLMRequest] = []

    def max_cost(self, request: LLMRequest) -> float:
        return self.inner.max_cost(request)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        return await self.inner.complete(request)


@pytest.fixture
def calls(monkeypatch) -> dict[int, Recording]:
    """Each run executed in the test gets a priced recording provider: `calls[run.pk].requests`."""
    made: dict[int, Recording] = {}

    def provider_for_run(run, config):
        made[run.pk] = Recording(FixedCostProvider(config, cost_per_call=COST))
        return made[run.pk]

    monkeypatch.setattr(executor, "provider_for_run", provider_for_run)
    return made


@pytest.fixture
def owner() -> User:
    return User.objects.create_user("olga", password="pw")


@pytest.fixture
def parent(calls, owner) -> Run:
    """A completed three-turn run of the owner's."""
    run = executor.run_execute(run_id=make_run(turns=3, owner=owner, seed=3).pk)
    assert run.status == RunStatus.COMPLETED and run.turn == 3
    return run


def play(run: Run) -> Run:
    """Start a stored run (a branch) and play it here, as a worker would."""
    return executor.run_execute(run_id=services.run_resume(run=run, enqueue=False).pk)


def system_prompt(request: LLMRequest) -> str:
    return next(m.content for m in request.messages if m.role == "system")


def actor_calls(recording: Recording, actor: str) -> list[LLMRequest]:
    """The actor's own calls (talks and decisions), not the judge's calls about it."""
    return [r for r in recording.requests if r.purpose.actor == actor and r.purpose.task in {"outreach", "reply", "decision"}]


RECORDS = {
    Turn: ("turn", "position", "world_state", "exogenous_events"),
    Decision: ("turn", "position", "actor", "long_term_goals", "short_term_priorities", "reasoning", "action", "model", "provider"),
    Communication: ("turn", "position", "message_id", "kind", "sender", "recipients", "content", "in_reply_to"),
    MetricRecord: ("turn", "position", "name", "value", "actor", "source"),
    ValidationResult: ("turn", "position", "check_name", "passed", "severity", "actor", "issues", "explanation"),
    CostRecord: ("turn", "position", "phase", "actor", "task", "model", "provider", "input_tokens", "output_tokens", "cost",
                 "cached", "latency_ms"),
}


def records(run: Run, model, upto: int) -> list[tuple]:
    return list(model.objects.filter(run=run, turn__lte=upto).order_by("turn", "position").values_list(*RECORDS[model]))


# ---- the acceptance test ---------------------------------------------------------------------------------------
def test_a_branch_shares_the_parents_turns_and_plays_on_with_the_changed_prompt(calls, parent, owner):
    child = run_branch(run=parent, at_turn=1, owner=owner,
                       intervention=Intervention(actors={ACTOR: ActorChange(system_prompt=NEW_PROMPT)}, note="what if she walks out"))
    assert (child.status, child.turn, child.parent, child.branch_turn) == (RunStatus.PAUSED, 1, parent, 1)
    assert child.max_turns == 3 and child.owner == owner and child.number != parent.number
    assert child.pk not in calls, "branching plays nothing"

    child = play(child)
    assert child.status == RunStatus.COMPLETED and child.turn == 3

    for model in RECORDS:  # world states, decisions, messages, metrics, QA findings, ledger lines
        shared = records(parent, model, 1)
        assert records(child, model, 1) == shared, model.__name__
    assert records(parent, Decision, 1) and records(parent, MetricRecord, 1) and records(parent, CostRecord, 1)

    own = actor_calls(calls[child.pk], ACTOR)
    assert min(r.purpose.turn for r in calls[child.pk].requests) == 2, "turns up to 1 are copied, never played again"
    first = own[0]
    assert first.purpose.turn == 2 and NEW_PROMPT in system_prompt(first)
    assert all(NEW_PROMPT in system_prompt(r) for r in own)
    before = actor_calls(calls[parent.pk], ACTOR)
    assert not any(NEW_PROMPT in system_prompt(r) for r in before)
    assert "You are the Norvalese chair of the Bergholm Summit" in system_prompt(before[0])

    others = {r.purpose.actor for r in calls[child.pk].requests if r.purpose.actor not in (None, ACTOR)}
    for other in others:  # only the chosen actor's prompt changed
        assert {system_prompt(r) for r in actor_calls(calls[child.pk], other)} == \
               {system_prompt(r) for r in actor_calls(calls[parent.pk], other)}

    assert child.intervention["actors"] == {ACTOR: {"system_prompt": NEW_PROMPT}}
    assert child.intervention["before"]["actors"][ACTOR]["system_prompt"].startswith("You are the Norvalese chair")
    assert selectors.intervention_changes(child.intervention) == [f"{ACTOR}: system prompt rewritten"]
    assert Run.objects.get(pk=parent.pk).turn == 3, "the parent is left as it was"


# ---- costs, metrics, files -------------------------------------------------------------------------------------
def test_costs_and_metrics_are_truncated_to_the_branch_turn(calls, parent, owner):
    child = run_branch(run=parent, at_turn=2, owner=owner)

    shared = CostRecord.objects.filter(run=parent, turn__lte=2)
    assert 0 < child.calls == shared.count() < parent.calls
    assert child.total_cost == pytest.approx(sum(line.cost for line in shared)) and child.total_cost < parent.total_cost
    assert child.total_tokens == sum(line.tokens for line in shared)
    assert set(selectors.run_cost_breakdown(run=child)["by_turn"]) == {1, 2}
    assert set(MetricRecord.objects.filter(run=child).values_list("turn", flat=True)) == {1, 2}
    assert not Turn.objects.filter(run=child, turn__gt=2).exists() and not Decision.objects.filter(run=child, turn__gt=2).exists()
    state = load_run_state(child)
    assert state.turn == 2 and state.total_cost == pytest.approx(child.total_cost) and state.seed == parent.seed
    # The page's first state counts the copied ledger (its lines have no event of the child's).
    assert selectors.cost_breakdown_at(child, record_selectors.snapshot_seq(child))["calls"] == child.calls
    assert list(RunEvent.objects.filter(run=child).values_list("seq", "type")) == [(1, "state_saved")]

    folder = Path(child.output_dir)
    assert folder != Path(parent.output_dir) and folder.name == f"run-{child.number:03d}"
    assert (folder / "world-state-002.md").is_file() and not (folder / "world-state-003.md").exists()
    assert json.loads((folder / "state.json").read_text())["turn"] == 2

    child = play(child)
    assert child.status == RunStatus.COMPLETED and child.calls > shared.count()
    positions = list(CostRecord.objects.filter(run=child).values_list("position", flat=True))
    assert positions == list(range(len(positions))), "the child's own calls are booked after the copied ledger"
    assert RunEvent.objects.filter(run=child, type="scenario_resumed").count() == 1, "it continues, never starts afresh"
    assert (folder / "world-state-003.md").is_file()


# ---- each kind of intervention -----------------------------------------------------------------------------------
def test_models_goals_world_text_seed_credit_limit_and_end_turn_are_recorded_and_applied(calls, parent, owner):
    goals = ("Close the summit with no declaration at all", "Blame the industry delegations")
    world = "A blackout has hit Bergholm: the summit continues by candlelight in the old town hall."
    intervention = Intervention(
        actors={"meridian": ActorChange(model="openai/gpt-4o"), ACTOR: ActorChange(goals=goals)},
        world_state=world, seed=99, credit_limit=5.0, end_turn=4, note="every lever at once",
    )
    child = run_branch(run=parent, at_turn=1, intervention=intervention, owner=owner)

    seats = {seat["short_name"]: seat for seat in child.actors}
    assert seats["meridian"]["model"] == "openai/gpt-4o"
    assert next(a for a in child.snapshot["actors"] if a["short_name"] == "meridian")["llm_model"] == "openai/gpt-4o"
    assert (child.seed, child.credit_limit, child.max_turns) == (99, 5.0, 4)
    assert Turn.objects.get(run=child, turn=1).world_state == world
    assert Turn.objects.get(run=parent, turn=1).world_state != world
    recorded = child.intervention
    assert recorded["actors"] == {"meridian": {"model": "openai/gpt-4o"}, ACTOR: {"goals": list(goals)}}
    assert (recorded["world_state"], recorded["seed"], recorded["credit_limit"], recorded["end_turn"]) == (world, 99, 5.0, 4)
    assert recorded["before"]["actors"]["meridian"] == {"model": "meta-llama/llama-3.3-70b-instruct"}
    assert recorded["before"]["seed"] == 3 and recorded["before"]["credit_limit"] == parent.credit_limit == 2.0 and recorded["before"]["end_turn"] == 3
    assert recorded["before"]["world_state"] == Turn.objects.get(run=parent, turn=1).world_state
    changes = selectors.intervention_changes(recorded)
    assert "meridian: model meta-llama/llama-3.3-70b-instruct → openai/gpt-4o" in changes
    assert f"{ACTOR}: goals now {'; '.join(goals)}" in changes
    assert {"world text at the branch point rewritten", "seed 3 → 99", "credit limit $2 → $5", "end turn 3 → 4"} <= set(changes)

    child = play(child)
    assert child.status == RunStatus.COMPLETED and child.turn == 4
    requests = calls[child.pk].requests
    assert {r.seed for r in requests} == {99} and {r.seed for r in calls[parent.pk].requests} == {3}
    assert {r.model for r in actor_calls(calls[child.pk], "meridian")} == {"openai/gpt-4o"}
    assert set(Decision.objects.filter(run=child, actor="meridian", turn__gt=1).values_list("model", flat=True)) == {"openai/gpt-4o"}
    assert set(CostRecord.objects.filter(run=child, actor="meridian", turn__gt=1, task="decision").values_list("model", flat=True)) == {"openai/gpt-4o"}
    assert all("- Close the summit with no declaration at all\n- Blame the industry delegations" in system_prompt(r)
               for r in actor_calls(calls[child.pk], ACTOR))
    turn_two = [r for r in requests if r.purpose.turn == 2 and r.purpose.task in {"decision", "world_update"}]
    assert turn_two and all(world in r.prompt_text for r in turn_two), "turn 2 reads the rewritten world"


def test_seat_control_is_recorded_in_the_seats_the_scenario_and_the_state(parent, owner):
    child = run_branch(run=parent, at_turn=2, intervention=Intervention(actors={"meridian": ActorChange(control="human")}), owner=owner)
    assert {seat["short_name"]: seat["control"] for seat in child.actors}["meridian"] == "human"
    assert next(a for a in child.snapshot["actors"] if a["short_name"] == "meridian")["control"] == "human"
    assert load_run_state(child).actor("meridian").control == "human"
    assert selectors.intervention_changes(child.intervention) == ["meridian: seat human-controlled (was ai)"]
    assert all(seat["control"] == "ai" for seat in Run.objects.get(pk=parent.pk).actors)


def test_the_credit_limit_of_a_branch_counts_the_shared_ledger(calls, parent, owner):
    spent = sum(CostRecord.objects.filter(run=parent, turn__lte=1).values_list("cost", flat=True))
    with pytest.raises(services.RunInputError, match="more than that"):
        run_branch(run=parent, at_turn=1, intervention=Intervention(credit_limit=spent), owner=owner)
    child = play(run_branch(run=parent, at_turn=1, intervention=Intervention(credit_limit=spent + 2.5 * COST), owner=owner))
    assert child.status == RunStatus.HALTED and "credit limit" in child.halt_reason
    assert spent < child.total_cost <= spent + 2.5 * COST
    resumed = executor.run_execute(run_id=services.run_resume(run=child, credit_limit=1.0, enqueue=False).pk)
    assert resumed.status == RunStatus.COMPLETED


def test_branches_of_branches_form_one_family_tree(calls, parent, owner):
    first = play(run_branch(run=parent, at_turn=1, owner=owner, intervention=Intervention(seed=7, note="another draw")))
    second = run_branch(run=parent, at_turn=2, owner=owner)
    grandchild = run_branch(run=first, at_turn=2, owner=owner, intervention=Intervention(credit_limit=9.0))

    family = selectors.run_family(run=grandchild)
    assert [(m.run.pk, m.depth) for m in family] == [(parent.pk, 0), (first.pk, 1), (grandchild.pk, 2), (second.pk, 1)]
    assert [m.current for m in family] == [False, False, True, False]
    assert family[1].changes == ["seed 3 → 7"] and family[1].note == "another draw" and family[0].changes == []
    assert [m.run.pk for m in selectors.run_family(run=parent)] == [m.run.pk for m in family]
    # The grandchild shares the child's turns, which already differ from the parent's after turn 1.
    assert records(grandchild, Decision, 2) == records(first, Decision, 2)

    staff = User.objects.create_user("sam", password="pw", is_staff=True)
    theirs = run_branch(run=parent, at_turn=1, owner=staff)
    assert theirs.pk in [m.run.pk for m in selectors.run_family(run=parent, user=staff)]
    assert theirs.pk in [m.run.pk for m in selectors.run_family(run=parent, user=owner)], "the parent's owner steers it"
    RunRole.objects.filter(run=theirs, user=owner).delete()
    assert theirs.pk not in [m.run.pk for m in selectors.run_family(run=parent, user=owner)], "someone else's branch is not shown"


# ---- refusals ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("at_turn", [0, -1, 4, 100])
def test_a_turn_that_is_not_a_completed_turn_of_the_parent_is_refused(parent, owner, at_turn):
    with pytest.raises(services.RunInputError, match="completed turns 1 to 3"):
        run_branch(run=parent, at_turn=at_turn, owner=owner)
    assert Run.objects.count() == 1


def test_a_run_that_completed_no_turn_cannot_be_branched(owner):
    with pytest.raises(services.RunInputError, match="completed no turn"):
        run_branch(run=make_run(turns=2, owner=owner), at_turn=1, owner=owner)


@pytest.mark.parametrize(("intervention", "message"), [
    (Intervention(actors={"atlantis": ActorChange(model="x")}), "no actor 'atlantis'"),
    (Intervention(actors={ACTOR: ActorChange(control="robot")}), "control must be ai or human"),
    (Intervention(actors={ACTOR: ActorChange(model=" ")}), "model must not be empty"),
    (Intervention(actors={ACTOR: ActorChange(system_prompt="a\x00b")}), "NUL"),
    (Intervention(actors={ACTOR: ActorChange(goals=("",))}), "goals must not be empty"),
    (Intervention(world_state="  "), "world_state must not be empty"),
    (Intervention(end_turn=1), "end turn must be after the branch turn 1"),
    (Intervention(credit_limit=-2.0), "credit limit must be a positive number"),
    (Intervention(seed=2**64), "seed must be a whole number"),
])
def test_an_intervention_that_does_not_fit_is_refused_and_stores_nothing(parent, owner, intervention, message):
    with pytest.raises(services.RunInputError, match=message):
        run_branch(run=parent, at_turn=1, intervention=intervention, owner=owner)
    assert Run.objects.count() == 1


def test_a_branch_at_the_last_turn_needs_a_later_end_turn(calls, parent, owner):
    with pytest.raises(services.RunInputError, match="needs an end turn after it"):
        run_branch(run=parent, at_turn=3, owner=owner)
    longer = play(run_branch(run=parent, at_turn=3, intervention=Intervention(end_turn=4), owner=owner))
    assert longer.status == RunStatus.COMPLETED and longer.turn == 4


def test_a_parent_whose_frozen_scenario_no_longer_loads_is_a_conflict(parent, owner):
    Run.objects.filter(pk=parent.pk).update(snapshot={"config": {}, "actors": []})
    with pytest.raises(services.RunConflict, match="no longer loads"):
        run_branch(run=Run.objects.get(pk=parent.pk), at_turn=1, owner=owner)


def test_the_json_form_of_an_intervention_round_trips_and_refuses_unknown_keys():
    intervention = Intervention(actors={ACTOR: ActorChange(model="m", goals=("g",))}, seed=1, note="n")
    assert Intervention.from_json(intervention.to_json()) == intervention
    with pytest.raises(services.RunInputError, match="unknown key 'prompt'"):
        Intervention.from_json({"actors": {ACTOR: {"prompt": "x"}}})
    with pytest.raises(services.RunInputError, match="unknown key 'turns'"):
        Intervention.from_json({"turns": 3})


# ---- the API -------------------------------------------------------------------------------------------------------
def test_branch_over_the_api_and_read_the_lineage_and_family(parent, owner):
    body = {"at_turn": 1, "intervention": {"actors": {ACTOR: {"system_prompt": NEW_PROMPT}}, "note": "walk-out"}}
    response = api_client.post(f"/runs/{parent.pk}/branch", json=body, user=owner)
    assert response.status_code == 201, response.content
    made = response.json()
    child = Run.objects.get(pk=made["id"])
    assert (made["parent"], made["branch_turn"], made["status"], made["turn"]) == (parent.pk, 1, "paused", 1)
    assert made["intervention"]["actors"] == {ACTOR: {"system_prompt": NEW_PROMPT}} and made["intervention"]["note"] == "walk-out"
    assert child.owner == owner and made["calls"] == CostRecord.objects.filter(run=parent, turn__lte=1).count()

    got = api_client.get(f"/runs/{child.pk}", user=owner).json()
    assert (got["parent"], got["branch_turn"], got["intervention"]) == (parent.pk, 1, child.intervention)
    assert api_client.get(f"/runs/{parent.pk}", user=owner).json()["parent"] is None

    family = api_client.get(f"/runs/{child.pk}/family", user=owner).json()
    assert family["root"] == parent.pk
    assert [(r["id"], r["parent"], r["depth"], r["branch_turn"], r["current"]) for r in family["runs"]] == [
        (parent.pk, None, 0, None, False), (child.pk, parent.pk, 1, 1, True)]
    assert family["runs"][1]["changes"] == [f"{ACTOR}: system prompt rewritten"] and family["runs"][1]["note"] == "walk-out"

    started = api_client.post(f"/runs/{parent.pk}/branch", json={"at_turn": 2, "start": True}, user=owner)
    assert started.status_code == 201 and started.json()["status"] == "queued"


@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("other", 404), ("owner", 201), ("staff", 201)])
def test_who_may_branch_over_the_api(parent, owner, who, status):
    people = {"anonymous": None, "owner": owner, "other": User.objects.create_user("mallory", password="pw"),
              "staff": User.objects.create_user("sam", password="pw", is_staff=True)}
    user = people[who]
    response = api_client.post(f"/runs/{parent.pk}/branch", json={"at_turn": 1}, **({"user": user} if user else {}))
    assert response.status_code == status, response.content
    if status == 201:
        assert Run.objects.get(pk=response.json()["id"]).owner == user
    else:
        assert response.json()["code"] in {"unauthenticated", "not_found"} and Run.objects.count() == 1
    family = api_client.get(f"/runs/{parent.pk}/family", **({"user": user} if user else {}))
    assert family.status_code == {201: 200}.get(status, status)


def test_a_reader_who_may_not_change_the_run_is_forbidden_to_branch_it(parent, settings):
    settings.PUBLIC_READ = True
    other = User.objects.create_user("mallory", password="pw")
    assert api_client.get(f"/runs/{parent.pk}/family", user=other).status_code == 200
    response = api_client.post(f"/runs/{parent.pk}/branch", json={"at_turn": 1}, user=other)
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"at_turn": 7}, 400, "bad_request"),
    ({"at_turn": 1, "intervention": {"actors": {"atlantis": {"model": "x"}}}}, 400, "bad_request"),
    ({"at_turn": 1, "intervention": {"end_turn": 1000}, "start": False}, 201, None),
    ({"at_turn": 0}, 422, "invalid_request"),
    ({"at_turn": 1, "intervention": {"actors": {ACTOR: {"control": "robot"}}}}, 422, "invalid_request"),
    ({"at_turn": 1, "intervention": {"credit_limit": 0}}, 422, "invalid_request"),
    ({"at_turn": 1, "intervention": {"world_state": "a\x00b"}}, 422, "invalid_request"),
    ({}, 422, "invalid_request"),
])
def test_bad_branch_requests_get_the_error_shape(parent, owner, body, status, code):
    response = api_client.post(f"/runs/{parent.pk}/branch", json=body, user=owner)
    assert response.status_code == status, response.content
    if code:
        assert response.json()["code"] == code and response.json()["message"]


# ---- pages ---------------------------------------------------------------------------------------------------------
def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(run: Run, **changes) -> dict:
    """What a browser sends from the branch form as shown: every field at its initial value (CRLF in text)."""
    form = RunBranchForm(run=run)
    data = {name: str(field.initial).replace("\n", "\r\n") for name, field in form.fields.items()
            if field.initial is not None and name != "start"}
    data["at_turn"] = str(run.turn)
    data.update({key: value for key, value in changes.items() if value is not None})
    return data


def test_branch_from_the_run_page_and_see_the_family_tree(parent, owner):
    client = signed_in(owner)
    page = client.get(reverse("runs:detail", args=[parent.pk])).content.decode()
    assert 'id="branch-form"' in page and f'action="{reverse("runs:branch", args=[parent.pk])}"' in page
    assert 'id="family-run-' not in page, "no tree before the first branch"

    data = form_data(parent, at_turn="1", note="walk-out", **{f"{ACTOR}-system_prompt": NEW_PROMPT})
    response = client.post(reverse("runs:branch", args=[parent.pk]), data)
    child = Run.objects.get(parent=parent)
    assert response.status_code == 302 and response.url == reverse("runs:detail", args=[child.pk])
    assert child.status == RunStatus.PAUSED and child.branch_turn == 1 and child.owner == owner
    assert child.intervention["actors"] == {ACTOR: {"system_prompt": NEW_PROMPT}}, "only what was changed is recorded"
    assert set(child.intervention) == {"actors", "note", "before"}

    html = client.get(reverse("runs:detail", args=[child.pk])).content.decode()
    assert 'id="branched-from"' in html and f'href="{reverse("runs:detail", args=[parent.pk])}"' in html
    assert f'id="family-run-{parent.pk}"' in html and f'id="family-run-{child.pk}"' in html
    assert f"{ACTOR}: system prompt rewritten" in html and "walk-out" in html and "from turn 1" in html
    assert f'href="{reverse("runs:detail", args=[child.pk])}"' in client.get(reverse("runs:detail", args=[parent.pk])).content.decode()


def test_the_page_form_can_start_the_branch_and_reports_what_it_refuses(parent, owner):
    client = signed_in(owner)
    client.post(reverse("runs:branch", args=[parent.pk]), form_data(parent, at_turn="2", start="on"))
    assert Run.objects.get(parent=parent).status == RunStatus.QUEUED

    refused = client.post(reverse("runs:branch", args=[parent.pk]), form_data(parent, at_turn="3"), follow=True)
    assert "needs an end turn after it" in refused.content.decode()
    refused = client.post(reverse("runs:branch", args=[parent.pk]), form_data(parent, at_turn="9"), follow=True)
    assert "could not branch" in refused.content.decode()
    assert Run.objects.filter(parent=parent).count() == 1


def test_someone_elses_run_cannot_be_branched_from_the_pages(parent, owner):
    other = User.objects.create_user("mallory", password="pw")
    assert signed_in(other).post(reverse("runs:branch", args=[parent.pk]), form_data(parent)).status_code == 404
    anonymous = Client().post(reverse("runs:branch", args=[parent.pk]), form_data(parent))
    assert anonymous.status_code == 302 and "login" in anonymous.url
    assert signed_in(owner).get(reverse("runs:branch", args=[parent.pk])).status_code == 405
    staff = User.objects.create_user("sam", password="pw", is_staff=True)
    assert signed_in(staff).post(reverse("runs:branch", args=[parent.pk]), form_data(parent, at_turn="1")).status_code == 302
    assert Run.objects.get(parent=parent).owner == staff
    assert Run.objects.count() == 2


# ---- the admin -----------------------------------------------------------------------------------------------------
def test_the_admin_branches_a_run_and_shows_the_lineage(parent):
    admin = User.objects.create_superuser("admin", "admin@example.org", "pw")
    client = signed_in(admin)
    change = client.get(reverse("admin:runs_run_change", args=[parent.pk])).content.decode()
    assert reverse("admin:runs_run_branch", args=[parent.pk]) in change

    page = client.get(reverse("admin:runs_run_branch", args=[parent.pk]))
    assert page.status_code == 200 and f"{ACTOR}-system_prompt" in page.content.decode()
    response = client.post(reverse("admin:runs_run_branch", args=[parent.pk]),
                           form_data(parent, at_turn="2", **{"meridian-model": "openai/gpt-4o"}))
    child = Run.objects.get(parent=parent)
    assert response.status_code == 302 and response.url == reverse("admin:runs_run_change", args=[child.pk])
    assert child.owner == admin and child.intervention["actors"] == {"meridian": {"model": "openai/gpt-4o"}}
    lineage = client.get(reverse("admin:runs_run_change", args=[child.pk])).content.decode()
    assert "branched from" in lineage and "meridian: model meta-llama/llama-3.3-70b-instruct → openai/gpt-4o" in lineage

    refused = client.post(reverse("admin:runs_run_branch", args=[parent.pk]), form_data(parent, at_turn="3"))
    assert refused.status_code == 200 and "needs an end turn after it" in refused.content.decode()
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    assert signed_in(viewer).get(reverse("admin:runs_run_branch", args=[parent.pk])).status_code == 403
