"""Settings for the test suite: the normal settings, with every file in a fresh temporary folder.

The profile still follows the environment (DATABASE_URL, REDIS_URL), so the same tests run on SQLite and
on PostgreSQL + Redis. The SQLite test database is a file, not memory, because worker tests start real
`run_huey` processes that must see it; they inherit these variables and so the same folders.
"""

import os
import tempfile
import uuid

os.environ.setdefault("SCENARIOLAB_DATA_DIR", tempfile.mkdtemp(prefix="scenariolab-test-"))
os.environ.setdefault("SCENARIOLAB_OUTPUT_DIR", os.path.join(os.environ["SCENARIOLAB_DATA_DIR"], "output"))
os.environ.setdefault("SCENARIOLAB_HUEY_NAME", f"scenariolab-test-{uuid.uuid4().hex[:8]}")  # a Redis queue of our own
os.environ.setdefault("SCENARIOLAB_CHANNELS_PREFIX", f"scenariolab-test-{uuid.uuid4().hex[:8]}")  # and channel groups
os.environ.setdefault("SCENARIOLAB_TEST_DATABASE_PATH", os.path.join(os.environ["SCENARIOLAB_DATA_DIR"], "test.sqlite3"))
os.environ.setdefault("SCENARIOLAB_TEST_CHANNELS_PATH", os.path.join(os.environ["SCENARIOLAB_DATA_DIR"], "test-channels.sqlite3"))
# Tests never call a real model, whatever the developer's shell holds. Worker processes that a test starts
# inherit the flag, so what the test gives them (the fake server's URL) stays.
if not os.environ.get("SCENARIOLAB_TEST_PROCESS"):
    os.environ["SCENARIOLAB_TEST_PROCESS"] = "1"
    for _key in ("OPENROUTER_API_KEY", "OPENAI_API_KEY", "OLLAMA_BASE_URL", "SCENARIOLAB_LLM_BASE_URL", "SCENARIOLAB_LLM_API_KEY"):
        os.environ.pop(_key, None)

from scenariolab_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
# Pages name static files as they are in static/: the suite never runs collectstatic (the production tests do).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
SERVESTATIC_USE_FINDERS = True
# The suite's test client never asks for a static file, and ServeStatic's middleware is async only: under the
# test client's sync handler every request paid an event loop for it (~4 ms). The production tests serve static
# files through the real settings, in daphne.
MIDDLEWARE = [entry for entry in MIDDLEWARE if not entry.startswith("servestatic.")]  # noqa: F405
