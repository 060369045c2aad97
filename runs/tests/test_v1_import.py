"""V1 run directories imported as runs: both runs the original V1 program wrote, runs this project's V1 command
line wrote (metrics, QA findings, a halted run resumed), the command, the admin upload, the pages and the API."""

from __future__ import annotations

import io
import json
import shutil
import stat
import zipfile
from collections import Counter
from itertools import product
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.urls import reverse
from ninja.testing import TestClient

from legacy_v1.run_scenario import main as v1_main
from runs import selectors, services
from runs.execution import executor
from runs.models import Communication, CostRecord, Decision, MetricRecord, Run, RunEvent, RunStatus, Turn, ValidationResult
from runs.tests.factories import make_run
from runs.v1_import import V1ImportError, run_import_v1, run_import_v1_zip
from scenarios.archives import shown
from scenarios.models import Scenario
from scenarios.services import scenario_import_folder
from scenarios.tests.factories import UNPACKABLE, make_zip_with
from scenariolab_site.api import api

pytestmark = pytest.mark.django_db

# The original project's folders and runs sit beside the repository (../shared/v1-samples), in CI as here.
V1_SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "v1-samples"
COALITION = "test-coalition-3actors-run-001"
HALTED = "test-regulation-negotiation-run-halted"
api_client = TestClient(api)


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    """A copy of the samples in V1's layout: runs/<run> beside scenarios/<scenario>, the folder V1 ran in."""
    if not V1_SAMPLES.is_dir():
        pytest.skip(f"{V1_SAMPLES} is not present")
    shutil.copytree(V1_SAMPLES / "runs", tmp_path / "runs")
    shutil.copytree(V1_SAMPLES / "scenarios", tmp_path / "scenarios")
    return tmp_path


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("admin", "admin@example.org", "pw")
    client.force_login(user)
    return user


def state_of(folder: Path) -> dict:
    return json.loads((folder / "scenario-state.json").read_text(encoding="utf-8"))


