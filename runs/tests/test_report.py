"""The after-action report: one HTML file with the world at each turn, negotiations, decisions, metrics charts and
costs, requesting nothing else, as the reader may know the run."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils.html import escape

from runs.execution import executor
from runs.models import Decision, RunRole, Turn
from runs.tests.factories import make_run

pytestmark = pytest.mark.django_db(databases="__all__")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_report_holds_the_whole_run_in_one_file_that_asks_for_nothing_else():
    owner = User.objects.create_user("owner", password="pw")
    run = executor.run_execute(run_id=make_run(turns=2, owner=owner).pk)
    response = signed_in(owner).get(f"/runs/{run.pk}/report.html?download=1")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    html = response.content.decode()
    for turn in Turn.objects.filter(run=run).exclude(turn=0):
        assert f'id="turn-{turn.turn}"' in html
    for decision in Decision.objects.filter(run=run):
        assert escape(decision.action.split("\n")[0][:60]) in html
    assert html.count("<svg") >= 1 and "<h3>Negotiations</h3>" in html and 'id="costs"' in html
    # Nothing to fetch: no script, no stylesheet, no image, no frame, no font; links only.
    assert not re.search(r"<script|<link|<img|<iframe|src=|url\(|@import", html, re.I)
    assert "offline provider" in html and "@media print" in html


def test_a_players_report_is_their_view():
    owner, player = User.objects.create_user("owner", password="pw"), User.objects.create_user("player", password="pw")
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner).pk)
    RunRole.objects.create(run=run, user=player, role="player", seats=["norvale"])
    everything = signed_in(owner).get(f"/runs/{run.pk}/report.html").content.decode()
    theirs = signed_in(player).get(f"/runs/{run.pk}/report.html").content.decode()
    assert everything.count("Reasoning:") == Decision.objects.filter(run=run).count()
    assert theirs.count("Reasoning:") == 1, "their own actor's reasoning only"
    assert "what Government of Norvale" in theirs
    assert signed_in(User.objects.create_user("stranger", password="pw")).get(f"/runs/{run.pk}/report.html").status_code == 404
