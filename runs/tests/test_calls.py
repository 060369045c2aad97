"""A run's model calls as the site keeps them: stored once with their texts, slim in the event stream, listed and
filtered on a page and in the API for the full view only, linked from what each call made."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client

from engine.testing.fake_llm import FakeLLMServer
from runs.execution import executor
from runs.models import CostRecord, ModelCall, RunEvent, RunRole, RunStatus
from runs.tests.factories import make_run

pytestmark = pytest.mark.django_db(databases="__all__")


def person(name: str) -> User:
    return User.objects.create_user(f"{name}-{uuid.uuid4().hex[:6]}", password="pw")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def served(monkeypatch):
    server = FakeLLMServer(record=True).start_in_thread()
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", server.base_url)
    yield server
    server.stop()


def test_every_call_is_stored_once_with_what_the_server_received_and_the_events_stay_slim(served):
    owner = person("owner")
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, use_cache=False).pk)
    assert run.status == RunStatus.COMPLETED and not run.offline
    calls = list(ModelCall.objects.filter(run=run))
    assert len(calls) == CostRecord.objects.filter(run=run).count() == run.calls == len(served.billed)
    assert sorted(str(c.messages) for c in calls) == sorted(str(b["messages"]) for b in served.billed)
    assert sum(c.input_tokens for c in calls) == served.stats["prompt_tokens"]
    events = {e.seq: e for e in RunEvent.objects.filter(run=run, type="model_called")}
    assert set(events) == {c.seq for c in calls}, "each call has its event"
    for event in events.values():
        assert not {"request", "answer", "parsed"} & set(event.data), "the stream carries no prompt or answer"
        assert event.data["task"] and event.data["outcome"] == "used"


def test_the_api_lists_filters_and_shows_calls_to_the_full_view_only(served):
    owner, player, observer = person("owner"), person("player"), person("observer")
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner, use_cache=False).pk)
    RunRole.objects.create(run=run, user=player, role="player", seats=["norvale"])
    RunRole.objects.create(run=run, user=observer, role="observer", view="full")
    for reader in (owner, observer):
        listed = signed_in(reader).get(f"/api/runs/{run.pk}/calls?limit=50").json()
        assert listed["count"] == run.calls
    decided = signed_in(owner).get(f"/api/runs/{run.pk}/calls?turn=1&task=decision&actor=norvale").json()
    assert decided["count"] == 1
    call = decided["items"][0]
    assert call["actor"] == "norvale" and call["messages"][0]["role"] == "system" and call["parsed"]["action"]
    assert call["answer"] in [b["answer"] for b in served.billed]
    one = signed_in(owner).get(f"/api/runs/{run.pk}/calls/{call['seq']}").json()
    assert one == call
    world = signed_in(owner).get(f"/api/runs/{run.pk}/calls?actor=world&task=world_update").json()
    assert world["count"] == 1 and world["items"][0]["actor"] is None
    assert signed_in(owner).get(f"/api/runs/{run.pk}/calls/{call['seq'] + 100000}").status_code == 404
    assert signed_in(owner).get(f"/api/runs/{run.pk}/calls?turn=-1").status_code == 422

    refused = signed_in(player).get(f"/api/runs/{run.pk}/calls")
    assert refused.status_code == 403 and "full view" in refused.json()["message"]
    assert signed_in(player).get(f"/runs/{run.pk}/calls/").status_code == 403
    events = signed_in(player).get(f"/api/runs/{run.pk}/events?limit=1000").json()["events"]
    assert not [e for e in events if e["type"] == "model_called"], "a player's stream hides the calls"
    assert signed_in(person("stranger")).get(f"/api/runs/{run.pk}/calls").status_code == 404


def test_show_the_call_leads_from_a_decision_to_its_prompt_and_answer():
    owner, player = person("owner"), person("player")
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner).pk)  # offline: its calls are traced too
    RunRole.objects.create(run=run, user=player, role="player", seats=["norvale"])
    page = signed_in(owner).get(f"/runs/{run.pk}/").content.decode()
    link = 'href="calls/?turn=1&amp;task=decision&amp;actor=norvale"'
    assert link in page and 'href="calls/?turn=1&amp;task=world_update"' in page
    assert "show the call" not in signed_in(player).get(f"/runs/{run.pk}/").content.decode()

    call = ModelCall.objects.get(run=run, turn=1, task="decision", actor="norvale")
    shown = signed_in(owner).get(f"/runs/{run.pk}/calls/?turn=1&task=decision&actor=norvale")
    assert shown.status_code == 200 and shown.context["page"].paginator.count == 1
    body = shown.content.decode()
    from django.utils.html import escape

    assert escape(call.messages[-1]["content"][:200]) in body and escape(call.answer[:200]) in body
    bad = signed_in(owner).get(f"/runs/{run.pk}/calls/?turn=soon&task=nonsense")
    assert bad.status_code == 200 and "not understood" in bad.content.decode()
    assert bad.context["page"].paginator.count == run.calls, "filters it cannot read are not applied"
    partly = signed_in(owner).get(f"/runs/{run.pk}/calls/?turn=1&task=decision&actor=nobody")
    assert partly.context["page"].paginator.count == len(run.actors), "the filters it can read are"


def test_texts_past_the_limit_are_cut_and_tracing_can_be_turned_off(settings):
    settings.CALL_TRACE_MAX_CHARS = 40
    cut = executor.run_execute(run_id=make_run(turns=1).pk)
    calls = list(ModelCall.objects.filter(run=cut))
    assert calls and all(c.truncated for c in calls if any(len(m["content"]) >= 40 for m in c.messages))
    assert max(len(m["content"]) for c in calls for m in c.messages) == 40

    settings.CALL_TRACES = False
    untraced = executor.run_execute(run_id=make_run(turns=1).pk)
    assert untraced.calls and not ModelCall.objects.filter(run=untraced).exists()
    assert not RunEvent.objects.filter(run=untraced, type="model_called").exists()


def test_traces_of_runs_finished_long_enough_ago_are_pruned_and_their_ledger_stays(settings):
    from datetime import timedelta

    from django.utils import timezone

    from runs import services

    old, recent = (executor.run_execute(run_id=make_run(turns=1).pk) for _ in range(2))
    type(old).objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=31))
    settings.CALL_TRACE_DAYS = 0
    assert services.calls_prune() == 0, "0: kept as long as their run"
    settings.CALL_TRACE_DAYS = 30
    assert services.calls_prune() == old.calls
    assert not ModelCall.objects.filter(run=old).exists() and ModelCall.objects.filter(run=recent).count() == recent.calls
    assert CostRecord.objects.filter(run=old).count() == old.calls, "the ledger is kept"
