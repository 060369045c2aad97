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
    the newline after their tag, one-line inputs without line breaks, only ticked checkboxes and enabled fields,
    each select's chosen option."""

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
        if "disabled" in attrs:
            return  # a browser sends nothing for a disabled field
        if tag == "input" and attrs.get("type") not in ("checkbox",) or tag == "input" and "checked" in attrs:
            # A browser drops line breaks from a one-line input's value.
            self.pairs.append((attrs["name"], attrs.get("value", "").replace("\r", "").replace("\n", "")))
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
    check = editing.editor_check(files)
    assert check.config is not None and check.problems == check.warnings == []  # nothing to flag in the library


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


# ---- adding, removing, renaming --------------------------------------------------------------------------------
def change(files: dict[str, str], action: dict, **fields) -> editing.Edit:
    return editing.editor_submit(posted(files, change=json.dumps(action), **fields), stored={})


def test_an_actor_is_added_named_and_removed_with_scenario_yaml_following():
    added = change(HAND_EDITED, {"op": "add", "what": "actor"})
    assert "actors/actor-1.yaml" in added.files and "actors: [fishers, port, actor-1]" in added.files["scenario.yaml"]
    named = editing.editor_submit(posted(added.files, **{
        "actors/actor-1.yaml::name": "Town Council", "actors/actor-1.yaml::short_name": "council",
        "actors/actor-1.yaml::goals": "Balance the budget\nKeep both sides talking\n"}), stored={})
    assert "actors/actor-1.yaml" not in named.files, "a new actor's file follows its short name"
    assert "actors: [fishers, port, council]" in named.files["scenario.yaml"]
    config = editing.editor_check(named.files).config
    assert config is not None and config.actor("council").goals == ["Balance the budget", "Keep both sides talking"]

    renamed = editing.editor_submit(posted(named.files, **{"actors/port.yaml::short_name": "harbour-board"}),
                                    stored={})
    assert "actors/harbour-board.yaml" in renamed.files and "actors: [fishers, harbour-board, council]" in \
        renamed.files["scenario.yaml"]
    removed = change(renamed.files, {"op": "remove", "file": "actors/fishers.yaml"})
    assert "actors/fishers.yaml" not in removed.files and "actors: [harbour-board, council]" in removed.files["scenario.yaml"]
    assert editing.editor_check(removed.files).config is not None


