"""Start-up stays light, structurally (bench/side_by_side.py has the timings): what a command imports, in a real process.

`manage.py run_scenario --help` must not load the web server (daphne, and with it Twisted and autobahn) nor
the orchestrator and its phases: they cost most of a second and only `runserver` and playing a run need them.
`manage.py runserver` must still be daphne's (websockets for the live pages).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

MANAGE = Path(settings.BASE_DIR) / "manage.py"
WEB_SERVER = ("daphne", "twisted", "autobahn")
ONLY_FOR_PLAYING = ("engine.orchestrator", "engine.phases.communication", "engine.sdk")

# Runs manage.py as `python manage.py ...` would, then, at exit, writes the names of every module it imported
# and how many objects were frozen by then (atexit runs last-in first-out: manage.py's handlers come first).
PROBE = """
import atexit, gc, json, runpy, sys
out, sys.argv = sys.argv[1], [sys.argv[2], *sys.argv[3:]]
atexit.register(lambda: open(out, "w").write(json.dumps([sorted(sys.modules), gc.get_freeze_count()])))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def probe(tmp_path: Path, *args: str, returncode: int = 0) -> tuple[set[str], str, int]:
    """(modules imported, stdout, objects frozen at exit) of `manage.py ARGS` on the default settings with an
    empty data folder."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SCENARIOLAB_") and key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")}
    env |= {"SCENARIOLAB_DATA_DIR": str(tmp_path), "SCENARIOLAB_OUTPUT_DIR": str(tmp_path / "output")}
    out = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(out), str(MANAGE), *args], cwd=MANAGE.parent, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == returncode, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    modules, frozen = json.loads(out.read_text())
    return set(modules), done.stdout, frozen


def imported_by(tmp_path: Path, *args: str, returncode: int = 0) -> tuple[set[str], str]:
    modules, stdout, _ = probe(tmp_path, *args, returncode=returncode)
    return modules, stdout


def loaded(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


def test_run_scenario_help_loads_neither_the_web_server_nor_the_orchestrator(tmp_path):
    modules, out = imported_by(tmp_path, "run_scenario", "--help")
    assert out.startswith("usage: manage.py run_scenario"), out
    assert "django.apps" in modules and "runs.models" in modules  # the probe saw Django set up
    assert loaded(modules, WEB_SERVER) == []
    assert loaded(modules, ONLY_FOR_PLAYING) == []


def test_start_up_objects_are_frozen_before_the_exit_collections(tmp_path):
    """Without it the interpreter's garbage collections at exit walk everything start-up made (~0.3 s)."""
    _, out, frozen = probe(tmp_path, "run_scenario", "--help")
    assert out.startswith("usage: manage.py run_scenario"), out
    assert frozen > 0  # 0 unless something froze them (about 110,000 objects today)


def test_a_run_reaches_its_scenario_without_loading_urls_web_server_or_orchestrator(tmp_path):
    """What run_scenario does before its first model call (system checks, finding the scenario) stays as
    light: the URL configuration (every view and API schema) is loaded by a URL check, not needed here."""
    env_check, _ = imported_by(tmp_path, "migrate", "-v", "0")
    assert "scenariolab_site.urls" in env_check  # migrate runs every check: the probe would see the URLs
    modules, _ = imported_by(tmp_path, "run_scenario", "no-such-scenario", returncode=2)
    assert "scenarios.services" in modules  # it did look the scenario up
    assert loaded(modules, ("scenariolab_site.urls", *WEB_SERVER, *ONLY_FOR_PLAYING)) == []


def test_runserver_is_still_daphnes(tmp_path):
    """The other side of the same settings: runserver serves websockets, so it loads daphne's command."""
    modules, out = imported_by(tmp_path, "runserver", "--help")
    assert "daphne.management.commands.runserver" in modules
    assert "twisted" in modules
    assert "--websocket_handshake_timeout" in out  # an option only daphne's runserver has


