"""Fired outside events on the Django side: the turns and events API, the run page and its live fragment."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from ninja.testing import TestClient

from engine import EventType
from engine.scenario.schema import ScheduledEvent
from runs.reading import EVERYTHING
from runs.execution import executor
from runs.live import event_fragments
from runs.models import RunEvent
from runs.tests.factories import make_run, summit_config
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db
client = TestClient(api)

STRIKE = {"name": "Port strike", "schedule": {"turns": [2]},
          "effect": "Dockworkers in Bergholm strike; delegations' <b>equipment</b> is stuck at the port."}


@pytest.fixture
def owner():
    return User.objects.create_user("owner", password="pw")


@pytest.fixture
def played(owner):
    """A completed two-turn offline run of the summit with a strike scheduled for turn 2."""
    scenario = summit_config()
    scenario.exogenous_events.scheduled_events.append(ScheduledEvent.model_validate(STRIKE))
    return executor.run_execute(run_id=make_run(scenario, turns=2, owner=owner).pk)


def test_the_turns_api_lists_each_turns_fired_events(played, owner):
    turns = {t["turn"]: t for t in client.get(f"/runs/{played.pk}/turns", user=owner).json()}
    assert turns[0]["exogenous_events"] == []
    assert {"name": "Port strike", "kind": "scheduled", "text": STRIKE["effect"]} in turns[2]["exogenous_events"]
    assert "Port strike" not in [e["name"] for e in turns[1]["exogenous_events"]]


def test_the_events_api_has_one_exogenous_event_per_fired_event(played, owner):
    events = client.get(f"/runs/{played.pk}/events?limit=1000", user=owner).json()["events"]
    fired = [e["data"] for e in events if e["type"] == EventType.EXOGENOUS_EVENT]
    assert {"turn": 2, "name": "Port strike", "kind": "scheduled", "text": STRIKE["effect"]} in fired
    turns = {t["turn"]: t for t in client.get(f"/runs/{played.pk}/turns", user=owner).json()}
    assert [(e["turn"], e["name"], e["kind"]) for e in fired] == [
        (turn, e["name"], e["kind"]) for turn in sorted(turns) for e in turns[turn]["exogenous_events"]]
    # announced before the world they shaped
    strike = next(e for e in events if e["type"] == EventType.EXOGENOUS_EVENT and e["data"]["name"] == "Port strike")
    world = next(e for e in events if e["type"] == EventType.WORLD_STATE_UPDATED and e["data"]["turn"] == 2)
    assert strike["seq"] < world["seq"]


def test_the_run_page_shows_fired_events_in_their_turn(client, played, owner):
    client.force_login(owner)
    html = client.get(reverse("runs:detail", args=[played.pk])).content.decode()
    turn_two = html[html.index('id="turn-2"'):]
    assert 'id="turn-2-outside-events"' in turn_two
    assert 'id="outside-event-2-scheduled-port-strike"' in turn_two
    assert "Outside event: Port strike" in turn_two
    assert "Dockworkers in Bergholm strike" in turn_two


def test_the_live_feed_gets_the_event_as_a_fragment_of_its_turn(played):
    stored = RunEvent.objects.filter(run=played, type=EventType.EXOGENOUS_EVENT, data__name="Port strike").get()
    message = event_fragments({"seq": stored.seq, "type": stored.type, "data": stored.data}, run_id=1, names={}, max_turns=2, reader=EVERYTHING)
    section, fragment = message["fragments"]
    assert section["target"] == "#feed" and section["mode"] == "ensure" and 'id="turn-2-outside-events"' in section["html"]
    assert fragment["target"] == "#turn-2-outside-events" and fragment["mode"] == "upsert"
    assert 'id="outside-event-2-scheduled-port-strike"' in fragment["html"]
    assert "Dockworkers in Bergholm strike" in fragment["html"]
    assert "<b>" not in fragment["html"], "event text goes through the markdown filter: raw HTML is escaped"
