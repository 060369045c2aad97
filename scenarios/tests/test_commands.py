"""`manage.py import_scenarios`: the library by default, folders by path, bad input as one clear line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from scenarios.models import Actor, Scenario
from scenarios.tests.factories import scenario_files, write_folder


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_scenarios", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_no_paths_imports_the_library_once() -> None:
    library = sorted(p.name for p in Path(settings.SCENARIO_LIBRARY_DIR).iterdir() if (p / "scenario.yaml").is_file())
    assert "ai-summit" in library and len(library) >= 6
    stored = "".join(f"stored {name}\n" for name in library)
    assert run() == stored
    actors = Actor.objects.count()
    assert "nothing to store" in run()
    assert Scenario.objects.count() == len(library) and Actor.objects.count() == actors
    assert run("--update") == stored
    assert Actor.objects.count() == actors


@pytest.mark.django_db
def test_paths_are_stored_under_their_folder_names(tmp_path: Path) -> None:
    harbour = write_folder(tmp_path / "harbour", scenario_files())
    bay = write_folder(tmp_path / "bay", scenario_files())
    assert run(str(harbour), str(bay)) == "stored harbour\nstored bay\n"
    assert "skipped harbour: already stored" in run(str(harbour))
    assert run("--update", str(harbour)) == "stored harbour\n"
    assert sorted(Scenario.objects.values_list("slug", flat=True)) == ["bay", "harbour"]


@pytest.mark.django_db
def test_one_broken_folder_stores_nothing(tmp_path: Path) -> None:
    good = write_folder(tmp_path / "harbour", scenario_files())
    broken = write_folder(tmp_path / "broken", scenario_files(**{"scenario.yaml": "name: x\nturns: many\n"}))
    with pytest.raises(CommandError) as caught:
        run(str(good), str(broken))
    assert caught.value.returncode == 2
    assert "scenario.yaml:2: turns: expected a whole number" in str(caught.value)
    assert not Scenario.objects.exists()


def test_bad_path_is_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    # A real process: what a person sees is the exit status and stderr, never a traceback.
    env = {**os.environ, "SCENARIOLAB_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "import_scenarios", str(tmp_path / "nope")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"CommandError: {tmp_path / 'nope'}: the folder "
                                                  f"{tmp_path / 'nope'} does not exist"]
    assert "Traceback" not in result.stderr