def test_metrics_checks_events_and_documents_are_added_filled_and_removed():
    files = change(HAND_EDITED, {"op": "add", "what": "metric"}).files
    files = editing.editor_submit(posted(files, **{
        "metrics.yaml::metrics[1].name": "anger", "metrics.yaml::metrics[1].extraction.keywords": "protest\nstrike",
        "metrics.yaml::metrics[1].thresholds.warning": "3", "metrics.yaml::metrics[1].thresholds.critical": "6",
        "metrics.yaml::metrics[1].range[0]": "0", "metrics.yaml::metrics[1].range[1]": "20"}), stored={}).files
    files = change(files, {"op": "add", "what": "check"}).files
    files = editing.editor_submit(posted(files, **{
        "validation-rules.yaml::checks.check_1.(name)": "fair_play",
        "validation-rules.yaml::checks.check_1.description": "Nobody acts beyond their powers",
        "validation-rules.yaml::checks.check_1.severity": "high"}), stored={}).files
    for kind in ("scheduled_events", "random_events", "trends", "conditional_events"):
        files = change(files, {"op": "add", "what": "event", "kind": kind}).files
    files = editing.editor_submit(posted(files, **{
        "exogenous-events.yaml::scheduled_events[0].name": "storm", "exogenous-events.yaml::scheduled_events[0].schedule.turns": "2, 3",
        "exogenous-events.yaml::scheduled_events[0].effect": "A storm closes the harbour.",
        "exogenous-events.yaml::random_events[0].name": "strike", "exogenous-events.yaml::random_events[0].effect": "Dockers strike.",
        "exogenous-events.yaml::trends[0].name": "silt", "exogenous-events.yaml::trends[0].effects[0].description": "More silt",
        "exogenous-events.yaml::conditional_events[0].name": "riot",
        "exogenous-events.yaml::conditional_events[0].conditions[0].metric": "anger",
        "exogenous-events.yaml::conditional_events[0].conditions[0].value": "5",
        "exogenous-events.yaml::conditional_events[0].effect": "A riot at the quay."}), stored={}).files
    files = change(files, {"op": "add", "what": "document"}).files
    files = editing.editor_submit(posted(files, **{"background/document-1.md::(name)": "tides",
                                                   "background/document-1.md::(text)": "High tide at noon."}),
                                  stored={}).files
    check = editing.editor_check(files)
    assert check.problems == [] and check.config is not None
    config = check.config
    anger = config.metric_definitions[1]
    assert (anger.name, anger.extraction.keywords, anger.range) == ("anger", ["protest", "strike"], (0, 20))
    assert anger.thresholds.warning == 3 and anger.thresholds.critical == 6
    assert list(config.validation.checks) == ["fair_play"] and config.validation.checks["fair_play"].severity == "high"
    events = config.exogenous_events
    assert events.scheduled_events[0].schedule.turns == [2, 3] and events.random_events[0].name == "strike"
    assert events.trends[0].effects[0].description == "More silt"
    assert events.conditional_events[0].conditions[0].metric == "anger"
    assert [(doc.name, doc.text) for doc in config.background] == [("history", HAND_EDITED["background/history.md"]),
                                                                   ("tides", "High tide at noon.")]
    assert "# A harbour dispute, written by hand." in files["scenario.yaml"]

    files = change(files, {"op": "remove", "file": "exogenous-events.yaml", "path": ["trends"], "index": 0}).files
    files = change(files, {"op": "remove", "file": "validation-rules.yaml", "path": ["checks"], "index": 0}).files
    files = change(files, {"op": "remove", "file": "background/tides.md"}).files
    config = editing.editor_check(files).config
    assert config.exogenous_events.trends == [] and config.validation.checks == {}
    assert [doc.name for doc in config.background] == ["history"]


@pytest.mark.parametrize("action", [
    {"op": "explode"}, {"op": "remove", "file": "nothing.yaml"}, "not a mapping",
    {"op": "remove", "file": "metrics.yaml", "path": ["metrics"], "index": 9},
    {"op": "add", "what": "event", "kind": "earthquakes"},
])
def test_a_button_the_editor_does_not_know_is_a_problem_not_an_error(action):
    edit = change(HAND_EDITED, action)
    assert edit.files == HAND_EDITED and len(edit.problems) == 1


def test_a_name_that_cannot_be_is_a_problem_at_its_field_and_nothing_is_renamed():
    files = change(HAND_EDITED, {"op": "add", "what": "document"}).files
    edit = editing.editor_submit(posted(files, **{"background/document-1.md::(name)": "../escape",
                                                  "background/history.md::(name)": "history"}), stored={})
    assert "background/document-1.md" in edit.files and all(".." not in path for path in edit.files)
    assert edit.problems[0].file == "background/document-1.md" and "cannot name a file" in edit.problems[0].message


def test_the_page_cannot_be_made_to_write_outside_the_folder():
    query = posted(HAND_EDITED)
    query["base"] = json.dumps({**HAND_EDITED, "../../etc/passwd": "x"})
    with pytest.raises(editing.EditorInputError):
        editing.editor_submit(query, stored={})
    query["base"] = "{not json"
    with pytest.raises(editing.EditorInputError):
        editing.editor_submit(query, stored={})


