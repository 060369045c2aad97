"""API load: requests per second and p95 latency of the run detail and events-after-seq endpoints.

    .venv/bin/python bench/api_load.py [--seconds 8] [--concurrency 8] [--turns 3]

On the embedded profile, in a fresh data folder: a stored run of the summit (played offline, about 100
events a turn), a user owning it and an API token for that user. The web server is daphne (as `make serve`
runs it: one process) on loopback; this process is the load tool, --concurrency asyncio clients over
keep-alive connections, each sending requests back to back for --seconds (and at most --max-requests in
all). Events pages are `GET /api/runs/{id}/events?after=SEQ&limit=100` with SEQ walking the run's events.
The load tool shares the machine's cores with the server, so these figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import Figure, failed, p95, p95_noise, report  # noqa: E402
from bench.live_latency import free_port, wait_for_http  # noqa: E402
from bench.profiles import embedded  # noqa: E402

ENDPOINTS = ("run detail", "events after seq")
P95_TARGET_MS = {"events after seq": (100, "<=")}  # what a page catching up or a script following a run waits


def stored_run(turns: int) -> tuple[int, int, str]:
    """(run id, its last event seq, a token of its owner) in this process's database."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from accounts.services import api_token_create
    from runs.models import Run, RunEvent

    call_command("run_scenario", "ai-summit", "--turns", str(turns), "--provider", "offline", stdout=io.StringIO(),
                 stderr=io.StringIO())
    run = Run.objects.order_by("-pk").first()
    if run is None or run.status != "completed":
        raise RuntimeError(f"the offline run did not complete: {run and run.status} {run and run.error}")
    user = User.objects.create_user("bench-api", password="bench-password-1")
    Run.objects.filter(pk=run.pk).update(owner=user)
    _, raw = api_token_create(owner=user, name="api load benchmark")
    return run.pk, RunEvent.objects.filter(run=run).order_by("-seq").values_list("seq", flat=True).first(), raw


async def load(base: str, paths, token: str, *, seconds: float, concurrency: int, max_requests: int) -> dict:
    """Send GET requests for `paths` (an endless iterator) from `concurrency` clients; time each one."""
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        for path in itertools.islice(paths, concurrency):  # warm up: connections open, code paths loaded
            await client.get(path)

        async def one_client() -> None:
            while time.perf_counter() < deadline and len(latencies) + sum(errors.values()) < max_requests:
                path = next(paths)
                started = time.perf_counter()
                try:
                    answer = await client.get(path)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if answer.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[str(answer.status_code)] = errors.get(str(answer.status_code), 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if not latencies:
        raise RuntimeError(f"no request succeeded: {errors}")
    return {"requests": len(latencies), "errors": errors, "per_second": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000, "p95_ms": p95(latencies) * 1000,
            "p95_noise_ms": p95_noise(latencies) * 1000}


def measure(turns: int, seconds: float, concurrency: int, max_requests: int) -> dict:
    from bench.profiles import django_ready, start, stop

    django_ready()
    run_id, last_seq, token = stored_run(turns)
    port = free_port()
    server = start(["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "scenariolab_site.asgi:application"])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/api/runs/{run_id}")
        detail = itertools.repeat(f"/api/runs/{run_id}")
        events = (f"/api/runs/{run_id}/events?after={after}&limit=100" for after in itertools.cycle(range(0, last_seq, 10)))
        results = {}
        for name, paths in zip(ENDPOINTS, (detail, events)):
            results[name] = asyncio.run(load(base, paths, token, seconds=seconds, concurrency=concurrency,
                                             max_requests=max_requests))
    finally:
        log = stop(server)
    if server.returncode not in (0, -15):
        raise RuntimeError(f"daphne ended {server.returncode}: {log[-300:]}")
    return {"events": last_seq, **results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="load time per endpoint")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=20_000, help="per endpoint: the load is bounded in count too")
    parser.add_argument("--turns", type=int, default=3, help="turns of the stored run")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.turns, args.seconds, args.concurrency, args.max_requests)))
        return 0
    r = embedded(__file__, ["--turns", str(args.turns), "--seconds", str(args.seconds), "--concurrency",
                            str(args.concurrency), "--max-requests", str(args.max_requests)])
    figures = []
    for endpoint in ENDPOINTS:
        if "error" in r:
            figures += [failed(f"API {endpoint}, requests/s", r["error"], "req/s"),
                        failed(f"API {endpoint}, p95", r["error"], "ms", *P95_TARGET_MS.get(endpoint, (None, "")))]
            continue
        e = r[endpoint]
        note = f"{e['requests']} requests, p50 {e['p50_ms']:.0f} ms" + (f", errors {e['errors']}" if e["errors"] else "")
        figures += [Figure(f"API {endpoint}, requests/s", round(e["per_second"], 1), "req/s", note=note),
                    Figure(f"API {endpoint}, p95", round(e["p95_ms"], 1), "ms", *P95_TARGET_MS.get(endpoint, (None, "")),
                           noise=round(e["p95_noise_ms"], 1))]
    report(f"API load: {args.concurrency} clients × {args.seconds:g} s per endpoint against daphne on loopback, "
           f"token auth, a stored run of {args.turns} turns (embedded profile)", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
