"""Searching a run's messages, decisions and worlds: hits link to the run page, and a reader finds only what
their view shows."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from ninja.testing import TestClient

from runs.execution import executor
from runs.models import Communication, Decision, RunRole, Turn
from runs.tests.factories import make_run
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db(databases="__all__")
client = TestClient(api)


@pytest.fixture
def played():
    owner, player = User.objects.create_user("owner", password="pw"), User.objects.create_user("player", password="pw")
    run = executor.run_execute(run_id=make_run(turns=2, owner=owner).pk)
    RunRole.objects.create(run=run, user=player, role="player", seats=["norvale"])
    # Words only one record holds, so each search finds exactly it.
    Decision.objects.filter(run=run, turn=2, actor="meridian").update(action="We open the Quillfeather archive.",
                                                                      reasoning="Zebrawood is our hidden aim.")
    Turn.objects.filter(run=run, turn=1).update(world_state="The delegates tour Marrowgate harbour.")
    secret = Communication.objects.filter(run=run).exclude(kind="public").exclude(sender="norvale").exclude(recipients__icontains="norvale").first()
    Communication.objects.filter(pk=secret.pk).update(content="Let us meet at Thistledown.")
    return run, owner, player


def hits(user, run, q) -> list[dict]:
    return client.get(f"/runs/{run.pk}/search", user=user, query_params={"q": q}).json()


def test_each_kind_is_found_and_linked_to_its_place_on_the_page(played):
    run, owner, _ = played
    assert [(h["kind"], h["turn"], h["anchor"]) for h in hits(owner, run, "quillfeather")] == [("decision", 2, "decision-2-meridian")]
    assert [(h["kind"], h["anchor"]) for h in hits(owner, run, "Marrowgate")] == [("world", "world-1")]
    found = hits(owner, run, "thistledown")
    assert len(found) == 1 and found[0]["kind"] == "message" and found[0]["match"] == "Thistledown"
    assert [h["kind"] for h in hits(owner, run, "zebrawood")] == ["decision"], "the reasoning too, in the full view"
    page = Client()
    page.force_login(owner)
    html = page.get(f"/runs/{run.pk}/search/?q=Quillfeather").content.decode()
    assert f'href="/runs/{run.pk}/#decision-2-meridian"' in html and "<mark>Quillfeather</mark>" in html
    assert 'action="/runs/%d/search/"' % run.pk in page.get(f"/runs/{run.pk}/").content.decode()


def test_a_player_finds_only_what_their_view_shows(played):
    run, _, player = played
    assert [h["kind"] for h in hits(player, run, "quillfeather")] == ["decision"], "every actor's action is known"
    assert hits(player, run, "zebrawood") == [], "another actor's reasoning is not"
    assert hits(player, run, "thistledown") == [], "nor a talk norvale was not part of"
    assert client.get(f"/runs/{run.pk}/search", user=player).json() == [], "no words, no hits"


def test_the_feed_shows_one_actor_or_one_turn_and_threads_replies_under_their_openings(played):
    run, owner, _ = played
    page = Client()
    page.force_login(owner)
    html = page.get(f"/runs/{run.pk}/?actor=norvale&turn=2").content.decode()
    assert 'id="decision-2-norvale" data-actor="norvale">' in html
    assert 'id="decision-2-meridian" data-actor="meridian" hidden>' in html
    assert 'data-turn="1" hidden>' in html and 'data-turn="2">' in html
    everything = page.get(f"/runs/{run.pk}/").content.decode()
    for reply in Communication.objects.filter(run=run, turn=1).exclude(in_reply_to=""):
        opening_at = everything.index(f'id="message-{reply.in_reply_to}"')
        reply_at = everything.index(f'id="message-{reply.message_id}"')
        between = everything[opening_at:reply_at]
        others = [m for m in Communication.objects.filter(run=run, turn=1, in_reply_to="")
                  if m.message_id != reply.in_reply_to and f'id="message-{m.message_id}"' in between]
        assert opening_at < reply_at and not others, "a reply sits under its own opening"
