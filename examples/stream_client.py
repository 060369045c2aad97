"""Follow a run's events as they happen over its stream (a WebSocket), reconnecting without gaps.

    SCENARIOLAB_API_TOKEN=slb_... python examples/stream_client.py RUN_ID [--url http://127.0.0.1:8000]

Each event is printed as it is stored, from the first (or from `--after SEQ`); a dropped connection is opened
again asking for everything after the last event received, so none is missed or seen twice. The script ends
when the run completes, fails, is cancelled or halts; a pause or a wait for a person is printed and followed
on (the run may be resumed). Only `websockets` is needed: nothing here imports Scenario Lab.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import websockets

ENDS = {"scenario_completed", "scenario_failed", "scenario_cancelled", "scenario_halted"}
NOT_ALLOWED = 4403  # no such run, or not yours: the server says the same for both


def describe(event: dict) -> str | None:
    data, kind = event["data"], event["type"]
    if kind == "turn_started":
        return f"Turn {data['turn']}…"
    if kind == "actor_decision_completed":
        return f"  {data['actor']}: {str(data.get('action', ''))[:100]}"
    if kind == "turn_completed":
        return f"  turn {data['turn']} done, ${data['total_cost']:.4f} so far"
    if kind.startswith("scenario_"):
        reason = data.get("reason") or data.get("error") or ""
        return f"{kind.removeprefix('scenario_')}: {data.get('status', '')}{f' ({reason})' if reason else ''}"
    return None


async def follow(url: str, token: str, run_id: int, after: int) -> int:
    socket_url = url.rstrip("/").replace("http", "ws", 1) + f"/api/runs/{run_id}/stream"
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        try:
            async with websockets.connect(f"{socket_url}?after={after}", additional_headers=headers) as stream:
                async for text in stream:
                    event = json.loads(text)
                    after = event["seq"]
                    line = describe(event)
                    if line:
                        print(line, flush=True)
                    if event["type"] in ENDS:
                        return 0
        except websockets.ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code == NOT_ALLOWED:
                print(f"run {run_id}: no such run, or not yours to follow", file=sys.stderr)
                return 2
        except OSError as exc:
            print(f"(connection lost: {exc}; reconnecting after event {after})", file=sys.stderr)
        await asyncio.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=int, help="the run's id")
    parser.add_argument("--url", default=os.environ.get("SCENARIOLAB_URL", "http://127.0.0.1:8000"), help="the site")
    parser.add_argument("--token", default=os.environ.get("SCENARIOLAB_API_TOKEN"), help="an API token (or SCENARIOLAB_API_TOKEN)")
    parser.add_argument("--after", type=int, default=0, help="start after this event (its seq)")
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set SCENARIOLAB_API_TOKEN (make one at /accounts/tokens/)")
    try:
        return asyncio.run(follow(args.url, args.token, args.run, args.after))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
