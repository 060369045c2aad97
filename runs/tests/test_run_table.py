"""The run table: filters and sorts (the page and the API agree), tags and notes (page, API, admin), compare
what is shown."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from ninja.testing import TestClient

from batches.tests.factories import start_batch
from runs import services
from runs.models import Run, RunRole, RunTag
from runs.tests.factories import make_run
from scenariolab_site.api import api as site_api

pytestmark = pytest.mark.django_db(databases="__all__")
api = TestClient(site_api)


@pytest.fixture
def table():
    owner = User.objects.create_user("owner", password="pw")
    cheap = make_run(turns=1, owner=owner)
    dear = make_run(turns=1, owner=owner, model="mistralai/mistral-large")
    Run.objects.filter(pk=dear.pk).update(total_cost=2.5, status="completed")
    services.run_annotate(run=cheap, tags=["baseline", "pilot-2"], notes="The first try.")
    batch = start_batch(owner=owner)
    branch = make_run(turns=1, owner=owner)
    Run.objects.filter(pk=branch.pk).update(parent=cheap, branch_turn=1)
    return {"owner": owner, "cheap": cheap, "dear": dear, "batch": batch, "branch": branch}


def listed(user, **query) -> list[int]:
    return [run["id"] for run in api.get("/runs/", user=user, query_params=query).json()["items"]]


def page_ids(client: Client, query: str) -> list[int]:
    return [row["run"].pk for row in client.get(f"/runs/?{query}").context["rows"]]


def test_each_filter_and_sort_narrows_the_page_and_the_api_alike(table):
    owner, cheap, dear, batch, branch = (table[k] for k in ("owner", "cheap", "dear", "batch", "branch"))
    batch_runs = set(Run.objects.filter(batch_run__batch=batch).values_list("pk", flat=True))
    client = Client()
    client.force_login(owner)
    cases = {
        "tag=baseline": {cheap.pk},
        "model=mistralai/mistral-large": {dear.pk},
        "status=completed": {dear.pk},
        f"batch={batch.pk}": batch_runs,
        f"family={branch.pk}": {cheap.pk, branch.pk},
        "scenario=ai-summit&tag=pilot-2": {cheap.pk},
        # Exactly that model: a seat playing openai/gpt-4o-mini is not one playing openai/gpt-4o.
        "model=openai/gpt-4o": {run.pk for run in Run.objects.all() if "openai/gpt-4o" in {a["model"] for a in run.actors}},
    }
    for query, expected in cases.items():
        params = dict(part.split("=", 1) for part in query.split("&"))
        assert set(listed(owner, **params)) == expected, query
        assert set(page_ids(client, query)) == expected, query
    assert listed(owner, sort="cost")[0] == dear.pk and page_ids(client, "sort=cost")[0] == dear.pk
    assert listed(owner, sort="oldest")[0] == cheap.pk
    bad = client.get("/runs/?batch=soon&tag=baseline")
    assert "not understood" in bad.content.decode() and {r["run"].pk for r in bad.context["rows"]} == {cheap.pk}
    stranger = User.objects.create_user("stranger", password="pw")
    assert listed(stranger, tag="baseline") == [] and listed(stranger, family=branch.pk) == []


def test_tags_and_notes_are_set_by_whoever_steers_and_shown_to_readers(table):
    owner, cheap = table["owner"], table["cheap"]
    player = User.objects.create_user("player", password="pw")
    RunRole.objects.create(run=cheap, user=player, role="player", seats=["norvale"])
    changed = api.patch(f"/runs/{cheap.pk}", json={"tags": ["pilot-3", " baseline ", "pilot-3"], "notes": "Second look."}, user=owner)
    assert changed.status_code == 200 and changed.json()["tags"] == ["baseline", "pilot-3"]
    assert changed.json()["notes"] == "Second look."
    assert api.patch(f"/runs/{cheap.pk}", json={"notes": "mine"}, user=player).status_code == 403
    too_long = api.patch(f"/runs/{cheap.pk}", json={"tags": ["x" * 65]}, user=owner)
    assert too_long.status_code in (400, 422)
    assert sorted(RunTag.objects.filter(run=cheap).values_list("name", flat=True)) == ["baseline", "pilot-3"]

    client = Client()
    client.force_login(owner)
    client.post(f"/runs/{cheap.pk}/notes/", {"tags": "final, baseline", "notes": "Read by the team."})
    cheap.refresh_from_db()
    assert sorted(t.name for t in cheap.tags.all()) == ["baseline", "final"] and cheap.notes == "Read by the team."
    reader = Client()
    reader.force_login(player)
    page = reader.get(f"/runs/{cheap.pk}/").content.decode()
    assert "Read by the team." not in page, "a player's view: the notes may hold other actors' secrets"
    assert ">final</a>" in page and 'id="notes-form"' not in page
    assert api.get(f"/runs/{cheap.pk}", user=player).json()["notes"] == ""
    assert api.get(f"/runs/{cheap.pk}", user=owner).json()["notes"] == "Read by the team."
    assert reader.post(f"/runs/{cheap.pk}/notes/", {"tags": "mine", "notes": ""}).status_code == 403


def test_the_table_offers_to_compare_the_runs_shown(table):
    client = Client()
    client.force_login(table["owner"])
    page = client.get("/runs/?tag=baseline")
    assert page.context["compare_shown"] == "", "one run: nothing to compare"
    everything = client.get("/runs/").content.decode()
    assert 'id="compare-shown"' in everything and "/runs/compare/?ids=" in everything


def test_the_family_tree_a_page_is_sent_live_is_its_readers(table):
    from runs.live import stored_status
    from runs.reading import reader_of

    cheap, branch = table["cheap"], table["branch"]
    branch.refresh_from_db()
    player = User.objects.create_user("player", password="pw")
    RunRole.objects.create(run=branch, user=player, role="player", seats=["norvale"])
    panels = "".join(p["html"] for p in stored_status(branch, reader_of(branch, player), player)["panels"])
    assert f"/runs/{cheap.pk}/" not in panels, "the parent is not theirs to see"
    owner_panels = "".join(p["html"] for p in stored_status(branch, reader_of(branch, table["owner"]), table["owner"])["panels"])
    assert f"/runs/{cheap.pk}/" in owner_panels