def test_importing_an_engine_submodule_does_not_load_the_whole_engine(tmp_path):
    """engine/__init__ resolves its exports on first use; the names themselves keep working."""
    code = ("import json, sys; import engine.scenario.schema; before = sorted(sys.modules); "
            "from engine import Runner, ScenarioOrchestrator, EventBus; import engine; "
            "print(json.dumps([before, sorted(engine.__all__), Runner.__module__, ScenarioOrchestrator.__module__]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=MANAGE.parent, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    before, exported, runner_module, orchestrator_module = json.loads(done.stdout)
    assert loaded(set(before), ONLY_FOR_PLAYING) == []
    assert (runner_module, orchestrator_module) == ("engine.sdk", "engine.orchestrator")
    assert {"Runner", "Scenario", "EventBus", "EventType", "ScenarioOrchestrator"} <= set(exported)


# ---- the import budget ---------------------------------------------------------------------------------------
# Modules loaded by a one-turn run of the summit against the fake LLM server, at exit, for each way to play it
# (V1 itself loaded 363). Every module costs start-up time and memory in every process: a change that needs
# more should say why here. Never loaded by a run: a second HTTP stack's CLI, and on the embedded profile
# the Redis and PostgreSQL clients and the admin.
IMPORT_BUDGET = {"sdk": 450, "v1": 465, "manage": 1020}
NEVER = ("httpx", "rich", "click", "pygments")
NEVER_EMBEDDED = ("redis", "psycopg", "runs.admin", "scenarios.admin")
COUNTING = """
import atexit, json, runpy, sys
out, sys.argv = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def modules_of_a_run(tmp_path: Path, *command: str) -> set[str]:
    from engine.testing.fake_llm import FakeLLMServer

    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SCENARIOLAB_") and key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")}
    out = tmp_path / "modules.json"
    server = FakeLLMServer().start_in_thread()
    try:
        env |= {"SCENARIOLAB_DATA_DIR": str(tmp_path), "SCENARIOLAB_OUTPUT_DIR": str(tmp_path / "output"),
                "SCENARIOLAB_LLM_BASE_URL": server.base_url}
        if not (tmp_path / "scenariolab.sqlite3").exists():
            subprocess.run([sys.executable, str(MANAGE), "migrate", "-v", "0"], env=env, check=True, timeout=120)
        done = subprocess.run([sys.executable, "-c", COUNTING, str(out), *command], cwd=MANAGE.parent, env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text()))


def test_the_sdk_the_v1_line_and_run_scenario_keep_to_their_import_budget(tmp_path):
    summit = str(MANAGE.parent / "scenarios" / "library" / "ai-summit")
    sdk = modules_of_a_run(tmp_path, "bench/sdk_run.py", summit, "1")
    v1 = modules_of_a_run(tmp_path, "legacy_v1/run_scenario.py", summit, "--end-turn", "1", "-o", str(tmp_path / "v1"))
    manage = modules_of_a_run(tmp_path, str(MANAGE), "run_scenario", "ai-summit", "--turns", "1", "--no-cache")
    assert "engine.llm.http" in sdk and "runs.execution.recorder" in manage  # they did play through the server
    assert {"sdk": len(sdk), "v1": len(v1), "manage": len(manage)} == {
        name: min(count, IMPORT_BUDGET[name]) for name, count in (("sdk", len(sdk)), ("v1", len(v1)), ("manage", len(manage)))}
    for modules in (sdk, v1, manage):
        assert loaded(modules, NEVER) == []
    assert loaded(manage, NEVER_EMBEDDED) == []


def test_a_worker_starts_without_the_web_stack(tmp_path):
    """A worker runs the models' checks only: the URL check would load every view, API schema and admin
    module (and the Markdown renderer), none of which it serves."""
    import signal
    import time

    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SCENARIOLAB_") and key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")}
    env |= {"SCENARIOLAB_DATA_DIR": str(tmp_path), "SCENARIOLAB_OUTPUT_DIR": str(tmp_path / "output"),
            "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, str(MANAGE), "migrate", "-v", "0"], env=env, check=True, timeout=120)
    out = tmp_path / "modules.json"
    worker = subprocess.Popen([sys.executable, "-c", COUNTING, str(out), str(MANAGE), "run_huey", "--workers", "1"],
                              cwd=MANAGE.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while "consumer started" not in (line := worker.stdout.readline()) and time.monotonic() < deadline:
            assert line or worker.poll() is None, "the worker ended before starting its consumer"
    finally:
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=60)
    modules = set(json.loads(out.read_text()))
    assert "huey.consumer" in modules and "runs.tasks" in modules  # it did start, with the tasks
    assert loaded(modules, ("scenariolab_site.urls", "runs.views", "markdown_it", "nh3", *WEB_SERVER, *NEVER_EMBEDDED)) == []
