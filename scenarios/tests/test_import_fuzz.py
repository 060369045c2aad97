"""Generated hostile scenario folders and zips through the import services: stored whole, or refused with the
services' own errors (every load error naming a file), never another exception, never a half-stored scenario.
Bounded in `make test` (30 examples each); SCENARIOLAB_RELIABILITY_FULL=1 runs 500."""

from __future__ import annotations

import io
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from engine.scenario import ScenarioLoadError
from engine.scenario.tests.hostile import FUZZ, assert_located, scenario_folders, write_folder
from scenarios.models import Actor, BackgroundDocument, Scenario
from scenarios.services import ScenarioImportError, ScenarioSlugTaken, scenario_import_folder, scenario_import_zip

pytestmark = pytest.mark.django_db


def rows() -> tuple[int, int, int]:
    return Scenario.objects.count(), Actor.objects.count(), BackgroundDocument.objects.count()


def imported_whole_or_nothing(action) -> None:
    before = rows()
    try:
        stored = action()
    except ScenarioLoadError as exc:
        event("refused: does not load")
        assert_located(exc)
    except (ScenarioImportError, ScenarioSlugTaken) as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc).strip() and "\n" not in str(exc).strip(), exc
    else:
        event("stored")
        assert stored.actors.count() >= 1
        assert rows()[0] in (before[0], before[0] + 1)  # updated, or created
        return
    assert rows() == before, "a refused import stored something"


@FUZZ
@given(files=scenario_folders(), slug=st.sampled_from([None, "harbour"]), update=st.booleans())
def test_a_hostile_folder_is_stored_whole_or_refused(files, slug, update):
    with tempfile.TemporaryDirectory() as temporary:
        folder = write_folder(Path(temporary) / "harbour", files)
        imported_whole_or_nothing(lambda: scenario_import_folder(path=folder, slug=slug, update=update))


# Member names a zip can carry: path tricks, backslashes, drive letters, NUL, confusables, duplicates, names
# too long or too deep to unpack, a file where the scenario has a folder, a folder under one of its files, no name.
member_names = st.one_of(
    st.sampled_from(["../evil.yaml", "../../etc/cron.d/x", "/etc/passwd", "C:/x.yaml", "a\\..\\..\\x.yaml",
                     "harbour/../../x.yaml", "harbour/actors/../../../x", "harbour/actors/ﬁshers.yaml",
                     "harbour/actors/fishers.yaml", "harbour/scenario.yaml", "scenario.yaml", "__MACOSX/._x",
                     "harbour/.DS_Store", "harbour/", "harbour/actors/", "x\x00.yaml", "harbour/actors/a\x00b.yaml",
                     "harbour/" + "n" * 256, "harbour/actors/" + "é" * 128 + ".yaml", "harbour/" + "d/" * 40 + "x",
                     "harbour/" + "/".join(["p" * 200] * 6), "harbour/actors", "harbour/scenario.yaml/x",
                     "harbour/actors/fishers.yaml/", "harbour/./scenario.yaml", "harbour//actors/x.yaml", "", ".",
                     "./", "harbour/a\nb.yaml", "harbour/\x7f"]),
    st.text(max_size=30),
)


@st.composite
def hostile_zips(draw) -> bytes:
    files = draw(scenario_folders())
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate names are one of the tricks
        top = draw(st.sampled_from(["harbour/", "", "a/b/"]))
        for relative, content in files.items():
            archive.writestr(top + relative, content)
        for name in draw(st.one_of(st.just([]), st.lists(member_names, max_size=2))):
            info = zipfile.ZipInfo(name)
            kind = draw(st.sampled_from(["file", "symlink", "encrypted", "executable"]))
            if kind == "symlink":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            elif kind == "executable":
                info.external_attr = (stat.S_IFREG | 0o4755) << 16
            try:
                archive.writestr(info, draw(st.binary(max_size=64)))
            except (ValueError, UnicodeError):
                pass  # zipfile itself refuses to write some names
            if kind == "encrypted":  # writestr clears the flag; the central directory, written at close, keeps it
                info.flag_bits |= 0x1
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "garbage"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    elif damage == "garbage":
        data = draw(st.binary(max_size=300))
    return data


@FUZZ
@given(data=hostile_zips(), slug=st.sampled_from([None, "harbour"]), update=st.booleans())
def test_a_hostile_zip_is_stored_whole_or_refused(data, slug, update):
    imported_whole_or_nothing(lambda: scenario_import_zip(upload=data, slug=slug, update=update))


def test_a_member_name_flagged_utf8_that_is_not_is_refused():
    """Found by the test above: zipfile raised UnicodeDecodeError (a 500 from the API) for such an archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("harbour/\u00e9.yaml", "name: x\n")
    data = buffer.getvalue().replace("\u00e9".encode(), b"\x80\x80", 1)  # the local header's copy of the name
    before = rows()
    with pytest.raises(ScenarioImportError, match="not a readable zip archive"):
        scenario_import_zip(upload=data)
    assert rows() == before
