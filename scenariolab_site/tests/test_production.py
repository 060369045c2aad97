"""The production profile as a team deploys it: debug off, `deploy/scenariolab.env`, the steps of `make
deploy-check` (collectstatic, migrate, check --deploy), then `daphne scenariolab_site.asgi:application` alone
(no runserver) and a worker, in processes of their own on a fresh data folder, driven by Chromium:

- direct: styled pages, static files served (none fails), the run page live over its socket to the end, its
  charts, and the admin styled;
- a server whose channel layer has no table (the old `migrate` left it so): its run page says live updates
  are unavailable and still follows the run to the end, by polling;
- behind a TLS-terminating proxy with the documented environment (SSL redirect, HSTS, Secure cookies,
  X-Forwarded-Proto): signing in and starting a run succeed, the page follows it over wss.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from bench.live_latency import free_port, wait_for_http
from bench.profiles import start, stop
from engine.testing.fake_llm import FakeLLMServer
from scenariolab_site.settings import secret_key_problem
from scenariolab_site.tests.tls_proxy import TLSProxy

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra: `make test` installs it")

BASE = Path(settings.BASE_DIR)
MANAGE = BASE / "manage.py"
CHROMIUM = os.environ.get("SCENARIOLAB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SCENARIOLAB_ARTIFACTS_DIR", BASE / "test-artifacts"))
PASSWORD = "a long production test password"
WAIT_MS = 60_000


def documented_environment() -> dict[str, str]:
    """deploy/scenariolab.env as the systemd units read it (KEY=VALUE lines, comments skipped)."""
    values = {}
    for line in (BASE / "deploy" / "scenariolab.env").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def clean_environment(**values: str) -> dict[str, str]:
    """This machine's environment without the test suite's settings, plus `values`."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith(("SCENARIOLAB_", "DJANGO_"))
            and key not in ("DATABASE_URL", "REDIS_URL", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "OLLAMA_BASE_URL")}
    return {**kept, **values}


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(MANAGE), *args], env=env, cwd=BASE, capture_output=True, text=True,
                          timeout=180)
    if check:
        assert done.returncode == 0, f"manage.py {' '.join(args)} ended {done.returncode}: {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A production install on the embedded profile, prepared as `make deploy-check` does."""
    folder = tmp_path_factory.mktemp("production")
    documented = documented_environment()
    assert documented["SCENARIOLAB_DEBUG"] == "false" and "SCENARIOLAB_SECRET_KEY" in documented
    for key in ("DATABASE_URL", "REDIS_URL"):  # the embedded profile here; the scale-out one is documented too
        documented.pop(key)
    proxy_port = free_port()
    env = clean_environment(**documented) | {
        "SCENARIOLAB_SECRET_KEY": secrets.token_urlsafe(50),
        "SCENARIOLAB_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SCENARIOLAB_SITE_URL": f"https://127.0.0.1:{proxy_port}",
        "SCENARIOLAB_DATA_DIR": str(folder / "data"),
        "SCENARIOLAB_OUTPUT_DIR": str(folder / "output"),
        "SCENARIOLAB_LOG_LEVEL": "WARNING",
    }
    manage(env, "collectstatic", "--no-input", "-v", "0")
    migrated = manage(env, "migrate", "--no-input")
    checked = manage(env, "check", "--deploy", "--fail-level", "WARNING", check=False)
    manage(env, "import_scenarios")
    manage(env | {"DJANGO_SUPERUSER_PASSWORD": PASSWORD}, "createsuperuser", "--no-input", "--username", "admin",
           "--email", "admin@example.org")
    return {"env": env, "folder": folder, "proxy_port": proxy_port, "migrated": migrated, "checked": checked}


def test_check_deploy_passes_with_the_documented_environment(installed):
    checked = installed["checked"]
    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues" in checked.stdout, checked.stdout + checked.stderr