# ---- problems where they belong ------------------------------------------------------------------------------
def test_problems_and_warnings_land_at_the_field_they_name():
    from scenarios.editor_page import editor_page

    edit = editing.editor_submit(posted(HAND_EDITED, **{
        "scenario.yaml::num_turns": "three", "actors/port.yaml::llm_model": "openai/gpt-4o-mnii",
        "metrics.yaml::metrics[0].thresholds.warning": "lots"}), stored={})
    check = editing.editor_check(edit.files)
    page = editor_page(edit, check)
    fields = {each.name: each for each in all_fields(page.sections)}
    assert "whole number" in " ".join(fields["scenario.yaml::num_turns"].problems)
    assert "number" in " ".join(fields["metrics.yaml::metrics[0].thresholds.warning"].problems)
    assert page.unplaced == [] and check.config is None

    typo = editing.editor_submit(posted(HAND_EDITED, **{"actors/port.yaml::llm_model": "openai/gpt-4o-mnii"}),
                                 stored={})
    page = editor_page(typo, editing.editor_check(typo.files))
    warned = {each.name: each for each in all_fields(page.sections)}["actors/port.yaml::llm_model"]
    assert warned.warnings == ["'openai/gpt-4o-mnii' is not in the price data, so estimates and credit limits count "
                               "it at a top-tier model's price. Did you mean 'openai/gpt-4o-mini'?"]
    assert page.problem_count == 0

    aliased = editing.editor_submit(posted(HAND_EDITED, **{"actors/fishers.yaml::model": "openai/gpt-4o-mnii"}),
                                    stored={})  # the file names it `model:`, V1's name
    page = editor_page(aliased, editing.editor_check(aliased.files))
    assert {each.name: each for each in all_fields(page.sections)}["actors/fishers.yaml::model"].warnings


# ---- the pages -----------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_who_may_not_add_or_change_scenarios_gets_no_editor(client):
    client.force_login(User.objects.create_user("noor", password="pw"))
    assert client.get(reverse("scenarios:new")).status_code == 403
    assert client.post(reverse("scenarios:check"), {"base": json.dumps(HAND_EDITED)}).status_code == 403
    assert reverse("scenarios:new") not in client.get(reverse("scenarios:list")).content.decode()


@pytest.mark.django_db
def test_a_new_scenario_is_made_in_the_form_without_javascript(client, editor):
    url = reverse("scenarios:new")
    listing = client.get(reverse("scenarios:list")).content.decode()
    assert url in listing and reverse("scenarios:gallery") in listing
    page = client.get(url).content.decode()
    added = client.post(url, {**form_of(page), "change": json.dumps({"op": "add", "what": "actor"})})
    assert 'name="actors/actor-2.yaml::name"' in added.content.decode()
    filled = form_of(added.content.decode(), **{
        "scenario.yaml::name": "Harbour Dispute", "scenario.yaml::initial_world_state": "The harbour is silted up.",
        "scenario.yaml::turns": "2",
        "actors/actor-1.yaml::name": "Fishers", "actors/actor-1.yaml::short_name": "fishers",
        "actors/actor-1.yaml::goals": "Keep the harbour open\nLower the fee",
        "actors/actor-2.yaml::name": "Port", "actors/actor-2.yaml::short_name": "port",
        "actors/actor-2.yaml::goals": "Dredge the harbour",
        "step": "save"})
    refused = client.post(url, {**filled, "scenario.yaml::turns": "0"})
    assert refused.status_code == 400 and not Scenario.objects.exists()
    assert "Not saved: 1 problem" in refused.content.decode()
    assert "at least 1" in refused.content.decode().split('data-field="scenario.yaml::turns"')[1][:2000]

    done = client.post(url, filled)
    scenario = Scenario.objects.get()
    assert done.status_code == 302 and done.url == reverse("scenarios:detail", args=[scenario.slug])
    assert scenario.slug == "harbour-dispute" and scenario.turns == 2
    assert [(a.short_name, a.goals) for a in scenario.actors.order_by("position")] == [
        ("fishers", ["Keep the harbour open", "Lower the fee"]), ("port", ["Dredge the harbour"])]
    version = scenario.versions.get()
    assert set(version.files) == {"scenario.yaml", "actors/fishers.yaml", "actors/port.yaml"}
    assert reverse("scenarios:edit", args=[scenario.slug]) in client.get(reverse("scenarios:list")).content.decode()

    again = client.post(url, filled)  # the same name again: a scenario of its own
    assert again.status_code == 302 and Scenario.objects.filter(slug="harbour-dispute-2").exists()


