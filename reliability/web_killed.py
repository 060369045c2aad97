"""Scenario "web killed": the web server (daphne, as `manage.py runserver` starts it) is killed with SIGKILL
while viewers follow a run live; a new one is started on the same port, the viewers reconnect, and each must
end up having applied every stored event of the run exactly once, in seq order, and show it completed.

The viewers are real run pages in Chromium (Playwright), running static/js/run-live.js unchanged: the page
loads the stored state at a seq, opens the run socket asking for what follows, and on a dropped connection
reconnects with its own back-off (0.5 s, 1 s, 2 s, … up to 10 s) asking for everything after the last seq
it applied. Two pages are open before the run starts; a third is opened mid-run (at seq 4), so it starts
from a snapshot. The run is played by a real Huey worker process against the fake LLM server (a fixed
latency a call); the worker keeps running while the web server is down, so events are stored that no live
relay carries and the pages must fetch them on reconnect. A trial kills 1-25 events after the third page
opened, stays down a random spell (0-1 s in trials 1, 2, 5, 6, …, 4-8 s in trials 3, 4, 7, 8, …, plus the new
server's start-up), then checks:
- the run completed;
- every page applied (its `run:event` notifications) exactly the stored seqs after the one it was rendered
  at, in order, and shows the run completed, with the cost, model calls and turns done that a page loaded
  afresh after the run shows;
- every page open at the kill opened a second socket (it really reconnected).
The figure also counts what the pages received beyond that, from the sockets' frames: events sent twice
(the page drops them) and gaps (the page asks again); neither fails a trial, both cost only traffic.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Max
from django.test import Client

from bench.live_latency import ServerExited, wait_for_http
from engine.testing.fake_llm import FakeLLMServer
from reliability import Result
from runs import services
from runs.models import Run, RunEvent, RunStatus
from runs.tests.factories import make_run
from runs.tests.workers import MANAGE, environment, final_status, start_worker, stop, wait_for, worker_environment

CHROMIUM = os.environ.get("SCENARIOLAB_CHROMIUM", "/usr/bin/chromium")
# Each model call's latency: a turn of the summit (~70 events) lasts ~4 s. Trials 1, 3, … play one turn, so
# the run mostly ends while the server is down (the pages get the rest by catching up); trials 2, 4, … play
# three, so the pages are mostly live again before it ends (catch-up and live relays meet).
CALL_SECONDS = 0.5
TURNS = (1, 3)
OPEN_AT = 4  # the third page opens once the run has stored this seq
KILL_AFTER = (1, 25)  # then the kill comes when this many more events are stored
# Then the server stays down this long before a new one starts: trials 1, 2, 5, 6, … briefly, trials 3, 4, 7,
# 8, … long enough for the pages' sockets to fail several times in a row (a page must not take a restart for a
# proxy that passes no WebSocket and settle for polling).
DOWN_SECONDS = ((0.0, 1.0), (4.0, 8.0))
PASSWORD = "a long reliability password"
# The page's applied events, in order (run-live.js announces each with a `run:event` notification).
COLLECT = """
window.__applied = [];
document.addEventListener("run:event", function (e) { window.__applied.push(e.detail.seq); });
"""


class Browser:
    """Chromium, driven through Playwright's async API on an event loop in a thread of its own: this thread
    stays plain synchronous Django (no event loop in it, so no DJANGO_ALLOW_ASYNC_UNSAFE, and one database
    connection), and the pages' socket frames are recorded as they arrive."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="chromium", daemon=True)
        self.thread.start()
        self.playwright = self.browser = self.context = None

    def submit(self, coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call(self, coroutine, timeout: float = 60):
        return self.submit(coroutine).result(timeout)

    async def launch(self, cookie: dict) -> None:
        from playwright.async_api import async_playwright

        self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(executable_path=CHROMIUM)
        self.context = await self.browser.new_context()
        await self.context.add_cookies([cookie])

    async def _close(self) -> None:
        if self.browser is not None:
            await self.browser.close()
        if self.playwright is not None:
            await self.playwright.stop()

    def close(self) -> None:
        try:
            self.call(self._close(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@dataclass
class Viewer:
    """One run page: the seq it was rendered at, and the event seqs each of its sockets received."""

    browser: Browser
    page: object = None
    after: int = 0
    sockets: list[list[int]] = field(default_factory=list)

    async def open(self, url: str) -> Viewer:
        self.page = await self.browser.context.new_page()
        self.page.set_default_timeout(30_000)
        await self.page.add_init_script(COLLECT)
        self.page.on("websocket", self._on_socket)
        await self.page.goto(url)
        await self.page.wait_for_function("document.getElementById('live-indicator').textContent === 'live'")
        self.after = int(await self.page.get_attribute("#run-page", "data-after") or 0)
        return self

    def _on_socket(self, ws) -> None:
        if "/ws/runs/" not in ws.url:
            return  # the header's seats socket: not the run's events
        received: list[int] = []
        self.sockets.append(received)

        def frame(payload) -> None:
            message = json.loads(payload)
            if isinstance(message, dict) and isinstance(message.get("seq"), int):
                received.append(message["seq"])
        ws.on("framereceived", frame)

    async def _state(self) -> dict:
        return await self.page.evaluate("""() => ({
          applied: window.__applied,
          last: Number(document.getElementById("run-page").dataset.lastSeq || 0),
          live: document.getElementById("live-indicator").textContent,
          status: document.getElementById("run-status").className,
          shown: {  // what the page shows of the run: a page loaded afresh must show the same
            cost: Number(document.getElementById("cost-total").dataset.value).toFixed(9),
            calls: Number(document.getElementById("cost-calls").dataset.value),
            turns_done: Number(document.getElementById("turn-progress").getAttribute("aria-valuenow")),
          },
        })""")

    def state(self) -> dict:
        return self.browser.call(self._state())

    def resent_and_gaps(self) -> tuple[int, int]:
        seen: set[int] = set()
        resent = gaps = 0
        for received in list(self.sockets):
            previous = None
            for seq in list(received):
                resent += seq in seen
                gaps += previous is not None and seq > previous + 1
                seen.add(seq)
                previous = seq
        return resent, gaps


@dataclass
class Outcome:
    problem: str = ""
    back_live: float = 0.0  # seconds from the new server answering to every page live again
    missed_live: int = 0  # events stored while no server relayed them
    resent: int = 0  # events a page received twice (it drops them)
    gaps: int = 0  # a socket skipping seqs (the page asks again)
    calls_shown: int = 0  # model calls a page loaded after the run shows (every live page must show as many)
    mid_run: bool = False  # the pages were live again before the run ended (so they had live events too)


def run(trials: int, *, seed: int = 0) -> Result:
    rng = random.Random(seed)
    passed, failures, outcomes = 0, [], []
    started = time.monotonic()
    for trial in range(trials):
        outcome = _trial(rng, turns=TURNS[trial % 2], down=DOWN_SECONDS[trial // 2 % 2])
        outcomes.append(outcome)
        if outcome.problem:
            failures.append(f"trial {trial + 1}: {outcome.problem}")
        else:
            passed += 1
    seconds = time.monotonic() - started
    good = [o for o in outcomes if not o.problem]
    figure = (f"3 pages each, live again before the run ended in {sum(o.mid_run for o in good)} of {len(good)}; "
              f"{sum(o.missed_live for o in good)} events stored while down, "
              f"{sum(o.calls_shown for o in good)} model calls shown by every page as by a fresh load")
    if good:
        figure += (f"; live again ≤ {max(o.back_live for o in good):.1f} s after the new server answered; "
                   f"{sum(o.resent for o in good)} events sent twice, {sum(o.gaps for o in good)} gaps")
    figure += f"; {seconds / max(trials, 1):.1f} s a trial"
    if failures:
        figure += "; FAILED " + "; ".join(failures)
    return Result("web killed", trials, passed, figure)


def _trial(rng: random.Random, *, turns: int, down: tuple[float, float]) -> Outcome:
    from playwright.async_api import Error as PlaywrightError

    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing (`make test` installs Debian's chromium)")
    server = FakeLLMServer(latency=CALL_SECONDS, seed=rng.randrange(1 << 30)).start_in_thread()
    llm = {"SCENARIOLAB_LLM_BASE_URL": server.base_url, "SCENARIOLAB_LLM_TIMEOUT": "60"}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []
    browser = Browser()
    try:
        with environment(**llm):  # the run's plan is made here, with the same server
            user = User.objects.create_user(f"viewer-{uuid.uuid4().hex[:8]}", password=PASSWORD)
            run = make_run(turns=turns, seed=rng.randrange(1 << 30), owner=user, use_cache=False)
            # The server, the worker and Chromium start side by side: each takes seconds on a busy machine.
            processes += [web := _start_web(port, **llm), start_worker(**llm)]
            launching = browser.submit(browser.launch({"name": settings.SESSION_COOKIE_NAME, "value": _session(user),
                                                       "url": base}))
            _wait_for_http(f"{base}/accounts/login/", web)
            launching.result(60)
            url = f"{base}/runs/{run.pk}/"
            viewers = [browser.call(Viewer(browser).open(url)) for _ in range(2)]
            services.run_enqueue(run=run)
            wait_for(lambda: _stored(run) >= OPEN_AT or final_status(run), what=f"seq {OPEN_AT}")
            viewers.append(browser.call(Viewer(browser).open(url)))  # mid-run: rendered from a snapshot
            kill_at = _stored(run) + rng.randint(*KILL_AFTER)
            wait_for(lambda: _stored(run) >= kill_at or final_status(run), what=f"seq {kill_at}")
            if status := final_status(run):  # the run is too short for this machine
                run.refresh_from_db()
                raise AssertionError(f"the run ended {status} at seq {_stored(run)}, before the kill at seq {kill_at}: "
                                     f"{run.error or run.halt_reason or 'no reason'}")
            web.send_signal(signal.SIGKILL)
            web.wait(10)
            stored_at_kill = _stored(run)
            time.sleep(rng.uniform(*down))
            processes.append(web := _start_web(port, **llm))
            outcome = _reconnect(run, viewers, web, base, stored_at_kill)
            outcome.problem, outcome.calls_shown = _finish(run, viewers)
            outcome.resent, outcome.gaps = (sum(counts) for counts in zip(*(v.resent_and_gaps() for v in viewers)))
    except (AssertionError, PlaywrightError, concurrent.futures.TimeoutError) as exc:  # a page that timed out too
        outcome = Outcome(problem=f"{type(exc).__name__}: {exc}".strip())
    finally:
        browser.close()
        for process in processes:  # all at once, then wait for each
            if process.poll() is None:
                process.terminate()
        logs = [stop(process) for process in processes]
        server.stop()
    if outcome.problem and len(logs) > 1:
        outcome.problem += f" (the worker's last words: {logs[1][-400:]!r})"
    return outcome


def _reconnect(run: Run, viewers: list[Viewer], web: subprocess.Popen, base: str, stored_at_kill: int) -> Outcome:
    """Wait for the new server, then for every page to be live on it again."""
    _wait_for_http(f"{base}/accounts/login/", web)
    answered, stored_at_restart = time.monotonic(), _stored(run)
    wait_for(lambda: all(len(v.sockets) >= 2 and v.state()["live"] == "live" for v in viewers),
             what="every page to reconnect", timeout=30)
    return Outcome(back_live=time.monotonic() - answered, missed_live=stored_at_restart - stored_at_kill,
                   mid_run=not final_status(run))


def _finish(run: Run, viewers: list[Viewer]) -> tuple[str, int]:
    """Wait for the run to end and every page to catch up with it: the problem found (or ""), and the model
    calls a page loaded afresh shows."""
    status = wait_for(lambda: final_status(run), timeout=120, what="the run to finish")
    if status != RunStatus.COMPLETED:
        run.refresh_from_db()
        return f"the run ended {status}: {run.error or run.halt_reason}", 0
    last = _stored(run)
    # A page hears the run's last events live, or at its next quiet-spell re-sync (every 3 s).
    wait_for(lambda: all(v.state()["last"] >= last for v in viewers), timeout=20, what=f"every page to reach seq {last}")
    afresh = _shown_afresh(viewers)
    return _check(run, viewers, afresh), afresh["calls"]


def _shown_afresh(viewers: list[Viewer]) -> dict:
    """What a page loaded now, after the run, shows of it."""
    fresh = viewers[0].browser.call(Viewer(viewers[0].browser).open(viewers[0].page.url))
    return fresh.state()["shown"]


def _check(run: Run, viewers: list[Viewer], afresh: dict) -> str:
    for number, viewer in enumerate(viewers, 1):
        expected = list(RunEvent.objects.filter(run=run, seq__gt=viewer.after).order_by("seq").values_list("seq", flat=True))
        state = viewer.state()
        applied = state["applied"]
        if applied != expected:
            missing = sorted(set(expected) - set(applied))
            twice = sorted({s for s in applied if applied.count(s) > 1})
            return (f"page {number} (rendered at seq {viewer.after}) applied {len(applied)} events, expected "
                    f"{len(expected)}: missing {missing[:10]}, twice {twice[:10]}, in order {applied == sorted(applied)}")
        if "status-completed" not in state["status"]:
            return f"page {number} shows {state['status']!r} for a completed run"
        if state["shown"] != afresh:
            return f"page {number} shows {state['shown']}, a page loaded afresh {afresh}"
        if len(viewer.sockets) < 2:
            return f"page {number} never reconnected ({len(viewer.sockets)} socket)"
    return ""


# ---- processes, pages ------------------------------------------------------------------------------------------
def _start_web(port: int, **extra: str) -> subprocess.Popen:
    """daphne through runserver (it serves the static files the page needs), on the test database."""
    log = tempfile.TemporaryFile()  # a file, not a pipe nobody reads
    web = subprocess.Popen(
        [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        env=worker_environment(**extra), stdout=log, stderr=subprocess.STDOUT,
    )
    web.log = log  # type: ignore[attr-defined] - read by runs.tests.workers.stop
    return web


def _wait_for_http(url: str, process: subprocess.Popen) -> None:
    try:
        wait_for_http(url, process=process, every=0.05)
    except ServerExited as exc:
        raise AssertionError(f"{exc}: {_exceptions(stop(process))}") from None
    except RuntimeError as exc:
        raise AssertionError(str(exc)) from None


def _exceptions(log: str) -> str:
    """The exception lines of a traceback (a chained one has several), else the log's end."""
    lines = [line for line in log.splitlines() if line[:1].isalpha() and ("Error" in line or "Exception" in line)]
    return " / ".join(lines[-3:]) if lines else log[-500:]


def _stored(run: Run) -> int:
    return RunEvent.objects.filter(run=run).aggregate(n=Max("seq"))["n"] or 0


def _session(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
