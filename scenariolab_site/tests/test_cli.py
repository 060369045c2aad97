"""The `scenario-lab` console script, as a real process: its help, its subcommands, exit codes, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from runs.models import Run
from runs.tests.workers import worker_environment
from scenarios.tests.factories import SCENARIO_YAML, scenario_files, write_folder

SCRIPT = Path(sys.executable).with_name("scenario-lab")  # installed beside python by `pip install -e .`
MANAGE = Path(settings.BASE_DIR) / "manage.py"


def scenario_lab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    assert SCRIPT.is_file(), f"{SCRIPT} is missing: install the project (`pip install -e .`, as the Makefile does)"
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def throwaway(tmp_path) -> dict[str, str]:
    """A person's environment: default settings (DJANGO_SETTINGS_MODULE unset), an empty embedded database
    in a temporary folder, no model keys."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCENARIOLAB_")
           and key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")}
    env |= {"SCENARIOLAB_DATA_DIR": str(tmp_path), "SCENARIOLAB_OUTPUT_DIR": str(tmp_path / "output")}
    for key in ("OPENROUTER_API_KEY", "OPENAI_API_KEY", "OLLAMA_BASE_URL"):
        env.pop(key, None)
    return env


def test_help_lists_the_subcommands_and_each_has_its_commands_help(throwaway):
    listed = scenario_lab("--help", env=throwaway)
    assert listed.returncode == 0, listed.stderr
    for name in ("run", "validate", "estimate", "compare"):
        assert f"\n  {name} " in listed.stdout

    run_help = scenario_lab("run", "--help", env=throwaway)
    assert run_help.returncode == 0 and run_help.stdout.startswith("usage: scenario-lab run ")
    assert "--credit-limit" in run_help.stdout and "--resume" in run_help.stdout

    assert scenario_lab(env=throwaway).returncode == 2  # no command: the usage, on stderr
    assert one_line_error(scenario_lab("frob", env=throwaway)).startswith("scenario-lab: unknown command 'frob'")


def test_default_settings_use_the_database_the_environment_names(throwaway, tmp_path):
    migrated = subprocess.run([sys.executable, str(MANAGE), "migrate", "-v", "0"], env=throwaway,
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr

    valid = scenario_lab("validate", "ai-summit", env=throwaway)
    assert valid.returncode == 0, valid.stderr
    assert "ai-summit is valid" in valid.stdout
    assert (tmp_path / "scenariolab.sqlite3").is_file()

    estimate = scenario_lab("estimate", "ai-summit", "--turns", "1", "--json", env=throwaway)
    assert estimate.returncode == 0, estimate.stderr
    assert json.loads(estimate.stdout)["turns"] == 1


@pytest.mark.django_db(transaction=True)
def test_run_twice_then_compare_then_bad_input(tmp_path):
    env = worker_environment()  # the test database, shared with this process
    ids = []
    for seed in ("1", "2"):
        done = scenario_lab("run", "ai-summit", "--turns", "1", "--seed", seed, "--json", env=env)
        assert done.returncode == 0, done.stderr
        ids.append(str(json.loads(done.stdout)["run"]))
    assert Run.objects.filter(status="completed").count() == 2

    compared = scenario_lab("compare", *ids, env=env)
    assert compared.returncode == 0, compared.stderr
    assert "Decisions at turn 1" in compared.stdout and f"--- run {ids[0]}, turn 1" in compared.stdout

    assert one_line_error(scenario_lab("compare", ids[0], "99999", env=env)) == "CommandError: No run 99999."
    assert one_line_error(scenario_lab("validate", "no-such-scenario", env=env)).startswith(
        "CommandError: No scenario 'no-such-scenario'")
    assert one_line_error(scenario_lab("estimate", "ai-summit", "--turns", "0", env=env)).endswith(
        "turns must be between 1 and 1000, not 0")
    broken = write_folder(tmp_path / "broken", scenario_files(**{"scenario.yaml": SCENARIO_YAML.replace("turns: 4", "turns: many")}))
    assert one_line_error(scenario_lab("validate", str(broken), env=env)) == (
        f"CommandError: {broken}: scenario.yaml:5: turns: expected a whole number, got text ('many')")
    assert one_line_error(scenario_lab("run", str(broken), env=env)).startswith(f"CommandError: {broken}: scenario.yaml:5")