@pytest.mark.django_db
def test_the_live_check_answers_problems_at_their_fields_and_the_estimate(client, editor):
    url = reverse("scenarios:check")
    assert client.get(url).status_code == 405
    good = client.post(url, posted(HAND_EDITED, step="check").urlencode(), content_type="application/x-www-form-urlencoded")
    body = good.json()
    assert body["problems"] == [] and body["estimate"]["high"] > 0
    bad = client.post(url, posted(HAND_EDITED, step="check", **{"scenario.yaml::num_turns": "0"}).urlencode(),
                      content_type="application/x-www-form-urlencoded").json()
    assert [(p["field"], p["text"]) for p in bad["problems"]] == [("scenario.yaml::num_turns", "expected a number at least 1, got a number (0)")]
    assert bad["estimate"] is None
    broken = client.post(url, {"base": "{", "mode": "form"})
    assert broken.status_code == 400 and "open the editor again" in broken.json()["error"]
    assert not Scenario.objects.exists()


@pytest.mark.django_db
def test_preview_and_save_and_try_from_the_editor(client, editor):
    scenario_from_engine(config=EngineScenario.load(LIBRARY / "board-ai-incident"), slug="board")
    url = reverse("scenarios:edit", args=["board"])
    page = client.get(url).content.decode()
    preview = client.post(url, form_of(page, step="preview")).content.decode()
    assert "What each model reads on turn 1" in preview and "the world model, writing the new world" in preview
    assert Scenario.objects.get(slug="board").versions.count() == 1
    from runs.models import Run

    tried = client.post(url, form_of(page, step="save_try", **{"scenario.yaml::turns": "3"}))
    run = Run.objects.get()
    assert tried.status_code == 302 and tried.url == reverse("runs:detail", args=[run.pk])
    assert run.max_turns == 1 and run.offline and run.scenario_version == 2


# ---- YAML the form must not spoil --------------------------------------------------------------------------------
def edited(files: dict[str, str], **fields) -> dict[str, str]:
    return editing.editor_submit(posted(files, **fields), stored={}).files


def test_a_value_shared_through_an_anchor_is_left_to_the_yaml_view():
    files = {**HAND_EDITED, "metrics.yaml": (
        "metrics:\n  - name: fee\n    extraction: {type: pattern, pattern: 'fee of (\\d+)'}\n"
        "    thresholds: &limits {warning: 3, critical: 6}\n"
        "  - name: anger\n    extraction: {type: keyword, keywords: [strike]}\n    thresholds: *limits\n")}
    shared = {each.name: each for each in all_fields(form_sections(Folder(files)))}
    assert shared["metrics.yaml::metrics[1].thresholds.warning"].shared == "limits"
    assert edited(files, **{"metrics.yaml::metrics[1].thresholds.warning": "4"}) == files


@pytest.mark.django_db
def test_text_of_several_lines_in_a_one_line_field_survives_a_browser(client, editor):
    files = {**HAND_EDITED, "exogenous-events.yaml": (
        "random_events:\n  - name: storm\n    description: |\n      A storm\n      closes the harbour\n"
        "    probability: 0.5\n    effect: The harbour closes.\n")}
    created = editing.scenario_create(files=files)
    url = reverse("scenarios:edit", args=[created.slug])
    page = client.get(url).content.decode()
    assert '<textarea id="f:exogenous-events.yaml::random_events[0].description"' in page
    shown = form_of(client.post(url, form_of(page, step="to_yaml")).content.decode())
    assert shown["file:exogenous-events.yaml"] == [files["exogenous-events.yaml"]]


def test_words_yaml_1_1_reads_as_switches_are_written_as_text_and_read_as_switches():
    files = edited(HAND_EDITED, **{"actors/port.yaml::name": "No", "actors/port.yaml::constraints": "Yes\nOff\n2024-01-01"})
    port = editing.editor_check(files).config.actor("port")
    assert port.name == "No" and port.constraints == ["Yes", "Off", "2024-01-01"]
    switches = {**HAND_EDITED, "scenario.yaml": HAND_EDITED["scenario.yaml"].replace(
        "  communications:\n", "  communications:\n    public: off\n    coalition: yes\n")}
    fields = {each.name: each for each in all_fields(form_sections(Folder(switches)))}
    assert fields["scenario.yaml::features.communications.public"].value is False
    assert fields["scenario.yaml::features.communications.coalition"].value is True
    turned_on = edited(switches, **{"scenario.yaml::features.communications.public": ["0", "1"]})
    assert editing.editor_check(turned_on).config.config.features.communications.public is True


