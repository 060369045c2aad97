"""What the browser tests share: a live daphne server, a real Huey worker process and a loopback model server
whose answers carry hostile HTML, driven by Debian's Chromium through Playwright.

Screenshots go to test-artifacts/ (SCENARIOLAB_ARTIFACTS_DIR), kept after the run.
"""

import os
from pathlib import Path

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.conf import settings

from engine.testing.fake_llm import FakeLLMServer
from runs.tests.workers import start_worker, stop

# Playwright's sync API runs an event loop in this thread; Django would otherwise refuse the test's own queries.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra: `make test` installs it")

CHROMIUM = os.environ.get("SCENARIOLAB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SCENARIOLAB_ARTIFACTS_DIR", Path(settings.BASE_DIR) / "test-artifacts"))
# What the "model" appends to every answer: it must reach the page as text, never run.
HOSTILE = ' <script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
WAIT_MS = 60_000


class BrowserTestCase(ChannelsLiveServerTestCase):
    """The live server, a worker, the model server and a browser, for a class of tests."""

    databases = {"default", "channels"} if "channels" in settings.DATABASES else {"default"}  # scale-out: Redis
    serve_static = True

    @classmethod
    def setUpClass(cls):
        if not Path(CHROMIUM).exists():
            raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
        cls.llm = FakeLLMServer(latency=0.25, text_suffix=HOSTILE).start_in_thread()
        cls.llm_env = {"SCENARIOLAB_LLM_BASE_URL": cls.llm.base_url, "SCENARIOLAB_LLM_TIMEOUT": "30"}
        os.environ.update(cls.llm_env)  # before the server process starts: it plans runs against the same server
        super().setUpClass()
        cls.worker = start_worker(**cls.llm_env)
        cls.playwright = sync_api.sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        stop(cls.worker)
        super().tearDownClass()
        cls.llm.stop()
        for key in cls.llm_env:
            os.environ.pop(key, None)

    def open_page(self, context=None):
        """A page (in `context`, else the browser's default one) that reports its own errors in `self.console`."""
        page = context.new_page() if context is not None else self.browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        return page

    def sign_in_as(self, page, username: str, password: str) -> None:
        page.goto(f"{self.live_server_url}/accounts/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("form button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)


# Each part of a run page (its children with an id, and the sections under it) as its text reads, spaces folded:
# what a person sees of it.
PANEL_TEXTS = """() => {
  const fold = (text) => text.replace(/\\s+/g, " ").trim();
  const texts = {};
  const page = document.getElementById("run-page");
  for (const part of page.querySelectorAll(":scope > [id], :scope > section, #feed > .turn")) {
    const key = part.id || part.querySelector("h2")?.id || part.className;
    texts[key] = fold(part.innerText);
  }
  return texts;
}"""


def panels_differing(live_page, fresh_page) -> dict:
    """The parts of `live_page` (followed live) whose text differs from `fresh_page`'s (the same URL, loaded now):
    {part: (live, fresh)}, empty when a reload would show nothing new."""
    live, fresh = live_page.evaluate(PANEL_TEXTS), fresh_page.evaluate(PANEL_TEXTS)
    return {key: _first_difference(live.get(key) or "", fresh.get(key) or "")
            for key in sorted(set(live) | set(fresh)) if live.get(key) != fresh.get(key)}


def _first_difference(live: str, fresh: str, around: int = 80) -> tuple[str, str]:
    """Where two texts part, with a little on either side: what a failure shows."""
    at = next((i for i, (a, b) in enumerate(zip(live, fresh)) if a != b), min(len(live), len(fresh)))
    start = max(0, at - around)
    return live[start: at + around], fresh[start: at + around]
