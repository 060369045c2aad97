"""Scenario "load": runs played at once on real `run_huey` workers, each followed live by many websocket
viewers through a real daphne process.

A trial is one run of the bundled summit (TURNS turns) against the loopback fake LLM server (CALL_SECONDS a
call). Once the workers poll the queue, each run is handed to it twice, so two executors (two worker processes,
or two threads of one) race to claim it. Viewers do what the run page does: sign in through the login form,
load /runs/<id>/ (the stored state at seq S, its `data-after`), open /ws/runs/<id>/?after=S and take events;
a failed handshake is tried again, a dropped socket reopened after the last seq applied; when every run has
ended and its socket is quiet, a viewer asks once more for everything after its last seq (the page's quiet
re-sync) and waits for the stored status that answers it. Half of a run's viewers are there before it starts,
the others join once the run has reached a random seq; a third of each drop their socket at a random seq.

A run's trial holds when each of its viewers received exactly the run's stored seqs after its S, in order
(no gap, duplicate or reordering; the re-sync's answer may repeat what was on the way, which the page drops),
and the run was played once: completed, one scenario_started, no scenario_resumed, seqs 1..N, each turn and
decision once. Every trial fails when a process logged "database is locked" (or any OperationalError), a
worker or the web server went past RSS_LIMIT_MB resident, a run task never ran, or the ledger of the round
differs from what the server billed.

Bounded (make test, 2 trials): one worker with 2 threads, 5 viewers a run. Full (8 trials): two workers with
4 threads each, so all 8 runs play at once, and 25 viewers a run: 200.
"""

from __future__ import annotations

import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, Sum

from bench.live_latency import free_port, wait_for_http
from engine import EventType
from engine.testing.fake_llm import FakeLLMServer
from reliability import Result
from reliability.checks import turns_and_decisions_once
from runs.models import CostRecord, Run, RunEvent, RunStatus
from runs.tasks import execute_run
from runs.tests.factories import make_run
from runs.tests.workers import MANAGE, final_status, stop, wait_for, worker_environment
from reliability.viewers import PASSWORD, Viewer, Watch

NAME = "load"
TURNS = 2
CALL_SECONDS = 0.05  # each model call's latency: events come at a live run's pace
RSS_LIMIT_MB = 512  # per process; measured: the web server ~185 MB with 200 sockets, a worker playing 4 runs ~155 MB
LOCKED = re.compile(r"database is locked|OperationalError")
TASK_DONE = re.compile(r"runs\.tasks\.execute_run: ([0-9a-f-]{36}) executed in")  # Huey's line per task run
LATE_JOIN_SEQ = 60 * TURNS  # a late viewer joins once its run has reached a seq drawn from 1..this


@dataclass(frozen=True)
class Shape:
    workers: int
    threads: int  # per worker
    viewers_per_run: int


def shape(trials: int) -> Shape:
    """Bounded (2 runs or fewer): one worker; otherwise two, with threads enough to play every run at once."""
    if trials <= 2:
        return Shape(workers=1, threads=2, viewers_per_run=5)
    return Shape(workers=2, threads=math.ceil(trials / 2), viewers_per_run=25)


def run(trials: int, *, seed: int = 0) -> Result:
    if not trials:
        return Result(NAME, 0, 0, "no trial")
    started = time.monotonic()
    plan = shape(trials)
    try:
        round_ = _play(trials, plan, random.Random(seed))
    except AssertionError as exc:  # the round itself could not be played: no trial held
        return Result(NAME, trials, 0, f"FAILED: {exc}; {time.monotonic() - started:.0f} s")
    problems = round_.problems
    passed = 0 if round_.global_problems else sum(1 for p in problems.values() if not p)
    web_cpu = round_.cpu.get("web", 0.0)
    figure = (f"{trials} runs on {plan.workers} worker(s) x {plan.threads} threads, {round_.tasks} tasks (2 a run "
              f"racing to claim it, {round_.across} races across processes); {round_.viewers} viewers "
              f"({round_.late} joined mid-run, {round_.reconnected} reconnected), {round_.events_checked} events checked; "
              f"max RSS web {round_.rss['web']:.0f} MB, worker {round_.rss['worker']:.0f} MB (limit {RSS_LIMIT_MB}); "
              f"{round_.lock_errors} lock errors; CPU web {web_cpu:.0f} s, workers {sum(round_.cpu.values()) - web_cpu:.0f} s; "
              f"event to viewer p95 {p95(round_.delays):.2f} s; "
              f"page load p95 {p95(round_.page_seconds):.2f} s, handshake p95 {p95(round_.socket_seconds):.2f} s "
              f"(max {max(round_.socket_seconds, default=0):.2f} s, {round_.refused} tried again); "
              f"{time.monotonic() - started:.0f} s")
    failures = round_.global_problems + [f"run {run_id}: {p}" for run_id, p in problems.items() if p]
    if failures:
        figure += "; FAILED " + "; ".join(failures[:5])
    return Result(NAME, trials, passed, figure)


