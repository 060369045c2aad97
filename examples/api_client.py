"""Start a run through the JSON API, follow its events to the end, and print the cost summary.

    make serve                                   # in one shell (or any Scenario Lab server)
    SCENARIOLAB_API_TOKEN=slb_... python examples/api_client.py --scenario ai-summit --turns 2

Make a token on the site's account page (/accounts/tokens/). Only httpx is needed; nothing here imports
Scenario Lab, so the script works from any machine that can reach the server.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import httpx

FINAL = {"completed", "halted", "failed", "cancelled", "paused", "crashed"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("SCENARIOLAB_URL", "http://127.0.0.1:8000"), help="the site")
    parser.add_argument("--token", default=os.environ.get("SCENARIOLAB_API_TOKEN"), help="an API token (or SCENARIOLAB_API_TOKEN)")
    parser.add_argument("--scenario", default="ai-summit")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--credit-limit", type=float)
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls for new events")
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set SCENARIOLAB_API_TOKEN (make one at /accounts/tokens/)")

    with httpx.Client(base_url=f"{args.url.rstrip('/')}/api", headers={"Authorization": f"Bearer {args.token}"}, timeout=30) as api:
        estimate = api.get(f"/scenarios/{args.scenario}/estimate", params={"turns": args.turns})
        if estimate.is_success:
            cost = estimate.json()["cost"]
            print(f"Estimate for {args.turns} turns: ${cost['low']:.4f} to ${cost['high']:.4f}")
        body = {"scenario": args.scenario, "turns": args.turns}
        if args.credit_limit is not None:
            body["credit_limit"] = args.credit_limit
        started = api.post("/runs/", json=body)
        if started.is_error:
            error = started.json()
            print(f"could not start: {error['code']}: {error['message']}", file=sys.stderr)
            return 2
        run = started.json()
        print(f"Run {run['id']} started ({run['provider']}); page: {run['page']}")

        after, status = 0, run["status"]
        while True:
            page = api.get(f"/runs/{run['id']}/events", params={"after": after, "limit": 500}).json()
            for event in page["events"]:
                data = event["data"]
                if event["type"] == "turn_started":
                    print(f"Turn {data['turn']}…")
                elif event["type"] == "actor_decision_completed":
                    print(f"  {data['actor']}: {str(data.get('action', ''))[:100]}")
                elif event["type"] == "turn_completed":
                    print(f"  turn {data['turn']} done, ${data['total_cost']:.4f} so far")
            after, status = page["next_after"], page["status"]
            if status in FINAL and not page["has_more"]:
                break
            if not page["has_more"]:
                time.sleep(args.poll)

        run = api.get(f"/runs/{run['id']}").json()
        costs = api.get(f"/runs/{run['id']}/costs").json()
    print(f"Run {run['id']} {run['status']} after {run['turn']} of {run['max_turns']} turns"
          + (f": {run['halt_reason'] or run['error']}" if run["halt_reason"] or run["error"] else "."))
    print(f"Cost: ${costs['total_cost']:.4f} over {costs['calls']} calls ({costs['total_tokens']:,} tokens)"
          + (" — offline provider, no model called" if run["offline"] else ""))
    for label in ("by_actor", "by_phase"):
        print(f"  {label.replace('_', ' ')}: " + ", ".join(f"{k} ${v['cost']:.4f}" for k, v in costs[label].items()))
    return 0 if run["status"] == "completed" else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except httpx.HTTPError as exc:  # no server there, or it stopped answering
        print(f"error: cannot talk to the server: {exc} (is it running? start one with `make serve`)", file=sys.stderr)
        raise SystemExit(2) from None