def test_plain_migrate_prepares_the_channel_layer_database_too(installed):
    data = Path(installed["env"]["SCENARIOLAB_DATA_DIR"])
    with sqlite3.connect(data / "channels.sqlite3") as channels:
        tables = {row[0] for row in channels.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"channels_lite_event", "channels_lite_groupmembership"} <= tables, tables


@pytest.mark.parametrize("key, problem", [
    ("", "is not set"),
    ("scenariolab-insecure-local-development-key", "development key"),
    ("django-insecure-" + "x" * 60, "development key"),
    ("a-short-key", "fewer than 50"),
    ("ab" * 40, "distinct characters"),
])
def test_a_missing_default_or_weak_secret_key_is_named(key, problem):
    assert problem in (secret_key_problem(key) or "")


def test_a_strong_secret_key_passes():
    assert secret_key_problem(secrets.token_urlsafe(50)) is None


def test_with_debug_off_a_weak_secret_key_refuses_to_start_in_one_line(installed):
    env = installed["env"] | {"SCENARIOLAB_SECRET_KEY": "changeme"}
    done = manage(env, "check", check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SCENARIOLAB_SECRET_KEY has 8 characters" in lines[0], done.stderr
    assert "secrets.token_urlsafe(50)" in lines[0]


def test_with_debug_off_uncollected_static_files_refuse_to_start_in_one_line(installed, tmp_path):
    env = installed["env"] | {"SCENARIOLAB_STATIC_ROOT": str(tmp_path / "empty")}
    done = subprocess.run([sys.executable, "-c", "import scenariolab_site.asgi"], env=env, cwd=BASE,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"the static files are not collected in {tmp_path / 'empty'}: run `manage.py collectstatic --no-input` "
        "(or `make deploy-check`) before starting the site with SCENARIOLAB_DEBUG off"], done.stderr


# ---- the site in a browser ---------------------------------------------------------------------------------------
def daphne(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = start(["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "scenariolab_site.asgi:application"], environment=env)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/accounts/login/", process=server, every=0.1)
    return server, url


class Watched:
    """A page, with every request that failed and every static file that did not answer 200 (or 304)."""

    def __init__(self, page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.set_default_timeout(WAIT_MS)
        page.on("requestfailed", lambda r: self.problems.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: self.problems.append(f"{r.url}: {r.status}")
                if "/static/" in r.url and r.status not in (200, 304) else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def sign_in(self, base: str) -> None:
        self.page.goto(f"{base}/accounts/login/")
        self.page.fill("input[name=username]", "admin")
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("form button[type=submit]")
        self.page.wait_for_url(lambda url: "/accounts/login/" not in url)

    def start_run(self, base: str, turns: int) -> str:
        self.page.goto(f"{base}/scenarios/ai-summit/")
        self.page.fill("input[name=turns]", str(turns))
        self.page.click("button[name=start]")
        self.page.wait_for_url(lambda url: "/runs/" in url)
        return self.page.url.split("?")[0]

    def background(self, selector: str) -> str:
        return self.page.evaluate(f"getComputedStyle(document.querySelector({selector!r})).backgroundColor")

    def wait_until_completed(self, name: str) -> None:
        try:
            self.page.wait_for_selector("#run-status.status-completed")
        except sync_api.TimeoutError:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=ARTIFACTS / f"production-{name}.png", full_page=True)
            raise AssertionError(f"{name}: the page shows {self.page.locator('#run-status').text_content()!r} "
                                 f"({self.page.locator('#live-indicator').text_content()!r}); {self.problems}") from None


@pytest.fixture(scope="module")
def site(installed):
    """The site three ways on one install, a worker, a model server and a browser."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    llm = FakeLLMServer(latency=0.05).start_in_thread()
    env = installed["env"] | {"SCENARIOLAB_LLM_BASE_URL": llm.base_url, "SCENARIOLAB_HEARTBEAT_SECONDS": "0.5"}
    direct = env | {"SCENARIOLAB_BEHIND_PROXY": "false", "SCENARIOLAB_SSL_REDIRECT": "false", "SCENARIOLAB_HSTS_SECONDS": "0",
                    "SCENARIOLAB_SITE_URL": "http://127.0.0.1"}
    unprepared = Path(installed["folder"]) / "unmigrated-channels.sqlite3"
    processes = []
    try:
        worker = start([str(MANAGE), "run_huey", "--workers", "2", "--delay", "0.1"], environment=env)
        processes.append(worker)
        plain, plain_url = daphne(direct)
        processes.append(plain)
        no_layer, no_layer_url = daphne(direct | {"SCENARIOLAB_CHANNELS_PATH": str(unprepared)})
        processes.append(no_layer)
        proxied, proxied_url = daphne(env)
        processes.append(proxied)
        proxy = TLSProxy(int(proxied_url.rsplit(":", 1)[1]), port=installed["proxy_port"]).start_in_thread()
        no_websockets = TLSProxy(int(proxied_url.rsplit(":", 1)[1]), websockets=False).start_in_thread()
        playwright = sync_api.sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--disable-background-networking"])
        yield {"plain": plain_url, "no_layer": no_layer_url, "proxy": proxy, "no_websockets": no_websockets,
               "browser": browser}
        browser.close()
        playwright.stop()
        proxy.stop()
        no_websockets.stop()
    finally:
        logs = {process.args[-1]: stop(process, tail=None) for process in processes}
        llm.stop()
    errors = [f"{name}: {line}" for name, log in logs.items() for line in log.splitlines() if "Traceback" in line]
    assert not errors, "\n".join(errors)


def test_daphne_alone_serves_a_styled_site_whose_run_page_follows_a_run_live_to_the_end(site):
    context = site["browser"].new_context()
    live, polled = Watched(context.new_page()), Watched(context.new_page())
    live.sign_in(site["plain"])
    unstyled = "rgba(0, 0, 0, 0)"
    assert live.background(".site-header") != unstyled, "the site's stylesheet applies"
    run_url = live.start_run(site["plain"], turns=2)
    polled.page.goto(run_url.replace(site["plain"], site["no_layer"]))  # the same run, on the server without a layer
    live.wait_until_completed("direct")
    assert live.page.locator("#live-indicator").text_content().strip() == "live"
    assert live.page.evaluate("Boolean(window.Chart && window.runCharts.cost)"), "the charts are drawn"
    assert live.page.locator("#turn-progress").get_attribute("aria-valuenow") == "2"
    polled.wait_until_completed("polling")
    assert "live updates unavailable" in polled.page.locator("#live-indicator").text_content()
    assert polled.page.locator("#turn-progress").get_attribute("aria-valuenow") == "2"

    live.page.goto(f"{site['plain']}/admin/")
    assert live.background("#header") != unstyled, "the admin's stylesheet applies"
    assert live.page.locator("#site-name").is_visible()
    problems = live.problems + polled.problems
    context.close()
    assert not problems, problems


def test_behind_a_tls_proxy_signing_in_and_starting_a_run_succeed(site):
    context = site["browser"].new_context(ignore_https_errors=True)
    page = Watched(context.new_page())
    base = site["proxy"].url
    page.sign_in(base)
    cookies = {cookie["name"]: cookie for cookie in context.cookies(base)}
    assert cookies["sessionid"]["secure"] and cookies["csrftoken"]["secure"]
    run_url = page.start_run(base, turns=1)
    page.wait_until_completed("proxied")
    assert page.page.locator("#live-indicator").text_content().strip() == "live", "the socket works over wss"
    problems = page.problems
    # Through a proxy that answers pages but passes no WebSocket, the page stops trying the socket and polls.
    without = context.new_page()
    without.goto(run_url.replace(base, site["no_websockets"].url))
    without.wait_for_function("document.getElementById('live-indicator').textContent.includes('unavailable')",
                              timeout=WAIT_MS)
    assert without.locator("#run-status").text_content().strip() == "completed"
    context.close()
    assert not problems, problems
    assert site["proxy"].requests > 0
