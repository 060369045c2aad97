"""Generated hostile scenario folders: the loader either loads them or raises ScenarioLoadError whose every
error names a file and says what is wrong; never another exception. Bounded in `make test` (30 examples);
SCENARIOLAB_RELIABILITY_FULL=1 runs 500."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given

from engine.scenario import ScenarioLoadError, load_scenario_folder
from engine.scenario.tests.hostile import FUZZ, assert_located, scenario_folders, write_folder


@FUZZ
@given(files=scenario_folders())
def test_a_hostile_folder_loads_or_gets_located_errors(files):
    with tempfile.TemporaryDirectory() as temporary:
        folder = write_folder(Path(temporary) / "scenario", files)
        try:
            load_scenario_folder(folder)
        except ScenarioLoadError as exc:
            assert_located(exc)