# ---- one round ------------------------------------------------------------------------------------------------
@dataclass
class Round:
    problems: dict[int, str]  # per run: "" when its trial held
    global_problems: list[str]
    tasks: int  # run tasks the workers executed: two a run, one of which finds it claimed
    across: int  # runs whose two tasks were executed by two worker processes
    viewers: int
    late: int
    reconnected: int
    events_checked: int
    rss: dict[str, float]
    lock_errors: int
    page_seconds: list[float]
    socket_seconds: list[float]
    refused: int
    delays: list[float]
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds each process used


def _play(trials: int, plan: Shape, rng: random.Random) -> Round:
    server = FakeLLMServer(latency=CALL_SECONDS, seed=rng.randrange(1 << 30)).start_in_thread()
    llm = {"SCENARIOLAB_LLM_BASE_URL": server.base_url, "SCENARIOLAB_LLM_TIMEOUT": "60"}
    processes: dict[str, subprocess.Popen] = {}
    sampler = RssSampler()
    logs: dict[str, str] = {}
    cpu: dict[str, float] = {}
    try:
        os.environ.update(llm)  # the runs' plans are made here, with the same server
        user = User.objects.create_user(f"load-{uuid.uuid4().hex[:8]}", password=PASSWORD)
        runs = [make_run(turns=TURNS, seed=rng.randrange(1 << 30), owner=user) for _ in range(trials)]
        port = free_port()
        processes["web"] = _start(["-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                   "scenariolab_site.asgi:application"], **llm)
        sampler.watch("web", processes["web"])
        for n in range(plan.workers):
            processes[f"worker {n + 1}"] = _start([str(MANAGE), "run_huey", "--workers", str(plan.threads),
                                                   "--worker-type", "thread", "--delay", "0.1"], **llm)
            sampler.watch("worker", processes[f"worker {n + 1}"])
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/accounts/login/")
        # Every worker polling the queue before the first task: a run's two tasks are then taken at once.
        wait_for(lambda: all(b"consumer started" in _peek(p) for name, p in processes.items() if name != "web"),
                 what="the workers to start")
        watch = Watch(base, user.username, _viewers(runs, plan, rng))
        watch.start()  # the early viewers are following their runs
        tasks = {execute_run(r.pk).id: r.pk for r in runs for _ in range(2)}  # twice each: two executors race
        wait_for(lambda: all(final_status(r) for r in runs), timeout=120 + 30 * trials, what="every run to end")
        _wait_queue_drained()
        viewers = watch.finish()
        wait_for(lambda: _settled(server.stats), timeout=10, what="the fake server to settle")
        billed = server.stats
    finally:
        sampler.stop()
        for name, process in processes.items():
            cpu[name] = cpu_seconds(process.pid)
            logs[name] = stop(process)
        for key in llm:
            os.environ.pop(key, None)
        server.stop()
    round_ = _judge(runs, viewers, billed, logs, sampler.peaks, tasks)
    round_.cpu = cpu
    return round_


def _peek(process: subprocess.Popen) -> bytes:
    """What a process logged so far, read without moving the file offset it shares with the process."""
    return os.pread(process.log.fileno(), 1 << 20, 0)


def _start(args: list[str], **extra: str) -> subprocess.Popen:
    """A process against the test database; its output goes to a file (a pipe nobody reads would block it)."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, *args], cwd=settings.BASE_DIR, env=worker_environment(**extra),
                               stdout=log, stderr=subprocess.STDOUT)
    process.log = log  # type: ignore[attr-defined]  # what runs.tests.workers.stop reads back
    return process


def _wait_queue_drained() -> None:
    """Every task handed out, the losing duplicates included, before the workers stop."""
    from huey.contrib.djhuey import HUEY

    wait_for(lambda: HUEY.pending_count() == 0, timeout=30, what="the queue to drain")


def _settled(stats: dict) -> bool:
    return stats["requests"] == stats["completions"] + stats["abandoned"]


def _judge(runs: list[Run], viewers: list[Viewer], billed: dict, logs: dict[str, str], peaks: dict[str, float],
           tasks: dict[str, int]) -> Round:
    problems: dict[int, str] = {}
    checked = 0
    for r in runs:
        stored = list(RunEvent.objects.filter(run=r).order_by("seq").values_list("seq", flat=True))
        problem = _played_once(r, stored)
        for viewer in (v for v in viewers if v.run_id == r.pk):
            checked += len(viewer.seqs)
            problem = problem or viewer.mismatch(stored)
        problems[r.pk] = problem
    global_problems = []
    # Which worker executed each task (Huey logs its id): a run whose two tasks ran in two processes had two
    # workers racing for it, not two threads of one.
    done_by = {task: name for name, log in logs.items() if name.startswith("worker") for task in TASK_DONE.findall(log)}
    if missing := set(tasks) - set(done_by):
        global_problems.append(f"{len(missing)} of the {len(tasks)} run tasks never ran: not every race was played")
    workers_of: dict[int, set[str]] = {}
    for task, run_id in tasks.items():
        workers_of.setdefault(run_id, set()).add(done_by.get(task, ""))
    across = sum(1 for names in workers_of.values() if len(names) == 2)
    lock_lines = [f"{name}: {line.strip()[:200]}" for name, log in logs.items()
                  for line in log.splitlines() if LOCKED.search(line)]
    if lock_lines:
        global_problems.append(f"{len(lock_lines)} lock errors logged, first {lock_lines[0]}")
    for role, peak in peaks.items():
        if peak > RSS_LIMIT_MB:
            global_problems.append(f"{role} peaked at {peak:.0f} MB resident, over {RSS_LIMIT_MB}")
    paid = CostRecord.objects.filter(run__in=runs, cached=False).aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    if (paid["i"] or 0, paid["o"] or 0) != (billed["prompt_tokens"], billed["completion_tokens"]):
        global_problems.append(f"ledger {paid['i']} + {paid['o']} tokens, server billed "
                               f"{billed['prompt_tokens']} + {billed['completion_tokens']}")
    return Round(problems, global_problems, len(done_by), across, len(viewers), sum(1 for v in viewers if v.join_at_seq),
                 sum(1 for v in viewers if v.reconnected), checked, {"web": peaks.get("web", 0.0), "worker": peaks.get("worker", 0.0)},
                 len(lock_lines), [t for v in viewers for t in v.page_seconds], [t for v in viewers for t in v.socket_seconds],
                 sum(v.refused for v in viewers), [d for v in viewers for d in v.delays])


def p95(values: list[float]) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _played_once(run: Run, stored: list[int]) -> str:
    run.refresh_from_db()
    if run.status != RunStatus.COMPLETED:
        return f"ended {run.status}: {run.error or run.halt_reason}"
    if stored != list(range(1, len(stored) + 1)):
        return f"stored seqs are not 1..{len(stored)}"
    kinds = dict(RunEvent.objects.filter(run=run, type__in=[EventType.SCENARIO_STARTED, EventType.SCENARIO_RESUMED])
                 .values_list("type").annotate(n=Count("seq")))
    if kinds.get(EventType.SCENARIO_STARTED) != 1 or kinds.get(EventType.SCENARIO_RESUMED):
        return f"started {kinds.get(EventType.SCENARIO_STARTED, 0)} times, resumed {kinds.get(EventType.SCENARIO_RESUMED, 0)}"
    return turns_and_decisions_once(run, TURNS)


# ---- memory -------------------------------------------------------------------------------------------------
class RssSampler:
    """The peak resident size of each role's processes, read from /proc every 100 ms in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.peaks: dict[str, float] = {}
        self._processes: list[tuple[str, subprocess.Popen]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def watch(self, role: str, process: subprocess.Popen) -> None:
        self._processes.append((role, process))

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)

    def _sample(self, interval: float) -> None:
        while not self._done.wait(interval):
            for role, process in list(self._processes):
                mb = rss_mb(process.pid)
                if mb is not None:
                    self.peaks[role] = max(self.peaks.get(role, 0.0), mb)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a live process has used (0 once it has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # ended meanwhile
        return None
    return None


def _viewers(runs: list[Run], plan: Shape, rng: random.Random) -> list[Viewer]:
    viewers = []
    for r in runs:
        early = math.ceil(plan.viewers_per_run / 2)
        for n in range(plan.viewers_per_run):
            drop = rng.randint(1, LATE_JOIN_SEQ) if n % 3 == 1 else 0  # a third of each kind loses its connection
            viewers.append(Viewer(r.pk, 0 if n < early else rng.randint(1, LATE_JOIN_SEQ), drop_at_seq=drop))
    return viewers