def test_a_bare_switch_keeps_saying_what_it_said_when_a_setting_joins_it():
    files = {**HAND_EDITED, "scenario.yaml": HAND_EDITED["scenario.yaml"].replace(
        "  communications:\n    max_per_turn: 1\n", "  communications: false\n")}
    changed = edited(files, **{"scenario.yaml::features.communications.max_per_turn": "3"})
    communications = editing.editor_check(changed).config.config.features.communications
    assert (communications.enabled, communications.max_per_turn) == (False, 3)


def test_text_starting_with_spaces_in_a_four_space_file_reads_back_as_typed():
    files = {**HAND_EDITED, "actors/port.yaml": "name: Port Authority\nshort_name: port\nexpertise:\n    dredging: expert\n"}
    text = "  1. Dredge\n  2. Pay"
    once = edited(files, **{"actors/port.yaml::description": text})
    assert editing.editor_check(once).config.actor("port").description == text
    twice = edited(once, **{"actors/port.yaml::name": "Port Board"})
    assert editing.editor_check(twice).config.actor("port").description == text


def test_v1_lengths_and_actor_lists_are_read_as_the_engine_reads_them():
    v1_length = {**HAND_EDITED, "scenario.yaml": HAND_EDITED["scenario.yaml"].replace("num_turns: 3", "scenario_length: 10")}
    fields = {each.name: each for each in all_fields(form_sections(Folder(v1_length)))}
    assert fields["scenario.yaml::scenario_length"].value == "10"
    parameters = {**HAND_EDITED, "scenario.yaml": HAND_EDITED["scenario.yaml"].replace(
        "num_turns: 3              # V1's name for turns\nturn_duration: \"1 week\"\n",
        "parameters:\n  max_turns: 5\n  turn_duration: 1 week\n")}
    sections = form_sections(Folder(parameters))
    assert not [each for each in all_fields(sections) if each.spec.key in (("turns",), ("turn_duration",))]
    assert "The length is written in V1's form" in sections[0].items[0].note

    listed = {**HAND_EDITED, "scenario.yaml": HAND_EDITED["scenario.yaml"].replace(
        "actors: [fishers, port]", "actors: [fishers.yaml, port.yaml]")}
    renamed = edited(listed, **{"actors/port.yaml::short_name": "board"})
    assert "actors: [fishers.yaml, board]" in renamed["scenario.yaml"]
    removed = change(renamed, {"op": "remove", "file": "actors/fishers.yaml"})
    assert "actors: [board]" in removed.files["scenario.yaml"] and editing.editor_check(removed.files).config


