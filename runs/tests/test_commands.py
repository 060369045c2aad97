"""`validate_scenario`, `estimate_scenario` and `compare_runs`, run for real with call_command (offline provider)."""

import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from ninja.testing import TestClient

from runs.execution import executor
from runs.models import Run
from runs.tests.factories import make_run, summit_config
from scenariolab_site.api import api
from scenarios.tests.factories import SCENARIO_YAML, make_scenario, scenario_files, write_folder

# "__all__": runs publish to the embedded profile's channel layer, which has a database of its own.
pytestmark = pytest.mark.django_db(databases="__all__")


def command(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def bad_input(name: str, *args: str) -> str:
    """The one line a person sees for bad input (exit code 2)."""
    with pytest.raises(CommandError) as caught:
        command(name, *args)
    assert caught.value.returncode == 2
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    return message


# ---- validate_scenario ---------------------------------------------------------------------------------------
def test_validate_a_stored_scenario_and_a_folder_with_its_warnings(tmp_path):
    assert command("validate_scenario", "ai-summit").splitlines()[-1] == (
        "ai-summit is valid: International AI Safety Summit, 5 actors, 5 turns.")

    twice = scenario_files(**{"scenario.yaml": SCENARIO_YAML + "turns: 4\n"})
    out = command("validate_scenario", str(write_folder(tmp_path / "harbour", twice)))
    assert "warning: scenario.yaml:10: key 'turns' appears more than once" in out
    assert out.splitlines()[-1] == "harbour is valid: Harbour Dispute, 2 actors, 4 turns."


def test_validate_names_the_file_key_and_line_of_each_problem(tmp_path):
    one = write_folder(tmp_path / "one", scenario_files(**{"scenario.yaml": SCENARIO_YAML.replace("turns: 4", "turns: many")}))
    assert bad_input("validate_scenario", str(one)) == f"{one}: scenario.yaml:5: turns: expected a whole number, got text ('many')"

    several = write_folder(tmp_path / "several", {"scenario.yaml": "name: [unclosed\n"})
    with pytest.raises(CommandError) as caught:
        command("validate_scenario", str(several))
    lines = str(caught.value).splitlines()
    assert caught.value.returncode == 2 and lines[0] == f"Scenario folder {several} has 2 problems:"
    assert lines[1].startswith("  scenario.yaml:2: YAML syntax error") and lines[2].startswith("  actors:")


def test_validate_a_stored_scenario_that_no_longer_validates():
    broken = make_scenario(turns=0)
    message = bad_input("validate_scenario", broken.slug)
    assert message.startswith(f"{broken.slug}: scenario.yaml") and "turns" in message


def test_validate_an_unknown_scenario():
    assert bad_input("validate_scenario", "no-such-scenario").startswith("No scenario 'no-such-scenario'")


# ---- estimate_scenario ---------------------------------------------------------------------------------------
def test_estimate_prints_what_run_scenario_prints_before_starting():
    estimate = command("estimate_scenario", "ai-summit", "--turns", "1", "--credit-limit", "3")
    assert "Provider: offline" in estimate and "Estimated cost for 1 turn:" in estimate
    assert estimate.splitlines()[-1] == "Credit limit: $3.00"
    assert not Run.objects.exists()  # nothing ran

    run = command("run_scenario", "ai-summit", "--turns", "1", "--credit-limit", "3")
    assert run.startswith(estimate)


def test_estimate_json_is_the_apis_estimate():
    printed = json.loads(command("estimate_scenario", "ai-summit", "--turns", "2", "--json"))
    reader = User.objects.create_user("reader", password="pw")
    served = TestClient(api).get("/scenarios/ai-summit/estimate?turns=2", user=reader).json()
    assert printed == served
    assert printed["turns"] == 2 and printed["offline"] is True and printed["calls"] > 0


def test_estimate_a_folder_with_a_model_for_every_seat(tmp_path):
    folder = write_folder(tmp_path / "harbour", scenario_files())
    printed = json.loads(command("estimate_scenario", str(folder), "--model", "openai/gpt-4o-mini", "--json"))
    assert printed["scenario"] == "harbour" and printed["turns"] == 4
    assert {line["model"] for line in printed["lines"]} == {"openai/gpt-4o-mini"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no-such-scenario"], "No scenario 'no-such-scenario'"),
        (["ai-summit", "--credit-limit", "-1"], "the credit limit must be a positive number of USD, not -1.0"),
        (["ai-summit", "--turns", "0"], "turns must be between 1 and 1000, not 0"),
    ],
)
def test_estimate_bad_input(args, expected):
    assert bad_input("estimate_scenario", *args).startswith(expected)


def test_estimate_a_folder_with_one_problem(tmp_path):
    folder = write_folder(tmp_path / "h", scenario_files(**{"scenario.yaml": SCENARIO_YAML.replace("turns: 4", "turns: -2")}))
    assert bad_input("estimate_scenario", str(folder)).startswith(f"{folder}: scenario.yaml:5: turns: expected a number")


