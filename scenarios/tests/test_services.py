"""Scenario services on the real database: engine round trips, folder/zip/library import, export, copies."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from engine.scenario import Scenario as EngineScenario
from engine.scenario import ScenarioLoadError
from scenarios.models import Actor, BackgroundDocument, Scenario
from scenarios.selectors import scenario_get, scenario_list
from scenarios.services import (
    ScenarioImportError,
    ScenarioSlugTaken,
    StoredScenarioError,
    scenario_duplicate,
    scenario_export_zip,
    scenario_from_engine,
    scenario_import_folder,
    scenario_import_library,
    scenario_import_zip,
    scenario_to_engine,
    scenario_validate,
)
from runs.models import Run
from scenarios.tests.factories import SCENARIO_YAML, make_scenario, make_zip, scenario_files, write_folder

pytestmark = pytest.mark.django_db
COMPARED = {"source", "warnings"}
V1_SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "v1-samples" / "scenarios"


def dump(scenario: EngineScenario) -> dict:
    return scenario.model_dump(exclude=COMPARED)


def stored_dump(slug: str) -> dict:
    return dump(scenario_to_engine(scenario=scenario_get(slug=slug)))


# ---- engine <-> rows ------------------------------------------------------------------------------------------
def test_bundled_scenario_survives_the_database() -> None:
    original = EngineScenario.load(Path(settings.SCENARIO_LIBRARY_DIR) / "ai-summit")
    row = scenario_from_engine(config=original, slug="summit")

    assert row.actors.count() == len(original.actors)
    assert [a.file_stem for a in row.actors.all()] == original.config.actors
    assert row.actors.get(short_name="norvale").information_access["private"]  # private information kept
    assert stored_dump("summit") == dump(original)


@pytest.mark.skipif(not V1_SAMPLES.is_dir(),
                    reason=f"V1 sample folders not found at {V1_SAMPLES} (../shared beside the clone)")
@pytest.mark.parametrize("name", sorted(p.name for p in V1_SAMPLES.iterdir()) if V1_SAMPLES.is_dir() else [])
def test_v1_samples_survive_the_database(name: str) -> None:
    original = EngineScenario.load(V1_SAMPLES / name)
    scenario_from_engine(config=original, slug=name)
    assert stored_dump(name) == dump(original)


def test_unknown_keys_and_v1_metrics_survive_the_database(tmp_path: Path) -> None:
    row = scenario_import_folder(path=write_folder(tmp_path / "harbour", scenario_files()))

    assert row.slug == "harbour"
    assert row.extra == {"harbour_master": "Ingrid"}
    assert row.actors.get(short_name="fishers").extra == {"boats": 40}
    assert row.actors.get(short_name="fishers").decision_making_style == "cautious"  # V1's decision_style
    again = scenario_to_engine(scenario=row)
    assert dump(again) == dump(EngineScenario.load(tmp_path / "harbour"))
    assert isinstance(again.metrics.metrics, dict)


def test_an_end_condition_survives_the_database(tmp_path: Path) -> None:
    text = SCENARIO_YAML.replace("turns: 4\n", "scenario_length:\n  type: condition\n  condition: boats_at_sea >= 30 or turns >= 6\n")
    row = scenario_import_folder(path=write_folder(tmp_path / "harbour", scenario_files(**{"scenario.yaml": text})))
    assert (row.end_condition, row.turns) == ("boats_at_sea >= 30 or turns >= 6", 6)
    assert scenario_to_engine(scenario=row).config.end_condition == "boats_at_sea >= 30 or turns >= 6"
    row.end_condition = ""
    row.save()
    assert scenario_to_engine(scenario=row).config.end_condition is None


def test_update_replaces_actors_and_documents_by_slug(tmp_path: Path) -> None:
    first = scenario_import_folder(path=write_folder(tmp_path / "harbour", scenario_files()))
    files = scenario_files(**{"actors/port-authority.yaml": "name: Harbour Board\nshort_name: board\n"})
    del files["background/geography.md"]
    second = scenario_import_folder(path=write_folder(tmp_path / "v2", files), slug="harbour", update=True)

    assert second.pk == first.pk
    assert sorted(second.actors.values_list("short_name", flat=True)) == ["board", "fishers"]
    assert not second.background_documents.exists()
    assert Actor.objects.count() == 2


def test_existing_slug_is_not_replaced_unless_asked(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "harbour", scenario_files())
    scenario_import_folder(path=folder)
    with pytest.raises(ScenarioSlugTaken, match="'harbour' already exists"):
        scenario_import_folder(path=folder)
    assert Scenario.objects.count() == 1


def test_a_failed_update_leaves_the_stored_scenario_as_it_was(tmp_path: Path) -> None:
    scenario_import_folder(path=write_folder(tmp_path / "harbour", scenario_files()))
    before = stored_dump("harbour")
    # Loads in the engine, but ".notes" cannot be stored as a document name: the whole update is rolled back.
    broken = EngineScenario.load(write_folder(tmp_path / "v2", scenario_files(**{"background/.notes.md": "x"})))
    with pytest.raises(ScenarioImportError, match="background document '.notes'"):
        scenario_from_engine(config=broken, slug="harbour")
    assert stored_dump("harbour") == before


def test_broken_folder_stores_nothing(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "harbour", scenario_files(**{"scenario.yaml": "name: x\nturns: many\n"}))
    with pytest.raises(ScenarioLoadError) as caught:
        scenario_import_folder(path=folder)
    assert "scenario.yaml:2: turns: expected a whole number" in str(caught.value)
    assert not Scenario.objects.exists()


# ---- validation of stored rows --------------------------------------------------------------------------------
def test_valid_stored_scenario_has_no_problems() -> None:
    assert scenario_validate(scenario=make_scenario()) == []


def test_stored_scenario_that_no_longer_validates_names_file_field_and_problem() -> None:
    scenario = make_scenario(metrics={"metrics": [{"name": "boats", "extraction": {"type": "regexx"}}]})
    scenario.actors.filter(position=1).update(goals=[3], control="robot")

    problems = scenario_validate(scenario=scenario)

    assert "metrics.yaml: metrics[0].extraction.type: expected one of 'pattern', 'keyword', 'llm' or 'manual', " \
           "got text ('regexx')" in problems[-1]
    assert any(p.startswith("actors/town-2.yaml: control: expected one of 'ai' or 'human'") for p in problems)
    with pytest.raises(StoredScenarioError, match=f"Stored scenario '{scenario.slug}' has 3 problems"):
        scenario_to_engine(scenario=scenario)


def test_scenario_without_actors_is_invalid() -> None:
    assert scenario_validate(scenario=make_scenario(actors=0)) == [
        "actors: the scenario has no actors. Add at least one actor"
    ]


# ---- zip import and export ------------------------------------------------------------------------------------
def test_export_then_import_gives_an_equal_scenario() -> None:
    original = make_scenario(extra={"harbour_master": "Ingrid"}, credit_limit=1.5)
    expected = dump(scenario_to_engine(scenario=original))
    archive = scenario_export_zip(scenario=original)
    slug = original.slug
    original.delete()

    imported = scenario_import_zip(upload=archive)

    assert imported.slug == slug  # the archive's top-level folder
    assert dump(scenario_to_engine(scenario=imported)) == expected
    assert zipfile.ZipFile(io.BytesIO(archive)).namelist()[0] == f"{slug}/scenario.yaml"
    # Once stored from a file, a scenario exports to the same bytes every time.
    again = scenario_export_zip(scenario=imported)
    imported.delete()
    assert scenario_export_zip(scenario=scenario_import_zip(upload=again)) == again


def test_zip_with_files_at_the_top_takes_its_slug_from_the_file_name() -> None:
    upload = io.BytesIO(make_zip(scenario_files(), prefix=""))
    upload.name = "Old Harbour.zip"
    assert scenario_import_zip(upload=upload).slug == "old-harbour"


def test_zip_with_macos_metadata_imports() -> None:
    files = {**scenario_files(), "__MACOSX/._scenario.yaml": b"\x00\x05", ".DS_Store": b"\x00"}
    assert scenario_import_zip(upload=make_zip(files)).actors.count() == 2


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (b"this is not a zip", "is not a readable zip archive"),
        (make_zip({"../evil/scenario.yaml": "name: x"}, prefix=""), "points outside the archive's folder"),
        (make_zip({"/etc/scenario.yaml": "name: x"}, prefix=""), "is an absolute path"),
        (make_zip({**scenario_files(), "background/huge.md": b"0" * (11 * 1024 * 1024)}), "more than 10 MB"),
        (make_zip({"a/scenario.yaml": "x", "b/scenario.yaml": "x"}, prefix=""), "inside one top-level folder"),
        (make_zip({}, prefix=""), "the archive is empty"),
    ],
    ids=["not-a-zip", "dot-dot", "absolute", "oversized", "two-folders", "empty"],
)
def test_bad_archives_are_refused_and_store_nothing(archive: bytes, message: str) -> None:
    with pytest.raises(ScenarioImportError, match=message):
        scenario_import_zip(upload=archive)
    assert not Scenario.objects.exists()


def test_symlink_in_archive_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("harbour/scenario.yaml")
        link.external_attr = (0o120777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ScenarioImportError, match="symbolic link"):
        scenario_import_zip(upload=buffer.getvalue())


def test_zip_of_a_broken_folder_names_the_archive_and_stores_nothing() -> None:
    upload = io.BytesIO(make_zip(scenario_files(**{"actors/fishers.yaml": "short_name: fishers\n"})))
    upload.name = "harbour.zip"
    with pytest.raises(ScenarioLoadError) as caught:
        scenario_import_zip(upload=upload)
    assert str(caught.value).startswith("Scenario folder harbour.zip/harbour has 1 problem:")
    assert "actors/fishers.yaml" in str(caught.value) and "name: this key is required" in str(caught.value)
    assert not Scenario.objects.exists()


def test_export_of_an_invalid_scenario_says_why() -> None:
    scenario = make_scenario(turns=0)
    with pytest.raises(StoredScenarioError, match="scenario.yaml: turns: expected a number at least 1"):
        scenario_export_zip(scenario=scenario)


# ---- library, copies, selectors ------------------------------------------------------------------------------
def test_library_import_is_idempotent() -> None:
    library = sorted(p.name for p in Path(settings.SCENARIO_LIBRARY_DIR).iterdir() if (p / "scenario.yaml").is_file())
    first = scenario_import_library()
    assert sorted(s.slug for s in first) == library
    actors = Actor.objects.count()

    assert scenario_import_library() == []
    assert Scenario.objects.count() == len(library) and Actor.objects.count() == actors

    Scenario.objects.filter(slug="ai-summit").update(name="Renamed")
    assert sorted(s.slug for s in scenario_import_library(update=True)) == library
    assert scenario_get(slug="ai-summit").name == "International AI Safety Summit"
    assert Scenario.objects.count() == len(library) and Actor.objects.count() == actors


def test_duplicate_copies_rows_under_a_fresh_slug() -> None:
    original = make_scenario(slug="harbour", metrics={"metrics": []})
    first, second = scenario_duplicate(scenario=original), scenario_duplicate(scenario=original)

    assert (first.slug, second.slug) == ("harbour-copy", "harbour-copy-2")
    assert first.name == f"{original.name} (copy)"
    assert dump(scenario_to_engine(scenario=first)).pop("config") is not None
    a, b = dump(scenario_to_engine(scenario=original)), dump(scenario_to_engine(scenario=first))
    assert a["config"].pop("name") != b["config"].pop("name")
    assert a == b
    assert original.actors.count() == 2 and BackgroundDocument.objects.count() == 3


def test_selectors() -> None:
    make_scenario(name="B", slug="b")
    make_scenario(name="A", slug="a", actors=3)
    assert [(s.slug, s.actor_count) for s in scenario_list()] == [("a", 3), ("b", 2)]
    assert scenario_get(slug="b").name == "B"
    assert scenario_get(slug="missing") is None


# ---- versions ----------------------------------------------------------------------------------------------------
def test_each_save_that_changes_a_file_is_a_version_and_runs_record_theirs() -> None:
    from runs.services import run_create, run_plan
    from scenarios.selectors import scenario_version_diff

    folder = Path(settings.SCENARIO_LIBRARY_DIR) / "ai-summit"
    config = EngineScenario.load(folder)
    stored = scenario_from_engine(config=config, slug="versioned")
    assert [v.number for v in stored.versions.all()] == [1]
    scenario_from_engine(config=config, slug="versioned")  # the same files: no new version
    assert stored.versions.count() == 1

    run = run_create(plan=run_plan(config=config, turns=1), slug="versioned", scenario=stored)
    assert run.scenario_version == 1

    changed = config.model_copy(update={"config": config.config.model_copy(update={"turns": 3})})
    scenario_from_engine(config=changed, slug="versioned")
    first, second = stored.versions.order_by("number")
    assert second.number == 2
    later = run_create(plan=run_plan(config=changed, turns=1), slug="versioned", scenario=Scenario.objects.get(slug="versioned"))
    assert later.scenario_version == 2 and Run.objects.get(pk=run.pk).scenario_version == 1

    [diff] = scenario_version_diff(older=first, newer=second)
    assert diff.path == "scenario.yaml" and diff.status == "changed"
    assert ("remove", "-turns: 5") in diff.lines and ("add", "+turns: 3") in diff.lines


def test_a_copy_starts_its_own_history() -> None:
    original = scenario_from_engine(config=EngineScenario.load(Path(settings.SCENARIO_LIBRARY_DIR) / "ai-summit"),
                                    slug="original")
    copy = scenario_duplicate(scenario=original)
    assert [v.number for v in copy.versions.all()] == [1]
    copied, first = copy.versions.get().files, original.versions.get().files
    assert copied.keys() == first.keys() and copied["scenario.yaml"].startswith(f"name: {copy.name}\n")
    assert {path: text for path, text in copied.items() if path != "scenario.yaml"} == {
        path: text for path, text in first.items() if path != "scenario.yaml"}
