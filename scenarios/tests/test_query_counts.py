"""Query counts of the scenario pages and the scenarios API: the same for a scenario of 2 actors as for one of
5, and for a list of 1 scenario as for one of 5 (no query per actor, document or scenario), under a ceiling."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from engine import Scenario as EngineScenario
from runs.tests.factories import summit_config
from runs.tests.querycount import assert_flat, measure
from scenarios.models import Scenario
from scenarios.services import scenario_from_engine

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(client) -> User:
    user = User.objects.create_user("person", password="pw")
    client.force_login(user)
    return user


def stored(slug: str, actors: int, documents: int = 1) -> Scenario:
    """The summit with its first `actors` actors and `documents` background documents, stored as `slug`."""
    summit = summit_config().model_dump()
    background = (summit["background"] * documents)[:documents]
    background = [{**doc, "name": f"doc-{i}.md"} for i, doc in enumerate(background)]
    listed = {**summit["config"], "actors": summit["config"]["actors"][:actors]}
    config = EngineScenario.model_validate({**summit, "config": listed, "actors": summit["actors"][:actors],
                                            "background": background})
    return scenario_from_engine(config=config, slug=slug)


def _urls(slug: str) -> list[str]:
    return [reverse("scenarios:detail", args=[slug]), f"/api/scenarios/{slug}", f"/api/scenarios/{slug}/estimate",
            f"/api/scenarios/{slug}/export"]


def test_a_scenario_with_more_actors_and_documents_costs_no_more_queries(client, person):
    small, large = stored("small", actors=2, documents=1), stored("large", actors=5, documents=3)
    assert large.actors.count() > small.actors.count() and large.background_documents.count() == 3
    failures = []
    # The page asks the person's permissions once (whether to offer Duplicate): two queries, whatever the size.
    for small_url, large_url, ceiling in zip(_urls(small.slug), _urls(large.slug), [7, 5, 5, 5], strict=True):
        try:
            assert_flat(measure(client.get, small_url), measure(client.get, large_url), ceiling=ceiling)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures)


def test_listing_more_scenarios_costs_no_more_queries(client, person):
    stored("first", actors=2)
    urls = [reverse("scenarios:list"), "/api/scenarios/", "/api/scenarios/?limit=2&offset=1"]
    before = [measure(client.get, url) for url in urls]
    for i in range(4):
        stored(f"more-{i}", actors=5, documents=2)
    # The list asks the person's permissions once (whether to offer New scenario): two queries.
    for small, url, ceiling in zip(before, urls, [5, 4, 4], strict=True):
        assert_flat(small, measure(client.get, url), ceiling=ceiling)