def import_command(*args: str) -> str:
    out = io.StringIO()
    call_command("import_v1_run", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        import_command(*args)
    assert caught.value.returncode == 2
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def v1_written(samples: Path, scenario: str, *extra: str) -> Path:
    """A run directory written by this project's V1 command line (offline provider, deterministic)."""
    folder = samples / "runs" / f"{scenario}-here"
    code = v1_main([str(samples / "scenarios" / scenario), "-o", str(folder), *extra], out=io.StringIO(), err=io.StringIO())
    assert code in (0, 3), code
    return folder


def zipped(folder: Path, *, under: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{under}{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def upload(content: bytes, name: str = "run.zip"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="application/zip")


# ---- the runs V1 itself wrote ----------------------------------------------------------------------------------
def test_the_completed_v1_run_is_stored_with_its_turns_decisions_talks_and_ledger(samples):
    folder = samples / "runs" / COALITION
    document, costs = state_of(folder), json.loads((folder / "costs.json").read_text())
    out = import_command(str(folder))
    run = Run.objects.get()
    assert f"as run {run.pk}" in out and "completed after 3 of 3 turns" in out and "68,320 tokens" in out

    assert run.status == RunStatus.COMPLETED and run.turn == 3 and run.max_turns == 3 and run.halt_reason == ""
    assert run.scenario.slug == "test-coalition-3actors", "found at scenario_path, relative to the folder V1 ran in"
    assert run.scenario_name == document["scenario_name"] and run.number == 1 and not run.offline
    assert run.imported_from["folder"] == str(folder.resolve()) and run.imported_from["status"] == "completed"
    assert "V1 run imported from" in run.provider and "ollama/fake" in run.provider

    states = document["world_state"]["states"]
    assert {t.turn: t.world_state for t in Turn.objects.filter(run=run)} == {int(k): v for k, v in states.items()}
    actors = ["us", "eu", "china"]
    assert Counter(Decision.objects.filter(run=run).values_list("turn", "actor")) == Counter(product([1, 2, 3], actors))
    talks = list(Communication.objects.filter(run=run))
    channels = document["communication_manager_state"]["channels"].values()
    assert len(talks) == sum(len(c["messages"]) for c in channels) == 7
    assert {(m.turn, m.kind) for m in talks} == {(1, "bilateral"), (2, "bilateral"), (2, "coalition")}
    ids = {m.message_id for m in talks}
    assert all(m.in_reply_to in ids for m in talks if m.in_reply_to), "replies point at messages of the run"

    ledger = CostRecord.objects.filter(run=run)
    lines = sum(len(a["turns"]) for a in costs["costs_by_actor"].values()) + len(costs["world_state_costs"])
    assert ledger.count() == lines == run.calls
    tokens = sum(r.tokens for r in ledger)
    assert tokens == run.total_tokens == costs["totals"]["total_tokens"] == document["cost_tracker_state"]["total_tokens"]
    names = {"United States": "us", "European Union": "eu", "China": "china"}
    by_actor = {names[name]: entry["total_tokens"] for name, entry in costs["costs_by_actor"].items()}
    breakdown = selectors.run_cost_breakdown(run=run)["by_actor"]
    assert {actor: line["tokens"] for actor, line in breakdown.items() if actor != "world"} == by_actor
    assert breakdown["world"]["tokens"] == sum(line["tokens"] for line in costs["world_state_costs"])
    assert MetricRecord.objects.filter(run=run).count() == 0  # V1 tracked no metrics in this run (metrics.json)
    assert RunEvent.objects.filter(run=run).values_list("seq", "type").get() == (1, "state_saved")


def test_the_halted_v1_run_is_stored_halted_with_its_reason_and_can_be_resumed(samples):
    folder = samples / "runs" / HALTED
    out = import_command(str(folder))
    run = Run.objects.get()
    assert "halted after 1 of 3 turns" in out and f"--resume {run.pk}" in out
    assert run.status == RunStatus.HALTED and run.turn == 1 and run.max_turns == 3
    assert run.halt_reason.startswith("end_turn:") and "--end-turn" in run.halt_reason
    assert run.scenario.slug == "test-regulation-negotiation"
    assert Counter(Decision.objects.filter(run=run).values_list("turn", "actor")) == Counter(product([1], ["regulator", "tech-company"]))
    assert [m.kind for m in Communication.objects.filter(run=run)] == ["bilateral", "bilateral"]
    # V1's messages are named after their channel, which for these actors is longer than the column holds.
    assert all(len(m.message_id) <= 64 for m in Communication.objects.filter(run=run))
    assert run.total_tokens == state_of(folder)["cost_tracker_state"]["total_tokens"] == 6892

    assert selectors.run_is_resumable(run)
    resumed = services.run_resume(run=run, enqueue=False)
    assert resumed.status == RunStatus.QUEUED and resumed.max_turns == 3


# ---- runs this project's V1 command line wrote -------------------------------------------------------------
def test_metrics_and_qa_findings_come_with_the_run(samples):
    folder = v1_written(samples, "test-regulation-negotiation")
    document, metrics = state_of(folder), json.loads((folder / "metrics.json").read_text())
    run = run_import_v1(folder=folder)
    assert run.status == RunStatus.COMPLETED and run.offline, "offline runs stay labelled offline"
    assert MetricRecord.objects.filter(run=run).count() == len(document["metrics_tracker_state"]["records"]) > 0
    stored = {(m.turn, m.name): m.value for m in MetricRecord.objects.filter(run=run)}
    for turn, values in metrics["metrics_by_turn"].items():
        for name, value in values.items():
            assert stored[(int(turn), name)] == value
    assert ValidationResult.objects.filter(run=run).count() == len(document["execution_metadata"]["engine"]["validation_results"]) > 0
    assert run.total_tokens == document["cost_tracker_state"]["total_tokens"]
    assert run.calls == len(document["cost_tracker_state"]["records"])


def test_a_halted_run_imported_is_resumed_to_the_end_on_the_same_ledger(samples):
    folder = v1_written(samples, "test-coalition-3actors", "--end-turn", "1")
    run = run_import_v1(folder=folder)
    assert run.status == RunStatus.HALTED and run.turn == 1 and "end_turn" in run.halt_reason
    imported = list(CostRecord.objects.filter(run=run).values_list("position", "turn", "actor", "input_tokens", "output_tokens"))

    services.run_resume(run=run, enqueue=False)
    finished = executor.run_execute(run_id=run.pk)
    assert finished.status == RunStatus.COMPLETED and finished.turn == 3
    assert list(CostRecord.objects.filter(run=run).values_list("position", "turn", "actor", "input_tokens", "output_tokens")[:len(imported)]) == imported
    assert Decision.objects.filter(run=run).count() == 9
    assert RunEvent.objects.filter(run=run, seq=2).get().type == "scenario_resumed", "continued, not started again"


# ---- the pages and the API -------------------------------------------------------------------------------------
def test_the_imported_run_shows_on_the_run_page_and_in_the_api(samples, client, staff):
    run = run_import_v1(folder=samples / "runs" / COALITION, owner=staff)
    decision = Decision.objects.filter(run=run).first()

    assert run.pk in [row["run"].pk for row in client.get(reverse("runs:list")).context["rows"]]
    page = client.get(reverse("runs:detail", args=[run.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "V1 run imported from" in html
    assert decision.action[:40] in html

    detail = api_client.get(f"/runs/{run.pk}", user=staff).json()
    assert detail["status"] == "completed" and detail["turn"] == 3 and detail["total_tokens"] == 68320
    assert detail["calls"] == run.calls and detail["scenario"] == "test-coalition-3actors"
    assert len(api_client.get(f"/runs/{run.pk}/decisions", user=staff).json()) == 9
    assert len(api_client.get(f"/runs/{run.pk}/communications", user=staff).json()) == 7
    costs = api_client.get(f"/runs/{run.pk}/costs", user=staff).json()
    assert costs["total_tokens"] == 68320 and len(costs["records"]) == costs["calls"] == run.calls


# ---- the admin upload ------------------------------------------------------------------------------------------
def test_the_admin_imports_a_zipped_run_directory(samples, client, staff):
    listing = client.get(reverse("admin:runs_run_changelist")).content.decode()
    assert reverse("admin:runs_run_import_v1") in listing and "Import V1 run" in listing
    form = client.get(reverse("admin:runs_run_import_v1"))
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.content.decode()

    # The zip holds the run only: its scenario is the stored one of the folder's name.
    scenario = scenario_import_folder(path=samples / "scenarios" / "test-coalition-3actors")
    archive = upload(zipped(samples / "runs" / COALITION, under=f"{COALITION}/"), "coalition.zip")
    answer = client.post(reverse("admin:runs_run_import_v1"), {"archive": archive})
    run = Run.objects.get()
    assert answer.status_code == 302 and answer.url == reverse("admin:runs_run_change", args=[run.pk])
    assert run.owner == staff and run.scenario == scenario and run.status == RunStatus.COMPLETED and run.calls == 37
    assert run.imported_from["folder"] == f"coalition.zip/{COALITION}"
    assert client.get(answer.url).status_code == 200

    again = client.post(reverse("admin:runs_run_import_v1"), {"archive": upload(zipped(samples / "runs" / COALITION))})
    assert again.status_code == 200 and "imported already" in str(again.context["form"].errors["again"])
    assert Run.objects.count() == 1
    client.post(reverse("admin:runs_run_import_v1"), {"archive": upload(zipped(samples / "runs" / COALITION)), "again": "on"})
    assert Run.objects.count() == 2


def test_a_zip_with_the_scenario_beside_the_run_brings_it_along(samples, client, staff):
    shutil.rmtree(samples / "runs" / COALITION)
    archive = upload(zipped(samples, under="v1/"), "v1.zip")  # runs/ and scenarios/, as V1's folder held them
    answer = client.post(reverse("admin:runs_run_import_v1"), {"archive": archive})
    assert answer.status_code == 302
    run = Run.objects.get()
    assert run.scenario.slug == "test-regulation-negotiation" and run.status == RunStatus.HALTED


@pytest.mark.parametrize("content, field, words", [
    (b"not a zip", "archive", "not a readable zip"),
    (None, "archive", "no scenario-state.json"),
    (None, "scenario", "choose it here"),
])
def test_the_admin_shows_bad_uploads_as_form_errors_and_stores_nothing(samples, client, staff, content, field, words):
    if content is None and field == "archive":
        content = zipped(samples / "scenarios" / "test-coalition-3actors")  # a scenario, not a run
    elif content is None:
        content = zipped(samples / "runs" / COALITION)  # its scenario neither in the zip nor stored
    page = client.post(reverse("admin:runs_run_import_v1"), {"archive": upload(content)})
    assert page.status_code == 200 and words in str(page.context["form"].errors[field])
    assert not Run.objects.exists() and not Scenario.objects.exists()


def test_the_upload_form_needs_the_add_permission(client):
    client.force_login(User.objects.create_user("viewer", password="pw", is_staff=True))
    assert client.get(reverse("admin:runs_run_import_v1")).status_code == 403


# ---- bad input ---------------------------------------------------------------------------------------------------
def test_bad_folders_are_one_line_naming_the_file(samples, tmp_path):
    assert "no such folder" in refused(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no scenario-state.json" in refused(str(empty))
    broken = samples / "runs" / COALITION
    (broken / "scenario-state.json").write_text("{ not json", encoding="utf-8")
    message = refused(str(broken))
    assert str(broken / "scenario-state.json") in message and "not readable JSON" in message
    (broken / "scenario-state.json").write_text(json.dumps({"actors": {}}), encoding="utf-8")
    assert "world_state" in refused(str(broken))
    assert not Run.objects.exists()


def test_actors_that_are_not_the_scenarios_are_refused_and_nothing_is_stored(samples):
    message = refused(str(samples / "runs" / HALTED), "--scenario", str(samples / "scenarios" / "test-coalition-3actors"))
    assert "scenario-state.json" in message and "regulator, tech-company" in message and "china, eu, us" in message
    assert not Run.objects.exists() and not Scenario.objects.exists(), "the scenario imported for it is rolled back"


def test_a_scenario_that_cannot_be_found_asks_for_scenario(samples, tmp_path_factory):
    alone = tmp_path_factory.mktemp("elsewhere") / "alone"  # no scenarios/ in any folder above it
    shutil.copytree(samples / "runs" / COALITION, alone)
    message = refused(str(alone))
    assert "scenarios/test-coalition-3actors" in message and "--scenario" in message
    assert "no stored scenario has this slug" in refused(str(alone), "--scenario", "nothing-like-it")
    scenario_import_folder(path=samples / "scenarios" / "test-coalition-3actors", slug="coalition")
    assert import_command(str(alone), "--scenario", "coalition") and Run.objects.get().scenario.slug == "coalition"


def test_a_run_stored_by_scenario_name_needs_no_folder(samples, tmp_path_factory):
    scenario = scenario_import_folder(path=samples / "scenarios" / "test-coalition-3actors", slug="renamed")
    alone = tmp_path_factory.mktemp("elsewhere") / "alone"
    shutil.copytree(samples / "runs" / COALITION, alone)
    assert run_import_v1(folder=alone).scenario == scenario


def test_importing_the_same_run_twice_is_refused_unless_asked(samples):
    folder = str(samples / "runs" / COALITION)
    first = Run.objects.get(pk=int(import_command(folder).split("as run ")[1].split()[0]))
    message = refused(folder)
    assert "imported already" in message and f"as run {first.pk}" in message and "--again" in message
    assert Run.objects.count() == 1
    import_command(folder, "--again")
    second = Run.objects.exclude(pk=first.pk).get()
    assert second.number > first.number and second.imported_from["key"] == first.imported_from["key"]


def test_an_unknown_owner_is_bad_input(samples):
    assert "no such user" in refused(str(samples / "runs" / COALITION), "--owner", "nobody")
    User.objects.create_user("ada", password="pw")
    import_command(str(samples / "runs" / COALITION), "--owner", "ada")
    assert Run.objects.get().owner.username == "ada"


def zip_with(name: str, *, link: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "{}")
    return buffer.getvalue()


@pytest.mark.parametrize("name, link, words", [
    ("../scenario-state.json", False, "points outside"),
    ("/tmp/scenario-state.json", False, "absolute path"),
    ("run/scenario-state.json", True, "symbolic link"),
    ("run\\scenario-state.json", False, "uses '\\'"),
])
def test_zips_with_path_tricks_are_refused(name, link, words):
    with pytest.raises(V1ImportError) as caught:
        run_import_v1_zip(upload=zip_with(name, link=link))
    assert words in str(caught.value) and "the uploaded archive" in str(caught.value)
    assert not Run.objects.exists()


def stored_runs() -> list[list[tuple]]:
    return [list(model.objects.order_by("pk").values_list()) for model in (Run, Turn, RunEvent, Scenario)]


@pytest.mark.parametrize(("members", "entry", "words"), list(UNPACKABLE.values()), ids=list(UNPACKABLE))
def test_a_member_that_cannot_be_unpacked_is_refused_naming_it(members, entry, words):
    make_run()
    before = stored_runs()
    with pytest.raises(V1ImportError) as caught:
        run_import_v1_zip(upload=make_zip_with(["harbour/scenario-state.json", *members]))
    message = str(caught.value)
    assert message.startswith("the uploaded archive: refusing the archive: ") and f"{shown(entry)} {words}" in message
    assert message.endswith("; zip the run directory as it is on disk")
    assert stored_runs() == before


@pytest.mark.parametrize("shape", ["name-too-long", "too-deep", "file-then-folder", "folder-and-file-of-one-name"])
def test_the_admin_shows_a_member_that_cannot_be_unpacked_as_a_form_error(client, staff, shape):
    members, entry, words = UNPACKABLE[shape]
    make_run()
    before = stored_runs()
    page = client.post(reverse("admin:runs_run_import_v1"), {"archive": upload(make_zip_with(members), "run.zip")})
    assert page.status_code == 200
    assert f"run.zip: refusing the archive: {shown(entry)} {words}" in page.context["form"].errors["archive"][0]
    assert stored_runs() == before


def test_a_zip_with_several_runs_is_refused(samples):
    with pytest.raises(V1ImportError, match="2 run directories"):
        run_import_v1_zip(upload=zipped(samples / "runs"))


# ---- branches, definition/ folders, damaged files ----------------------------------------------------------------
def v1_branch_of(samples: Path, name: str) -> Path:
    """What V1's --branch-from wrote: the parent's state with its lineage, its start time kept."""
    branch = samples / "runs" / name
    shutil.copytree(samples / "runs" / COALITION, branch)
    document = state_of(branch)
    document["execution_metadata"].update({"branched_from": "output/test-coalition-3actors/run-001", "branch_point": 1,
                                           "output_path": f"output/test-coalition-3actors/{name}"})
    (branch / "scenario-state.json").write_text(json.dumps(document), encoding="utf-8")
    return branch


def test_a_v1_branch_is_not_taken_for_its_parent(samples):
    parent = run_import_v1(folder=samples / "runs" / COALITION)
    first = run_import_v1(folder=v1_branch_of(samples, "run-002"))
    second = run_import_v1(folder=v1_branch_of(samples, "run-003"))
    assert len({parent.imported_from["key"], first.imported_from["key"], second.imported_from["key"]}) == 3
    assert "imported already" in refused(str(samples / "runs" / "run-002"))


@pytest.mark.parametrize("written", ["scenarios/test-coalition-3actors", "scenarios/test-coalition-3actors/definition"])
def test_a_scenario_kept_in_definition_is_found_and_named_after_its_folder(samples, written):
    scenario = samples / "scenarios" / "test-coalition-3actors"
    (scenario / "definition").mkdir()
    for entry in list(scenario.iterdir()):
        if entry.name != "definition":
            entry.rename(scenario / "definition" / entry.name)
    folder = samples / "runs" / COALITION
    document = state_of(folder)
    document["scenario_path"] = written
    (folder / "scenario-state.json").write_text(json.dumps(document), encoding="utf-8")
    assert run_import_v1(folder=folder).scenario.slug == "test-coalition-3actors"


@pytest.mark.parametrize(("damage", "words"), [
    (lambda d: next(iter(d["communication_manager_state"]["channels"].values()))["messages"][0].update({"content": None}),
     "messages.0.content: expected text, got null"),
    (lambda d: d.update({"current_turn": -3}), "current_turn: expected 0 or more, got -3"),
    (lambda d: d["world_state"]["actor_decisions"]["1"].update({"China": "text"}), "world_state.actor_decisions.1.China: expected an object"),
])
def test_a_damaged_file_is_refused_naming_the_key_and_nothing_is_stored(samples, damage, words):
    folder = samples / "runs" / COALITION
    document = state_of(folder)
    damage(document)
    (folder / "scenario-state.json").write_text(json.dumps(document), encoding="utf-8")
    message = refused(str(folder))
    assert words in message and str(folder / "scenario-state.json") in message
    assert not Run.objects.exists()