@pytest.mark.django_db
@pytest.mark.parametrize("base", [
    {"scenario.yaml\x00": "x"}, {"a" * 300 + ".yaml": "x"}, {"scenario.yaml": "x", "scenario.yaml/inner.yaml": "y"},
    "[" * 100_000, {"scenario.yaml": "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 2000))},
    {"scenario.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                      "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"},
])
def test_a_hostile_page_gets_an_answer_never_an_error(client, editor, base):
    data = {"base": base if isinstance(base, str) else json.dumps(base), "mode": "form", "step": "check",
            "change": "[" * 100_000, "version": "9" * 5000}
    answer = client.post(reverse("scenarios:check"), data)
    assert answer.status_code in (200, 400) and answer.json()
    page = client.post(reverse("scenarios:new"), {**data, "step": "save"})
    assert page.status_code in (200, 400) and not Scenario.objects.exists()


@pytest.mark.django_db
def test_a_save_from_a_page_opened_before_someone_else_saved_is_refused_first(client, editor):
    created = editing.scenario_create(files=HAND_EDITED)
    url = reverse("scenarios:edit", args=[created.slug])
    first, second = client.get(url).content.decode(), client.get(url).content.decode()
    assert client.post(url, form_of(first, step="save", **{"scenario.yaml::name": "Harbour Talks"})).status_code == 302
    stale = client.post(url, form_of(second, step="save", **{"actors/port.yaml::name": "Port Board"}))
    assert stale.status_code == 409 and "was saved since you opened it" in stale.content.decode()
    assert Scenario.objects.get().name == "Harbour Talks" and created.versions.count() == 2
    again = client.post(url, form_of(stale.content.decode(), step="save"))
    assert again.status_code == 302 and created.versions.count() == 3


@pytest.mark.django_db
def test_the_live_check_answers_for_the_fields_of_the_page_that_asked(client, editor):
    cleared = posted(HAND_EDITED, step="check", **{"scenario.yaml::num_turns": ""})
    body = client.post(reverse("scenarios:check"), cleared.urlencode(),
                       content_type="application/x-www-form-urlencoded").json()
    assert [p["field"] for p in body["problems"]] == ["scenario.yaml::num_turns"]
    added = change(HAND_EDITED, {"op": "add", "what": "actor"}).files
    typed = posted(added, step="check", **{"actors/actor-1.yaml::name": "Council", "actors/actor-1.yaml::short_name":
                                           "council", "actors/actor-1.yaml::llm_model": "openai/gpt-4o-mnii"})
    body = client.post(reverse("scenarios:check"), typed.urlencode(), content_type="application/x-www-form-urlencoded").json()
    assert [p["field"] for p in body["warnings"]] == ["actors/actor-1.yaml::llm_model"]


@pytest.mark.django_db
def test_the_live_check_of_the_yaml_view_answers_at_file_and_line_with_the_closest_key(client, editor):
    text = HAND_EDITED["actors/port.yaml"].replace("goals:", "goal:")
    data = {"base": json.dumps(HAND_EDITED), "mode": "yaml", "step": "check",
            **{f"file:{path}": body for path, body in HAND_EDITED.items()}, "file:actors/port.yaml": text}
    body = client.post(reverse("scenarios:check"), data).json()
    assert body["problems"] == []
    [warning] = body["warnings"]
    assert (warning["file"], warning["line"]) == ("actors/port.yaml", 4) and "did you mean 'goals'?" in warning["text"]


@pytest.mark.django_db
def test_imported_and_library_scenarios_open_in_the_editor_as_their_authors_wrote_them(tmp_path):
    from scenarios.services import scenario_import_folder, scenario_import_library

    scenario_import_library()
    summit = Scenario.objects.get(slug="ai-summit")
    assert summit.versions.get().files == library_files("ai-summit")  # comments, quoting, order
    v1_layout = tmp_path / "harbour" / "definition"
    for path, text in HAND_EDITED.items():
        (v1_layout / path).parent.mkdir(parents=True, exist_ok=True)
        (v1_layout / path).write_text(text)
    (tmp_path / "mine").mkdir()
    for path, text in HAND_EDITED.items():
        (tmp_path / "mine" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mine" / path).write_text(text)
    assert scenario_import_folder(path=tmp_path / "mine").versions.get().files == HAND_EDITED
    exported = scenario_import_folder(path=tmp_path / "harbour").versions.get().files
    assert "scenario.yaml" in exported and "# A harbour dispute" not in exported["scenario.yaml"]  # V1's layout: as exported


def test_model_names_the_price_data_does_not_list_are_flagged_even_when_priced_by_a_guess():
    def warnings_for(model: str) -> list[str]:
        files = {**HAND_EDITED, "actors/port.yaml": HAND_EDITED["actors/port.yaml"].replace("openai/gpt-4o", model)}
        return [w.message + " " + (w.suggestion or "") for w in editing.editor_check(files).warnings]
    assert "did you mean 'openai/gpt-4o-mini'?" in warnings_for("opneai/gpt-4o-mini")[0]
    assert "did you mean 'anthropic/claude-3.5-haiku'?" in warnings_for("anthropic/claude-3.5-haikuu")[0]
    assert warnings_for("openai/gpt-4o:nitro") == warnings_for("ollama/llama3") == warnings_for("azure/gpt-4o") == []


def test_problems_without_a_field_of_their_own_go_to_the_nearest_field_part_or_section():
    from scenarios.editor_page import editor_page

    files = change(HAND_EDITED, {"op": "add", "what": "metric"}).files  # a keyword metric without keywords
    files = edited(files, **{"metrics.yaml::metrics[1].name": "anger", "metrics.yaml::metrics[0].range[0]": "100",
                             "metrics.yaml::metrics[0].range[1]": "0"})
    page = editor_page(editing.Edit(files, "form", "check"), editing.editor_check(files))
    fields = {each.name: each for each in all_fields(page.sections)}
    assert fields["metrics.yaml::metrics[0].range"].problems == [
        "a range is [lowest, highest]; [100.0, 0.0] ends below where it starts"]
    [keywords] = fields["metrics.yaml::metrics[1].extraction.type"].problems
    assert keywords.startswith("a keyword extraction needs `keywords:`")

    alone = {path: text for path, text in HAND_EDITED.items() if not path.startswith("actors/")}
    alone["scenario.yaml"] = alone["scenario.yaml"].replace("actors: [fishers, port]\n", "")
    page = editor_page(editing.Edit(alone, "form", "check"), editing.editor_check(alone))
    actors = next(section for section in page.sections if section.key == "actors")
    assert actors.problems and "no actors" in actors.problems[0] and page.unplaced == []


@pytest.mark.django_db
def test_clearing_a_checks_name_is_flagged_at_it_as_typed(client, editor):
    files = edited(change(HAND_EDITED, {"op": "add", "what": "check"}).files,
                   **{"validation-rules.yaml::checks.check_1.description": "Fair play"})
    cleared = posted(files, step="check", **{"validation-rules.yaml::checks.check_1.(name)": ""})
    body = client.post(reverse("scenarios:check"), cleared.urlencode(),
                       content_type="application/x-www-form-urlencoded").json()
    assert [(p["field"], p["text"]) for p in body["problems"]] == [
        ("validation-rules.yaml::checks.check_1.(name)", "a check needs a name")]


@pytest.mark.django_db
def test_a_library_scenario_starts_a_new_one_in_the_editor_and_nothing_is_stored_before_create(client, editor):
    from scenarios.services import scenario_import_library

    scenario_import_library()
    gallery = client.get(reverse("scenarios:gallery")).content.decode()
    start = f"{reverse('scenarios:new')}?from=climate-finance"
    assert start in gallery
    page = client.get(start).content.decode()
    assert 'name="scenario.yaml::name" value="Climate Finance Round (copy)"' in page
    assert Scenario.objects.count() == 6
    created = client.post(reverse("scenarios:new"), form_of(page, step="save"))
    copy = Scenario.objects.get(name="Climate Finance Round (copy)")
    assert created.status_code == 302 and copy.slug == "climate-finance-round-copy"
    assert copy.versions.get().files["actors/qasir.yaml"] == library_files("climate-finance")["actors/qasir.yaml"]
    blank = client.get(reverse("scenarios:new")).content.decode()
    assert "Fill in the scenario: it is checked as you go." in blank and "problem-note" not in blank
    assert 'formaction="/scenarios/new/#add-actors"' in blank and 'formaction="/scenarios/new/#editor-preview"' in blank


def test_what_loads_but_cannot_work_as_meant_is_a_warning_at_its_field():
    files = {**HAND_EDITED, "metrics.yaml": HAND_EDITED["metrics.yaml"].replace("name: fee", "name: fee paid") +
             "    thresholds: {warning: 150}\n",
             "exogenous-events.yaml": "scheduled_events:\n  - name: late\n    schedule: {turns: [9]}\n    effect: Too late.\n"}
    warnings = {(w.file, w.key_path): w.message for w in editing.editor_check(files).warnings}
    assert "end conditions cannot name" in warnings[("metrics.yaml", "metrics[0].name")]
    assert "outside the metric's range (0 to 100)" in warnings[("metrics.yaml", "metrics[0].thresholds.warning")]
    assert "plays 3 turns" in warnings[("exogenous-events.yaml", "scheduled_events[0].schedule.turns")]
    assert editing.editor_check(HAND_EDITED).warnings == []


@pytest.mark.django_db
def test_a_scenario_named_after_a_page_of_the_list_gets_a_slug_of_its_own():
    files = {**HAND_EDITED, "scenario.yaml": HAND_EDITED["scenario.yaml"].replace("'Harbour Dispute'", "'New'")}
    assert editing.scenario_create(files=files).slug == "new-2"  # /scenarios/new/ is the editor
