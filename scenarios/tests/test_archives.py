"""Zip members whose names cannot be unpacked (too long, too deep, clashing, control characters): refused before
anything is written, naming the entry and the fix; names at the limits still unpack."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from scenarios.archives import (
    MAX_FOLDER_DEPTH,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    ScenarioImportError,
    extract_safely,
    refuse_reason,
    shown,
)
from scenarios.models import Actor, BackgroundDocument, Scenario
from scenarios.services import scenario_import_zip
from scenarios.tests.factories import UNPACKABLE, make_scenario, make_zip_with, scenario_files

pytestmark = pytest.mark.django_db


def stored() -> list[list[tuple]]:
    """Every stored scenario, actor and document as values, to compare before and after a refused import."""
    return [list(model.objects.order_by("pk").values_list()) for model in (Scenario, Actor, BackgroundDocument)]


@pytest.mark.parametrize(("members", "entry", "words"), list(UNPACKABLE.values()), ids=list(UNPACKABLE))
def test_an_unpackable_member_is_refused_naming_it_and_nothing_stored_changes(members, entry, words):
    make_scenario(slug="harbour", name="Stored before")
    before = stored()
    with pytest.raises(ScenarioImportError) as caught:
        scenario_import_zip(upload=make_zip_with(members), slug="harbour", update=True)
    message = str(caught.value)
    assert message.startswith("refusing the archive: ") and f"{shown(entry)} {words}" in message, message
    assert "\n" not in message and len(message) < 400
    assert stored() == before


def test_a_long_name_is_shown_by_its_ends():
    name = "harbour/" + "/".join(["p" * 200] * 6) + "/x.md"
    assert shown(name) == repr(name[:60] + "…" + name[-30:])
    assert shown("harbour/a\x00b") == "'harbour/a\\x00b'"


def test_a_nul_byte_in_a_name_is_refused_though_zipfile_cuts_the_name_there():
    # zipfile writes no NUL in a name: the name is changed in the finished archive.
    data = make_zip_with(["harbour/background/aXb.md"]).replace(b"/aXb.md", b"/a\x00b.md")
    with pytest.raises(ScenarioImportError, match=r"'harbour/background/a\\x00b.md' has a control character"):
        scenario_import_zip(upload=data)
    assert not Scenario.objects.exists()


LONGEST_NAME = "n" * (MAX_NAME_BYTES - 3) + ".md"
DEEPEST = "/".join(["d"] * MAX_FOLDER_DEPTH) + "/x.md"
LONGEST_PATH = "/".join(["p" * 200] * 5) + "/" + "x" * (MAX_PATH_BYTES - 1005)


def test_names_at_the_limits_unpack(tmp_path: Path):
    assert len(LONGEST_PATH.encode()) == MAX_PATH_BYTES
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in (LONGEST_NAME, "é" * 127, DEEPEST, LONGEST_PATH, "./", "./top.md", "a//b.md"):
            archive.writestr(name, "" if name.endswith("/") else "x")
    with zipfile.ZipFile(buffer) as archive:
        names = extract_safely(archive, tmp_path)
    assert len(names) == 6 and (tmp_path / DEEPEST).read_text() == "x" and (tmp_path / "a" / "b.md").is_file()


@pytest.mark.parametrize("name", ["n" + LONGEST_NAME, "é" * 128, "d/" + DEEPEST, LONGEST_PATH + "x"],
                         ids=["name", "name-in-utf8", "depth", "path"])
def test_one_past_each_limit_is_refused(name):
    assert refuse_reason(zipfile.ZipInfo(name))


def test_a_zip_with_dot_slash_names_still_imports():
    """Some zip tools write './' and './scenario.yaml': the top itself is no clash."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("./", "")
        for relative, content in scenario_files().items():
            archive.writestr(f"./{relative}", content)
    upload = io.BytesIO(buffer.getvalue())
    upload.name = "harbour.zip"
    assert scenario_import_zip(upload=upload).actors.count() == 2


def test_a_name_the_filesystem_refuses_after_the_checks_is_refused_naming_it(tmp_path: Path):
    """Belt and braces: a refusal the name checks did not foresee (here a file where the folder must go) is
    the import's error naming the member, not an OSError."""
    (tmp_path / "harbour").write_text("in the way")
    with zipfile.ZipFile(io.BytesIO(make_zip_with([]))) as archive, pytest.raises(ScenarioImportError) as caught:
        extract_safely(archive, tmp_path)
    assert str(caught.value).startswith("refusing the archive: 'harbour/scenario.yaml' cannot be unpacked here (")
    assert str(caught.value).endswith("); rename it or leave it out")
