"""`manage.py run_batch`: dry run, a batch played here (two at once), resume, background, the budget's exit code."""

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from batches import services
from batches.models import Batch, BatchStatus
from batches.tests.factories import batch_config, plan_batch
from engine.testing.fake_llm import FakeLLMServer
from runs.models import Run, RunStatus

# The command plays runs in threads of its own: they see only committed rows.
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "channels"] if "channels" in django_settings.DATABASES else ["default"])
CONFIG = """experiment_name: Terminal study
description: Two seeds, two runs each
base_scenario: {base}
variations:
  - {{type: scenario_parameter, parameter: seed, values: [1, 11]}}
runs_per_variation: 2
max_parallel: 2
turns: 1
provider: offline
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "batch-config.yaml"
    path.write_text(CONFIG.format(base="ai-summit"))
    return path


def run_batch(*args) -> tuple[int, str]:
    import io

    out = io.StringIO()
    try:
        call_command("run_batch", *map(str, args), stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def test_a_dry_run_prints_runs_cost_and_time_and_starts_nothing(config_file):
    code, out = run_batch(config_file, "--dry-run")
    assert code == 0
    for text in ("Variations: 2 × 2 runs = 4 runs, up to 2 at once", "001  seed=1: 1 turn,", "var-002-run-002 (seed 12)",
                 "Estimated cost: $0.0000 to $0.0000", "Estimated time: about", "Dry run: nothing started"):
        assert text in out, out
    assert not Batch.objects.exists() and not Run.objects.exists()


def test_a_batch_plays_here_and_prints_its_statistics(config_file):
    code, out = run_batch(config_file)
    assert code == 0, out
    batch = Batch.objects.get()
    assert batch.status == BatchStatus.COMPLETED
    assert Run.objects.filter(batch_run__batch=batch, status=RunStatus.COMPLETED).count() == 4
    assert "var-002-run-002 [seed=11; seed 12] completed" in out
    assert "Batch 1 completed: 4 of 4 runs ended" in out.replace(f"Batch {batch.pk}", "Batch 1")
    assert "Variation 002: seed=11" in out and "bracketed_paragraphs: mean" in out and "95 % CI" in out


def test_a_scenario_folder_relative_to_the_config_file(tmp_path):
    path = tmp_path / "batch.yaml"
    library = django_settings.SCENARIO_LIBRARY_DIR
    path.write_text(CONFIG.format(base=str(library.relative_to(library.parents[1]) / "ai-summit")).replace("runs_per_variation: 2", "runs_per_variation: 1"))
    (tmp_path / "scenarios").symlink_to(library.parent, target_is_directory=True)
    code, out = run_batch(path, "--dry-run")
    assert code == 0 and "International AI Safety Summit" in out, out


def test_resume_goes_on_with_the_paused_batch_of_the_same_name(config_file):
    batch = services.batch_start(plan=plan_batch(batch_config(experiment_name="Terminal study", runs_per_variation=2)),
                                 dispatch=lambda run: None)
    services.batch_pause(batch=batch)
    code, out = run_batch(config_file, "--resume")
    assert code == 0, out
    assert Batch.objects.count() == 1
    batch.refresh_from_db()
    assert batch.status == BatchStatus.COMPLETED
    assert Run.objects.filter(batch_run__batch=batch, status=RunStatus.COMPLETED).count() == 4


def test_resume_without_a_batch_starts_one_and_background_only_queues(config_file):
    code, out = run_batch(config_file, "--resume", "--background")
    assert code == 0 and "starting a new one" in out and "Queued for the workers" in out
    batch = Batch.objects.get()
    assert batch.status == BatchStatus.RUNNING
    assert Run.objects.filter(batch_run__batch=batch, status=RunStatus.QUEUED).count() == 2


def test_a_batch_halted_by_its_budget_exits_3(tmp_path, monkeypatch):
    server = FakeLLMServer().start_in_thread()
    monkeypatch.setenv("SCENARIOLAB_LLM_BASE_URL", server.base_url)
    try:
        path = tmp_path / "batch.yaml"
        # Each run may spend $0.10 and the budget is $0.10: after the first run's cost, the next cannot fit.
        path.write_text(CONFIG.format(base="ai-summit").replace("provider: offline", "budget_limit: 0.10\ncost_per_run_limit: 0.10"))
        code, out = run_batch(path)
    finally:
        server.stop()
    assert code == 3, out
    assert "halted" in out and "Reason: budget:" in out
    assert Run.objects.count() == 1


@pytest.mark.parametrize(("typo", "message"), [
    (("runs_per_variation: 2", "runs_per_variaton: 2"), "runs_per_variaton: unknown key; did you mean 'runs_per_variation'?"),
    (("parameter: seed", "parameter: context_window_sise"), "did you mean 'context_window_size'?"),
    (("values: [1, 11]", "values: [1, 1]"), "play the same scenario"),
])
def test_a_typo_in_a_config_is_bad_input_naming_it(tmp_path, typo, message):
    from django.core.management.base import CommandError

    path = tmp_path / "batch-config.yaml"
    path.write_text(CONFIG.format(base="ai-summit").replace(*typo))
    with pytest.raises(CommandError, match=message.replace("?", r"\?")):
        call_command("run_batch", str(path), "--dry-run")
    assert not Batch.objects.exists()


def test_a_missing_config_is_bad_input(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="cannot read the batch config"):
        call_command("run_batch", str(tmp_path / "missing.yaml"))
