"""The scenario admin through Django's test client: add with inlines, JSON errors, actions, zip import."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import NoReverseMatch, reverse

from scenarios.archives import shown
from scenarios.models import Scenario
from scenarios.services import scenario_to_engine
from scenarios.tests.factories import UNPACKABLE, make_scenario, make_zip, make_zip_with, scenario_files

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:scenarios_scenario_changelist"
IMPORT = "admin:scenarios_scenario_import"


def add_form_data(*, actors: list[dict[str, str]], **overrides: str) -> dict[str, Any]:
    """What the add page posts: the scenario's fields and both inline formsets' management data."""
    data: dict[str, Any] = {
        "name": "Harbour Dispute",
        "slug": "harbour",
        "description": "Two towns argue over a harbour.",
        "system_prompt": "",
        "initial_world_state": "The harbour is silted up.",
        "turns": "3",
        "turn_duration": "1 week",
        "world_state_model": "openai/gpt-4o-mini",
        "context_window_size": "3",
        "credit_limit": "",
        "seed": "0",
        "communication": json.dumps({"enabled": True, "max_per_turn": 2}),
        "features": "{}",
        "metrics": "",
        "validation_rules": "",
        "exogenous_events": "",
        "extra": "{}",
        "actors-TOTAL_FORMS": str(len(actors)),
        "actors-INITIAL_FORMS": "0",
        "actors-MIN_NUM_FORMS": "0",
        "actors-MAX_NUM_FORMS": "1000",
        "background_documents-TOTAL_FORMS": "1",
        "background_documents-INITIAL_FORMS": "0",
        "background_documents-MIN_NUM_FORMS": "0",
        "background_documents-MAX_NUM_FORMS": "1000",
        "background_documents-0-name": "history",
        "background_documents-0-position": "0",
        "background_documents-0-text": "The harbour opened in 1820.",
    }
    for index, actor in enumerate(actors):
        fields = {
            "name": "", "short_name": "", "position": str(index), "llm_model": "openai/gpt-4o-mini",
            "control": "ai", "file_stem": "", "description": "", "system_prompt": "", "goals": "[]",
            "constraints": "[]", "information_access": "", "expertise": "", "decision_making_style": "", "extra": "{}",
        }
        fields.update(actor)
        data.update({f"actors-{index}-{key}": value for key, value in fields.items()})
    data.update(overrides)
    return data


TWO_ACTORS = [
    {"name": "Port Authority", "short_name": "port", "goals": '["Reopen the harbour"]',
     "information_access": '{"private": ["The dredger is broken"]}'},
    {"name": "Fishers' Union", "short_name": "fishers", "file_stem": "fishers-union", "control": "human"},
]


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# ---- add and change --------------------------------------------------------------------------------------
def test_add_scenario_with_actors_through_the_inlines(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:scenarios_scenario_add"), add_form_data(actors=TWO_ACTORS))

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    scenario = Scenario.objects.get(slug="harbour")
    assert [(a.short_name, a.file_stem, a.control) for a in scenario.actors.all()] == [
        ("port", "port", "ai"), ("fishers", "fishers-union", "human")]
    engine_scenario = scenario_to_engine(scenario=scenario)
    assert engine_scenario.config.actors == ["port", "fishers-union"]
    assert engine_scenario.actor("port").private_information == ["The dredger is broken"]
    assert engine_scenario.background[0].text == "The harbour opened in 1820."


def test_invalid_metrics_json_is_a_form_error_naming_field_and_key(admin_client: Client) -> None:
    metrics = json.dumps({"metrics": [{"name": "boats", "extraction": {"type": "regexx"}}]})
    response = admin_client.post(reverse("admin:scenarios_scenario_add"),
                                 add_form_data(actors=TWO_ACTORS, metrics=metrics))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["metrics"]
    assert errors == ["Metrics: metrics[0].extraction.type: expected one of 'pattern', 'keyword', 'llm' or "
                      "'manual', got text ('regexx')"]
    assert "metrics[0].extraction.type" in response.content.decode()
    assert not Scenario.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("communication", '{"max_per_turn": 99}', "Communication: max_per_turn: expected a number at most 20"),
        ("exogenous_events", '{"random_events": [{"name": "storm", "probability": 2, "effect": "x"}]}',
         "random_events[0].probability: expected a number at most 1"),
        ("features", '{"communications": {}}', "communications: set these in the communication settings field"),
        ("extra", '{"turns": 4}', "Extra: turns: a known key; set it in its own field"),
        ("metrics", "{not json", "Enter a valid JSON."),
    ],
)
def test_other_json_problems_are_form_errors(admin_client: Client, field: str, value: str, expected: str) -> None:
    response = admin_client.post(reverse("admin:scenarios_scenario_add"),
                                 add_form_data(actors=TWO_ACTORS, **{field: value}))
    assert response.status_code == 200
    assert any(expected in error for error in response.context["adminform"].form.errors[field])


def test_actor_json_problems_are_inline_errors(admin_client: Client) -> None:
    actors = [{**TWO_ACTORS[0], "goals": '"one goal"', "extra": '{"short_name": "x"}'}]
    response = admin_client.post(reverse("admin:scenarios_scenario_add"), add_form_data(actors=actors))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert errors["goals"] == ['Goals: expected a list of text, e.g. ["one", "two"]']
    assert errors["extra"] == ["Extra: short_name: a known key; set it in its own field"]
    assert not Scenario.objects.exists()


def test_saving_a_scenario_without_actors_warns_it_cannot_run(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:scenarios_scenario_add"), add_form_data(actors=[]), follow=True)
    assert any("cannot run yet: actors: the scenario has no actors" in m for m in messages_of(response))


def test_change_page_and_changelist_render(admin_client: Client) -> None:
    scenario = make_scenario(name="Harbour Dispute", description="silted")
    make_scenario(name="Mountain Pass", slug="pass")
    assert admin_client.get(reverse("admin:scenarios_scenario_change", args=[scenario.pk])).status_code == 200
    response = admin_client.get(reverse(CHANGELIST), {"q": "silted"})
    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == [scenario]
    assert reverse(IMPORT) in response.content.decode()  # the import link


# ---- actions ----------------------------------------------------------------------------------------------
def act(client: Client, action: str, *scenarios: Scenario, follow: bool = True):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [s.pk for s in scenarios]},
                       follow=follow)


def test_validate_action_reports_each_scenario(admin_client: Client) -> None:
    good = make_scenario(name="Good")
    bad = make_scenario(name="Bad", turns=0)
    found = messages_of(act(admin_client, "validate_scenarios", good, bad))
    assert "“Good” is valid." in found
    assert any(m.startswith("“Bad” has 1 problem(s): scenario.yaml: turns: expected a number at least 1")
               for m in found)


def test_duplicate_action(admin_client: Client) -> None:
    scenario = make_scenario(slug="harbour")
    found = messages_of(act(admin_client, "duplicate_scenarios", scenario))
    assert found == ["Copied as harbour-copy."]
    assert Scenario.objects.get(slug="harbour-copy").actors.count() == 2


def test_export_action_then_import_view_gives_an_equal_scenario(admin_client: Client) -> None:
    scenario = make_scenario(slug="harbour", extra={"harbour_master": "Ingrid"})
    expected = scenario_to_engine(scenario=scenario).model_dump(exclude={"source", "warnings"})

    response = act(admin_client, "export_scenarios", scenario, follow=False)
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="harbour.zip"'
    scenario.delete()

    upload = io.BytesIO(response.content)
    upload.name = "harbour.zip"
    imported = admin_client.post(reverse(IMPORT), {"archive": upload, "slug": ""})

    again = Scenario.objects.get(slug="harbour")
    assert imported.status_code == 302 and imported["Location"] == reverse("admin:scenarios_scenario_change",
                                                                            args=[again.pk])
    assert scenario_to_engine(scenario=again).model_dump(exclude={"source", "warnings"}) == expected


def test_export_of_several_gives_a_zip_per_scenario(admin_client: Client) -> None:
    first, second = make_scenario(slug="a"), make_scenario(slug="b")
    response = act(admin_client, "export_scenarios", first, second, follow=False)
    outer = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(outer.namelist()) == ["a.zip", "b.zip"]
    assert zipfile.ZipFile(io.BytesIO(outer.read("a.zip"))).namelist()[0] == "a/scenario.yaml"


def test_export_of_an_invalid_scenario_is_refused_with_a_message(admin_client: Client) -> None:
    response = act(admin_client, "export_scenarios", make_scenario(name="Bad", turns=0))
    assert response["Content-Type"].startswith("text/html")
    assert any("“Bad” cannot be exported: scenario.yaml: turns" in m for m in messages_of(response))


def test_run_action_sends_one_scenario_to_the_run_form(admin_client: Client) -> None:
    first, second = make_scenario(), make_scenario()
    assert messages_of(act(admin_client, "run_scenario", first, second)) == ["Select exactly one scenario to run."]
    try:
        run_add = reverse("admin:runs_run_add")
    except NoReverseMatch:
        pytest.skip("the runs admin (admin:runs_run_add) is not installed yet")
    response = act(admin_client, "run_scenario", first, follow=False)
    assert response.status_code == 302 and response["Location"] == f"{run_add}?scenario={first.pk}"


# ---- import view --------------------------------------------------------------------------------------------
def upload_of(content: bytes, name: str = "harbour.zip") -> io.BytesIO:
    upload = io.BytesIO(content)
    upload.name = name
    return upload


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not a zip at all", "harbour.zip is not a readable zip archive"),
        (make_zip({"../scenario.yaml": "name: x"}, prefix=""), "points outside the archive&#x27;s folder"),
        (make_zip(scenario_files(**{"scenario.yaml": "name: x\nturns: many\n"})),
         "scenario.yaml:2: turns: expected a whole number"),
    ],
    ids=["not-a-zip", "path-trick", "broken-scenario"],
)
def test_bad_uploads_show_errors_on_the_form_and_store_nothing(admin_client: Client, content: bytes,
                                                               expected: str) -> None:
    response = admin_client.post(reverse(IMPORT), {"archive": upload_of(content)})
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert response.context["form"].errors["archive"]
    assert not Scenario.objects.exists()


@pytest.mark.parametrize(("members", "entry", "words"), list(UNPACKABLE.values()), ids=list(UNPACKABLE))
def test_a_member_that_cannot_be_unpacked_is_a_form_error_naming_it(admin_client: Client, members: list[str],
                                                                    entry: str, words: str) -> None:
    make_scenario(slug="harbour", name="Stored before")
    before = scenario_to_engine(scenario=Scenario.objects.get()).model_dump()
    response = admin_client.post(reverse(IMPORT), {"archive": upload_of(make_zip_with(members)), "update": "on"})
    assert response.status_code == 200
    assert f"{shown(entry)} {words}" in response.context["form"].errors["archive"][0]
    assert scenario_to_engine(scenario=Scenario.objects.get()).model_dump() == before


def test_import_into_an_existing_slug_needs_the_replace_box(admin_client: Client) -> None:
    make_scenario(slug="harbour", name="Old")
    response = admin_client.post(reverse(IMPORT), {"archive": upload_of(make_zip(scenario_files()))})
    assert "already exists" in response.context["form"].errors["slug"][0]
    assert Scenario.objects.get(slug="harbour").name == "Old"

    response = admin_client.post(reverse(IMPORT), {"archive": upload_of(make_zip(scenario_files())), "update": "on"})
    assert response.status_code == 302
    assert Scenario.objects.get(slug="harbour").name == "Harbour Dispute"


def test_import_view_needs_the_add_permission_and_csrf() -> None:
    staff = User.objects.create_user("editor", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_scenario"))
    client = Client(enforce_csrf_checks=True)
    assert client.get(reverse(IMPORT)).status_code == 302  # anonymous: to the login page
    client.force_login(staff)
    assert client.get(reverse(IMPORT)).status_code == 403
    assert reverse(IMPORT) not in client.get(reverse(CHANGELIST)).content.decode()  # no link either

    staff.user_permissions.add(Permission.objects.get(codename="add_scenario"))
    page = client.get(reverse(IMPORT))
    assert page.status_code == 200 and "csrfmiddlewaretoken" in page.content.decode()
    without_token = client.post(reverse(IMPORT), {"archive": upload_of(make_zip(scenario_files()))})
    assert without_token.status_code == 403
    assert not Scenario.objects.exists()
