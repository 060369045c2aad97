"""Scenario pages and the site around them: layout, sign-in, the list, and the detail page's start form."""

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.models import Run, RunStatus
from scenarios.models import Scenario
from scenarios.tests.factories import make_actor, make_scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(client):
    user = User.objects.create_user("olga", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def scenario():
    scenario = make_scenario(
        actors=2, name="Harbour Dispute", description="Two towns argue over a harbour.",
        initial_world_state="## The bay\n\nThe harbour is **silted up**.<script>alert(1)</script>\n", turns=3,
    )
    make_actor(scenario=scenario, position=2, name="Mayor", short_name="mayor", control="human",
               llm_model="openai/gpt-4o-mini", goals=["Win the election"], constraints=["No new taxes"])
    return scenario


def detail_url(scenario) -> str:
    return reverse("scenarios:detail", args=[scenario.slug])


# ---- the site ----------------------------------------------------------------------------------------------
def test_the_home_page_is_the_scenario_list(client):
    response = client.get("/")
    assert response.status_code == 302 and response.url == reverse("scenarios:list")


def test_every_page_needs_sign_in(client, scenario):
    for url in (reverse("scenarios:list"), detail_url(scenario)):
        response = client.get(url)
        assert response.status_code == 302 and response.url == f"{reverse('login')}?next={url}"


def test_sign_in_and_out(client):
    User.objects.create_user("olga", password="correct horse")
    page = client.get(reverse("login"))
    assert page.status_code == 200 and 'name="username"' in page.content.decode()

    refused = client.post(reverse("login"), {"username": "olga", "password": "wrong"})
    assert refused.status_code == 200 and 'role="alert"' in refused.content.decode()

    signed_in = client.post(reverse("login"), {"username": "olga", "password": "correct horse", "next": "/runs/"})
    assert signed_in.status_code == 302 and signed_in.url == "/runs/"
    assert "Signed in as <strong>olga</strong>" in client.get(reverse("scenarios:list")).content.decode()

    assert client.get(reverse("logout")).status_code == 405, "signing out is a POST (a link could sign people out)"
    signed_out = client.post(reverse("logout"))
    assert signed_out.status_code == 302 and signed_out.url == reverse("login")
    assert client.get(reverse("scenarios:list")).status_code == 302


def test_the_layout_has_a_skip_link_landmarks_navigation_and_one_stylesheet(client, person):
    html = client.get(reverse("scenarios:list")).content.decode()
    assert '<a class="skip-link" href="#main">' in html and '<main id="main"' in html
    assert '<nav class="site-nav" aria-label="Main">' in html and "<header" in html and "<footer" in html
    assert f'href="{reverse("runs:list")}"' in html and 'aria-current="page"' in html
    assert html.count('rel="stylesheet"') == 1 and "/static/css/site.css" in html
    assert "http://" not in html and "https://" not in html, "nothing from a CDN"


def test_the_stylesheet_and_chart_js_are_served_from_static(client):
    from django.contrib.staticfiles import finders

    css = open(finders.find("css/site.css")).read()
    for status in ("queued", "running", "paused", "halted", "cancelled", "completed", "failed", "crashed"):
        assert f".status-{status} " in css
    assert ".progress {" in css and ".offline-badge {" in css and ":focus-visible" in css
    assert "Chart.js v4" in open(finders.find("vendor/chart.js/chart.umd.min.js")).read(300)
    assert finders.find("vendor/chart.js/LICENSE.md")


# ---- the list ----------------------------------------------------------------------------------------------
def test_the_list_shows_name_description_actor_count_and_turns(client, person, scenario):
    html = client.get(reverse("scenarios:list")).content.decode()
    assert f'<a href="{detail_url(scenario)}">Harbour Dispute</a>' in html
    assert "Two towns argue over a harbour." in html
    assert '<td class="number">3</td>' in html  # three actors, three turns


def test_an_empty_list_says_how_to_import(client, person):
    assert "manage.py import_scenarios" in client.get(reverse("scenarios:list")).content.decode()


# ---- the detail page ---------------------------------------------------------------------------------------
def test_the_detail_shows_the_world_as_markdown_and_the_actors(client, person, scenario):
    page = client.get(detail_url(scenario))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<h2>The bay</h2>" in html and "<strong>silted up</strong>" in html
    assert "<script>alert(1)</script>" not in html
    assert "Mayor" in html and "openai/gpt-4o-mini" in html and "Human" in html
    assert "Win the election" in html and "No new taxes" in html and "Reopen the harbour" in html


def test_an_unknown_scenario_is_404(client, person):
    assert client.get(reverse("scenarios:detail", args=["no-such-thing"])).status_code == 404


def test_the_estimate_is_shown_before_anything_starts(client, person, scenario):
    page = client.get(detail_url(scenario))
    html = page.content.decode()
    assert page.context["plan"] is not None
    assert "Estimated cost for 3 turns" in html and 'class="offline-badge"' in html
    assert "Estimated cost by actor" in html and "Estimated cost by phase" in html
    assert "town-1" in html and "decision" in html
    assert not Run.objects.exists()

    again = client.post(detail_url(scenario), {"turns": "5", "credit_limit": "1.25", "use_cache": "on", "estimate": "1"})
    assert "Estimated cost for 5 turns" in again.content.decode() and "$1.25" in again.content.decode()
    assert not Run.objects.exists(), "estimating starts nothing"


def test_a_negative_credit_limit_is_a_form_error(client, person, scenario):
    page = client.post(detail_url(scenario), {"credit_limit": "-1", "start": "1"})
    assert page.status_code == 200 and "credit_limit" in page.context["form"].errors
    assert 'class="errorlist' in page.content.decode()
    assert not Run.objects.exists()


def test_a_refusal_from_the_services_shows_on_the_form(client, person, scenario):
    # No Ollama server is configured in tests, so asking for it is refused by run_plan with the reason.
    page = client.post(detail_url(scenario), {"provider": "ollama", "start": "1"})
    assert page.status_code == 200 and page.context["error"]
    assert 'class="form-error" role="alert"' in page.content.decode()
    assert not Run.objects.exists()


def test_start_queues_a_run_owned_by_the_person_and_opens_its_page(client, person, scenario):
    response = client.post(
        detail_url(scenario), {"turns": "2", "credit_limit": "0.5", "seed": "7", "use_cache": "on", "start": "1"}
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response.url == reverse("runs:detail", args=[run.pk])
    assert run.status == RunStatus.QUEUED and run.owner == person and run.scenario == scenario
    assert (run.max_turns, run.credit_limit, run.seed, run.offline) == (2, 0.5, 7, True)


def test_start_needs_the_csrf_token(scenario):
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_user("olga", password="pw"))
    assert client.post(detail_url(scenario), {"start": "1"}).status_code == 403
    client.get(detail_url(scenario))
    token = client.cookies["csrftoken"].value
    assert client.post(detail_url(scenario), {"start": "1", "use_cache": "on", "csrfmiddlewaretoken": token}).status_code == 302
    assert Run.objects.count() == 1


def test_the_start_form_comes_before_the_world_and_the_actors(client, person, scenario):
    html = client.get(detail_url(scenario)).content.decode()
    assert html.index('id="start-heading"') < html.index('id="world-heading"') < html.index('id="actors-heading"')


def test_the_gallery_shows_each_library_scenario_with_its_actors_length_and_costs(client, person):
    from engine import Scenario as EngineScenario
    from scenarios.selectors import GALLERY_MODELS

    listing = client.get(reverse("scenarios:list")).content.decode()
    assert reverse("scenarios:gallery") in listing  # reachable from the scenario list
    page = client.get(reverse("scenarios:gallery"))  # imports the library on a fresh database
    assert page.status_code == 200
    html = page.content.decode()
    library = [p for p in sorted((Path(settings.SCENARIO_LIBRARY_DIR)).iterdir()) if (p / "scenario.yaml").is_file()]
    assert len(library) >= 6
    for folder in library:
        config = EngineScenario.load(folder)
        assert reverse("scenarios:detail", args=[folder.name]) in html
        assert config.actors[-1].name in html and f"{config.config.turns} turns of {config.config.turn_duration}" in html
    assert html.count("all on <code>") == len(library) * len(GALLERY_MODELS)
    assert html.count('<th scope="row">as written</th>') == len(library)
    assert "$0.00 – $0.00" not in html  # every estimate priced (no model missing from the price list)


def test_the_versions_page_shows_what_changed_and_refuses_unknown_numbers(client, person):
    from engine import Scenario as EngineScenario
    from scenarios.services import scenario_from_engine

    config = EngineScenario.load(Path(settings.SCENARIO_LIBRARY_DIR) / "ai-summit")
    scenario_from_engine(config=config, slug="evolving")
    scenario_from_engine(config=config.model_copy(update={"config": config.config.model_copy(update={"turns": 3})}),
                         slug="evolving")
    detail = client.get(reverse("scenarios:detail", args=["evolving"])).content.decode()
    url = reverse("scenarios:versions", args=["evolving"])
    assert url in detail
    html = client.get(url).content.decode()  # by default: the last two versions
    assert "From version 1 to version 2" in html
    assert '<span class="diff-remove">-turns: 5</span>' in html and '<span class="diff-add">+turns: 3</span>' in html
    assert client.get(url, {"older": "7", "newer": "2"}).status_code == 400
    assert client.get(url, {"older": "x"}).status_code == 400

    from runs.services import run_create, run_plan
    from scenarios.selectors import scenario_get
    from scenarios.services import scenario_to_engine

    stored = scenario_get(slug="evolving")
    run = run_create(plan=run_plan(config=scenario_to_engine(scenario=stored), turns=1), slug="evolving",
                     scenario=stored, owner=person)
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert f'Started from <a href="{url}">version 2</a>' in page


def test_who_may_add_scenarios_duplicates_one_to_start_from(client, person, scenario):
    from django.contrib.auth.models import Permission

    url = reverse("scenarios:duplicate", args=[scenario.slug])
    assert url not in client.get(detail_url(scenario)).content.decode()  # not offered without the permission
    assert client.post(url).status_code == 403
    assert client.get(url).status_code == 405  # a copy is made by a form's POST only

    person.user_permissions.add(Permission.objects.get(codename="add_scenario"))
    person = User.objects.get(pk=person.pk)  # permissions are cached per user object
    client.force_login(person)
    assert url in client.get(detail_url(scenario)).content.decode()
    done = client.post(url)
    copy = Scenario.objects.exclude(pk=scenario.pk).get()
    assert done.status_code == 302 and done.url == reverse("scenarios:detail", args=[copy.slug])
    assert copy.name == f"{scenario.name} (copy)" and copy.actors.count() == scenario.actors.count()
    assert "is a copy of" in client.get(done.url).content.decode()


def test_who_may_change_scenarios_edits_its_files_with_problems_at_their_line_and_comments_kept(client, person):
    from django.contrib.auth.models import Permission

    from engine import Scenario as EngineScenario
    from scenarios.services import scenario_from_engine

    scenario_from_engine(config=EngineScenario.load(Path(settings.SCENARIO_LIBRARY_DIR) / "climate-finance"), slug="editable")
    url = reverse("scenarios:edit", args=["editable"])
    assert client.get(url).status_code == 403
    person.user_permissions.add(Permission.objects.get(codename="change_scenario"))
    client.force_login(User.objects.get(pk=person.pk))
    assert url in client.get(reverse("scenarios:detail", args=["editable"])).content.decode()

    page = client.get(url + "?view=yaml").content.decode()
    assert 'name="file:scenario.yaml"' in page and 'name="file:actors/qasir.yaml"' in page
    stored = Scenario.objects.get(slug="editable")
    files = {v: t for v, t in stored.versions.get().files.items()}
    form = {f"file:{path}": text for path, text in files.items()}

    typo = {**form, "file:scenario.yaml": files["scenario.yaml"].replace("turns: 4", "turnz: 4")}
    refused = client.post(url, typo)
    assert refused.status_code == 400
    html = refused.content.decode()
    # Under its file, at the line of the mapping that misses it, the closest key named.
    assert "line 1: turns: this key is required" in html and "rename &#x27;turnz&#x27; to &#x27;turns&#x27;" in html
    assert Scenario.objects.get(slug="editable").versions.count() == 1, "nothing stored"
    assert "turnz: 4" in html  # the text as submitted, to correct

    commented = files["scenario.yaml"].replace("turns: 4", "# three days are enough to see the deal form\nturns: 3")
    done = client.post(url, {**form, "file:scenario.yaml": commented})
    assert done.status_code == 302 and done.url == reverse("scenarios:versions", args=["editable"])
    again = Scenario.objects.get(slug="editable")
    assert again.turns == 3 and again.versions.count() == 2
    assert "# three days are enough to see the deal form" in client.get(url + "?view=yaml").content.decode()  # as written


def test_try_it_starts_one_offline_turn_and_opens_its_live_page(client, person, scenario):
    url = reverse("scenarios:try", args=[scenario.slug])
    assert url in client.get(detail_url(scenario)).content.decode()
    assert client.get(url).status_code == 405  # started by a form's POST only
    done = client.post(url)
    run = Run.objects.get()
    assert done.status_code == 302 and done.url == reverse("runs:detail", args=[run.pk])
    assert run.max_turns == 1 and run.offline and run.owner == person and run.status == RunStatus.QUEUED
    assert run.scenario_version == 1


def test_the_turn_one_preview_shows_what_each_actor_and_the_world_read_with_tokens(client, person):
    from engine import Scenario as EngineScenario
    from scenarios.services import scenario_from_engine

    config = EngineScenario.load(Path(settings.SCENARIO_LIBRARY_DIR) / "central-bank-crisis")
    scenario_from_engine(config=config, slug="previewed")
    url = reverse("scenarios:preview", args=["previewed"])
    assert url in client.get(reverse("scenarios:detail", args=["previewed"])).content.decode()
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    for actor in config.actors:
        assert f"{actor.name}, deciding" in html
    assert "the world model, writing the new world" in html
    assert "Harwick Mutual has lost 21 percent of its deposits" in html  # the initial world, as the prompts quote it
    assert html.count(" tokens of ") >= len(config.actors) + 1
    assert Run.objects.count() == 0, "a preview stores no run"