# ---- compare_runs --------------------------------------------------------------------------------------------
@pytest.fixture
def two_runs():
    return [executor.run_execute(run_id=make_run(turns=2, seed=seed).pk) for seed in (1, 2)]


def test_compare_two_runs(two_runs):
    first, second = two_runs
    out = command("compare_runs", str(first.pk), str(second.pk))
    assert f"Run {first.pk}: ai-summit run-{first.number:03d}, completed, 2 of 2 turns, $0.0000 over {first.calls} calls (offline)" in out
    assert "  cost by actor: world $0.0000, continental-union $0.0000" in out
    assert "Metrics per turn" in out and f"run {second.pk}" in out
    assert "Decisions at turn 2\n  norvale\n" in out
    assert f"Final world: run {second.pk} (turn 2) against run {first.pk} (turn 2)\n--- run {first.pk}, turn 2\n" in out

    at_one = command("compare_runs", str(first.pk), str(second.pk), "--turn", "1")
    assert "Decisions at turn 1" in at_one


def test_compare_json(two_runs):
    first, second = two_runs
    printed = json.loads(command("compare_runs", str(first.pk), str(second.pk), "--json"))
    assert [run["id"] for run in printed["runs"]] == [first.pk, second.pk]
    assert printed["decision_turn"] == 2 and printed["metrics"] and printed["decisions"]
    assert printed["world_diffs"][0]["diff"].startswith(f"--- run {first.pk}, turn 2")


def test_runs_are_named_by_their_folders_too(two_runs, tmp_path):
    """As the V2 document's `scenario-lab compare run-001 run-002`: a folder's name, with its scenario when two
    scenarios have a run of that number, or a run folder's path."""
    first, second = two_runs
    labels = (f"run-{first.number:03d}", f"ai-summit/run-{second.number:03d}")
    by_label = json.loads(command("compare_runs", *labels, "--json"))
    assert [run["id"] for run in by_label["runs"]] == [first.pk, second.pk]
    path = json.loads(command("compare_runs", f"output/ai-summit/run-{first.number:03d}/", str(second.pk), "--json"))
    assert [run["id"] for run in path["runs"]] == [first.pk, second.pk]
    other = make_run(summit_config(), slug="canal-tolls")
    Run.objects.filter(pk=other.pk).update(number=first.number)  # another scenario's run of the same number
    label = f"run-{first.number:03d}"
    assert bad_input("compare_runs", label, str(second.pk)).startswith(
        f"{label} names a run of several scenarios (ai-summit/{label}, canal-tolls/{label}): say which")
    assert bad_input("compare_runs", "ai-summit/run-099", str(second.pk)) == "No run ai-summit/run-099."
    assert bad_input("compare_runs", "round-one", str(second.pk)).startswith("'round-one' is not a run")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{a}", "99999"], "No run 99999."),
        (["{a}"], "Give at least two different runs"),
        (["{a}", "{a}"], "Give at least two different runs"),
        (["{a}", "{b}", "--turn", "3"], "--turn 3: pick a turn from 1 to 2"),
    ],
)
def test_compare_bad_input(two_runs, args, expected):
    ids = {"a": str(two_runs[0].pk), "b": str(two_runs[1].pk)}
    assert bad_input("compare_runs", *(arg.format(**ids) for arg in args)).startswith(expected)


def test_an_offline_estimate_also_prices_the_models_it_stands_in_for_at_list_prices(monkeypatch):
    offline = json.loads(command("estimate_scenario", "ai-summit", "--turns", "2", "--json"))
    assert offline["cost"] == {"low": 0.0, "high": 0.0} and offline["list_prices"]["cost"]["low"] > 0
    cheaper = json.loads(command("estimate_scenario", "ai-summit", "--turns", "2", "--model", "openai/gpt-4o-mini", "--json"))
    assert 0 < cheaper["list_prices"]["cost"]["high"] < offline["list_prices"]["cost"]["high"], "the named model is priced"
    printed = command("estimate_scenario", "ai-summit", "--turns", "2")
    assert "With these models called, at list prices: $" in printed

    # With a server to call, the estimate itself is priced, and it is the what-if an offline run showed.
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    called = json.loads(command("estimate_scenario", "ai-summit", "--turns", "2", "--json"))
    assert called["list_prices"] is None and called["cost"] == offline["list_prices"]["cost"]


def test_a_database_never_migrated_is_one_line_saying_to_migrate(tmp_path):
    import os
    import subprocess
    import sys

    from runs.tests.workers import MANAGE

    env = {key: value for key, value in os.environ.items() if not key.startswith(("SCENARIOLAB_", "DATABASE_URL", "REDIS_URL", "DJANGO_"))}
    done = subprocess.run([sys.executable, str(MANAGE), "estimate_scenario", "ai-summit"], capture_output=True, text=True,
                          env={**env, "SCENARIOLAB_DATA_DIR": str(tmp_path)}, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "run `make migrate` (manage.py migrate) first" in done.stderr
