"""`python -m reliability [--full] [--only NAME] [--seed N]`: play the scenarios in a fresh test database and
print one table (scenario, trials, passed, figure); reliability/results.json keeps it, with date and machine.

Without --full each scenario plays its bounded trial count. The profile follows the environment, as the
test suite's does (DATABASE_URL and REDIS_URL select PostgreSQL + Redis).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full trial counts (`make reliability`)")
    parser.add_argument("--only", action="append", metavar="NAME", help="only this scenario (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings_test")
    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    from reliability import Result
    from reliability.scenarios import SCENARIOS

    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    if args.only and len(chosen) != len(args.only):
        known = ", ".join(repr(s.name) for s in SCENARIOS)
        parser.error(f"unknown scenario in {args.only}; known: {known}")

    old = setup_databases(verbosity=0, interactive=False, aliases=set(settings.DATABASES))
    rows: list[tuple[Result, float]] = []
    try:
        for scenario in chosen:
            trials = scenario.full if args.full else scenario.bounded
            print(f"{scenario.name}: {trials} trials…", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                result = scenario.run(trials, seed=args.seed)
            except Exception as exc:  # noqa: BLE001 - a broken scenario is a failed row, not a lost table
                traceback.print_exc()
                result = Result(scenario.name, trials, 0, f"the scenario itself failed: {exc!r}")
            rows.append((result, time.monotonic() - started))
    finally:
        teardown_databases(old, verbosity=0)

    print(table([r for r, _ in rows]))
    RESULTS.write_text(json.dumps({
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "full": args.full, "seed": args.seed,
        "profile": settings.PROFILE, "machine": " ".join(platform.uname()), "cpus": os.cpu_count(),
        "results": [{**r._asdict(), "seconds": round(s, 1)} for r, s in rows],
    }, indent=2) + "\n")
    return 0 if all(r.passed == r.trials for r, _ in rows) else 1


def table(results) -> str:
    head = ("scenario", "trials", "passed", "figure")
    cells = [head, *((r.scenario, str(r.trials), str(r.passed), r.figure) for r in results)]
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    lines = [" | ".join([*(c.ljust(w) for c, w in zip(row[:3], widths)), row[3]]) for row in cells]
    lines.insert(1, "-+-".join([*("-" * w for w in widths), "-" * 6]))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
