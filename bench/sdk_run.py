"""The engine SDK as a program of its own: `python bench/sdk_run.py SCENARIO_DIR TURNS`.

What a researcher's script does with the V2 document's SDK: load a scenario, run it with the provider the
environment names (here the loopback fake LLM server), print the outcome. bench/side_by_side.py times it
beside the other ways to play a run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Runner, Scenario  # noqa: E402
from engine.llm.routing import provider_from_environment  # noqa: E402


def main(argv: list[str]) -> int:
    scenario = Scenario.load(argv[0])
    state = Runner(provider=provider_from_environment(scenario).provider).run(
        scenario, max_turns=int(argv[1]), credit_limit=scenario.config.credit_limit)
    print(state.status.value, state.turn, f"${state.total_cost:.4f}")
    return 0 if state.status.value == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
