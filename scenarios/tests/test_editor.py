"""The scenario editor: its form read from the files and written back into them (a hand-edited YAML survives a
form round trip), adding and removing parts, problems at their fields, live checks, new scenarios."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.http import QueryDict
from django.urls import reverse

from engine import Scenario as EngineScenario
from scenarios import editing
from scenarios.editor_form import all_fields, form_sections
from scenarios.editor_yaml import Folder
from scenarios.models import Scenario
from scenarios.services import scenario_from_engine

LIBRARY = Path(settings.SCENARIO_LIBRARY_DIR)


class FormReader(HTMLParser):
    """The fields a browser would send for the page's editor form, as it would send them: textareas without
    the newline after their tag, only ticked checkboxes, each select's chosen option."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pairs: list[tuple[str, str]] = []
        self.inside = False
        self._textarea: str | None = None
        self._text = ""
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == "scenario-editor":
            self.inside = True
        if not self.inside or "name" not in attrs and tag != "option":
            return
        if tag == "input" and attrs.get("type") not in ("checkbox",) or tag == "input" and "checked" in attrs:
            self.pairs.append((attrs["name"], attrs.get("value", "")))
        elif tag == "textarea":
            self._textarea, self._text = attrs["name"], ""
        elif tag == "select":
            self._select, self._options = attrs["name"], []
        elif tag == "option" and self._select is not None:
            self._options.append((attrs.get("value", ""), "selected" in attrs))

    def handle_data(self, data):
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self._textarea is not None:
            text = self._text[1:] if self._text.startswith("\n") else self._text
            self.pairs.append((self._textarea, text))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            chosen = [value for value, selected in self._options if selected] or [self._options[0][0]]
            self.pairs.append((self._select, chosen[0]))
            self._select = None


def form_of(html: str, **changes: str) -> dict[str, list[str]]:
    reader = FormReader()
    reader.feed(html)
    data: dict[str, list[str]] = {}
    for name, value in reader.pairs:
        data.setdefault(name, []).append(value)
    for name, value in changes.items():
        data[name] = [value]
    data.pop("csrfmiddlewaretoken", None)
    return data


def as_query(data: dict[str, list[str]]) -> QueryDict:
    query = QueryDict(mutable=True)
    for name, values in data.items():
        query.setlist(name, values)
    return query


def library_files(name: str) -> dict[str, str]:
    folder = LIBRARY / name
    return {str(path.relative_to(folder)): path.read_text(encoding="utf-8")
            for path in sorted(folder.rglob("*")) if path.is_file()}


def posted(files: dict[str, str], **changes) -> QueryDict:
    """What the form for these files sends back as shown, with `changes` (field name -> value)."""
    data: dict[str, list[str]] = {"base": [json.dumps(files)], "mode": ["form"]}
    for each in all_fields(form_sections(Folder(files))):
        if each.spec.kind == "bool":
            data[each.name] = ["0", "1"] if each.value else ["0"]
        elif each.spec.kind == "range":
            data[f"{each.name}[0]"], data[f"{each.name}[1]"] = [each.value[0]], [each.value[1]]
        else:
            data[each.name] = [str(each.value)]
    for name, value in changes.items():
        data[name] = value if isinstance(value, list) else [value]
    return as_query(data)


HAND_EDITED = {
    "scenario.yaml": """# A harbour dispute, written by hand.
name: 'Harbour Dispute'   # single quotes kept
num_turns: 3              # V1's name for turns
turn_duration: "1 week"
initial_world_state: |
  ## The bay
  The harbour is silted up.
world_state_model: openai/gpt-4o-mini
actors: [fishers, port]
features:
  exogenous_events: true    # a bare switch
  communications:
    max_per_turn: 1
""",
    "actors/fishers.yaml": """short_name: fishers   # key order as the author likes it
name: Fishers' Guild
model: openai/gpt-4o-mini
goals: |
  - Keep the harbour open
  - Lower the dredging fee
expertise:
  fishing: expert
information_access:
  public: true
  private: ["The guild is nearly bankrupt"]
""",
    "actors/port.yaml": """name: Port Authority
short_name: port
llm_model: openai/gpt-4o
goals:
    - Dredge the harbour   # four spaces before the dash
constraints: []
""",
    "metrics.yaml": """metrics:
  - name: fee
    description: The dredging fee
    range: [0, 100]
    unit: USD
    extraction: {type: pattern, pattern: 'fee of (\\d+)'}
""",
    "background/history.md": "# History\n\nThe harbour was dug in 1820.\n",
}


# ---- the form and the files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(p.name for p in LIBRARY.iterdir() if (p / "scenario.yaml").is_file()))
def test_every_library_scenario_comes_back_from_its_form_unchanged(name):
    files = library_files(name)
    edit = editing.editor_submit(posted(files, step="to_yaml"), stored={})
    assert edit.files == files and not edit.problems


def test_a_hand_edited_yaml_survives_a_form_round_trip_as_the_same_scenario():
    edit = editing.editor_submit(posted(HAND_EDITED, step="to_yaml"), stored={})
    assert edit.files == HAND_EDITED  # comments, key order, quotes, V1's names, a bare switch: byte for byte

    changed = editing.editor_submit(posted(HAND_EDITED, **{
        "actors/fishers.yaml::goals": "Keep the harbour open\r\nLower the dredging fee\r\nSell the catch abroad",
        "scenario.yaml::num_turns": "5",
    }), stored={})
    files = changed.files
    assert files["actors/port.yaml"] == HAND_EDITED["actors/port.yaml"]
    assert files["metrics.yaml"] == HAND_EDITED["metrics.yaml"]
    assert "# A harbour dispute, written by hand." in files["scenario.yaml"]
    assert "num_turns: 5              # V1's name for turns" in files["scenario.yaml"]
    assert "name: 'Harbour Dispute'   # single quotes kept" in files["scenario.yaml"]
    assert files["actors/fishers.yaml"].startswith("short_name: fishers   # key order as the author likes it\n")
    loaded = editing.editor_check(files).config
    assert loaded is not None and loaded.config.turns == 5
    assert loaded.actor("fishers").goals == ["Keep the harbour open", "Lower the dredging fee", "Sell the catch abroad"]
    original = editing.editor_check(HAND_EDITED).config
    assert loaded.actor("port") == original.actor("port") and loaded.metrics == original.metrics
    assert loaded.config.features == original.config.features


@pytest.mark.django_db
def test_the_page_as_a_browser_sends_it_back_changes_nothing(client, editor):
    scenario_from_engine(config=EngineScenario.load(LIBRARY / "climate-finance"), slug="climate")
    url = reverse("scenarios:edit", args=["climate"])
    before = dict(Scenario.objects.get(slug="climate").versions.get().files)
    page = client.get(url)
    assert page.status_code == 200 and 'name="actors/qasir.yaml::goals"' in page.content.decode()
    to_yaml = client.post(url, form_of(page.content.decode(), step="to_yaml"))
    assert to_yaml.status_code == 200
    shown = form_of(to_yaml.content.decode())
    assert {path: shown[f"file:{path}"][0] for path in before} == before
    back = client.post(url, form_of(to_yaml.content.decode(), step="to_form"))
    assert 'name="scenario.yaml::turns" value="4"' in back.content.decode()
    saved = client.post(url, form_of(back.content.decode(), step="save"))
    assert saved.status_code == 302
    assert Scenario.objects.get(slug="climate").versions.count() == 1  # the same files: no new version


@pytest.fixture
def editor(client):
    user = User.objects.create_user("ines", password="pw")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_scenario", "change_scenario"]))
    client.force_login(user)
    return user
