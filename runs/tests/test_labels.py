"""An offline run never names a model as if it had been called: "offline (stands in for …)" wherever a model is named."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from engine.llm.offline import played_by
from runs.execution import executor
from runs.models import ModelCall
from runs.tests.factories import make_run
from scenarios.services import scenario_import_library

pytestmark = pytest.mark.django_db(databases="__all__")


def test_played_by_names_what_answered():
    assert played_by("openai/gpt-4o", "offline") == "offline (stands in for openai/gpt-4o)"
    assert played_by("openai/gpt-4o", "openrouter") == "openai/gpt-4o"


def test_every_page_of_an_offline_run_says_offline_where_it_names_a_model():
    owner = User.objects.create_user("owner", password="pw")
    run = executor.run_execute(run_id=make_run(turns=1, owner=owner).pk)
    other = executor.run_execute(run_id=make_run(turns=1, owner=owner).pk)
    client = Client()
    client.force_login(owner)
    models = {seat["model"] for seat in run.actors}
    pages = {url: client.get(url).content.decode() for url in (
        f"/runs/{run.pk}/", f"/runs/{run.pk}/calls/", f"/runs/compare/?ids={run.pk}&ids={other.pk}&turn=1")}
    for url, html in pages.items():
        bare = [m for m in models if re.search(rf'class="model">\s*{re.escape(m)}\s*<', html)]
        assert not bare, f"{url} names {bare} as if called"
    assert 'decides <span class="model">offline (stands in for ' in pages[f"/runs/{run.pk}/"]
    assert "offline (stands in for " in pages[f"/runs/{run.pk}/calls/"]
    assert ModelCall.objects.filter(run=run).exists()


def test_the_start_form_of_an_offline_run_shows_what_it_would_cost_at_list_prices():
    scenario_import_library()
    user = User.objects.create_user("reader", password="pw")
    client = Client()
    client.force_login(user)
    html = client.get("/scenarios/ai-summit/").content.decode()
    assert 'id="list-prices"' in html and "With these models called, at list prices: $" in html
