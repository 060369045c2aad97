"""A V1-like monolithic turn loop: the baseline the V2 document's turn-time and memory targets are framed against.

V1 played a turn in one long function: each actor in turn (one call after another), prompts that carry the
whole history as one growing string, results kept in mutable dicts and lists, and every turn's Markdown files
and cost file, and the whole run's state file (what a resume reads), rewritten at its end. This loop does that, making the same model calls as the engine's turn
(the same number per task, through the same provider, so the answers are the same kind and size); it shares
no code with the engine's phases, state or events. bench/v2_targets.py plays it in-process; run as a program
(`python bench/v1_like_loop.py SCENARIO_DIR TURNS OUT_DIR`, the provider from the environment) it is the V1-like
baseline column of bench/side_by_side.py, making a turn's calls in the engine's mix for that many actors.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a program
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.llm.provider import CallPurpose, LLMProvider, LLMRequest, Message
from engine.scenario.folder import Scenario

# The ledger's phase for each task the engine calls a model for.
PHASE_OF = {"summary": "summary", "outreach": "communication", "reply": "communication", "decision": "decision",
            "world_update": "world_update", "metric": "metrics", "validation": "validation"}


async def play(scenario: Scenario, provider: LLMProvider, *, turns: int, calls_per_turn: Counter, out: Path) -> dict:
    """Play `turns` turns; `calls_per_turn` counts the engine's calls per task in one turn."""
    world = scenario.config.initial_world_state
    history: list[dict] = []  # one dict per turn, every field kept, the whole run in memory
    ledger: list[dict] = []
    actors = [a.short_name for a in scenario.actors]
    for turn in range(1, turns + 1):
        record: dict = {"turn": turn, "messages": [], "decisions": {}, "metrics": [], "checks": []}
        past = "\n\n".join(_turn_text(h) for h in history)  # V1 re-read the whole history every turn
        for task in ("summary", "outreach", "reply", "decision", "world_update", "metric", "validation"):
            for n in range(calls_per_turn.get(task, 0)):
                actor = actors[n % len(actors)] if task in ("outreach", "reply", "decision", "validation") else None
                prompt = (f"# Scenario\n{scenario.config.description or scenario.name}\n\n# History\n{past}\n\n"
                          f"# Current world\n{world}\n\n# This turn so far\n{_turn_text(record)}\n\nYou are {actor}.")
                request = LLMRequest(
                    messages=(Message("system", f"Play {actor or 'the world'} in {scenario.name}."), Message("user", prompt)),
                    model=scenario.config.world_state_model, purpose=CallPurpose(task=task, phase=PHASE_OF[task], turn=turn,
                                                                                   actor=actor),
                    seed=scenario.config.seed, max_tokens=1200,
                )
                response = await provider.complete(request)  # one after another
                ledger.append({"turn": turn, "task": task, "actor": actor, "input_tokens": response.input_tokens,
                               "output_tokens": response.output_tokens, "cost": response.cost})
                answer = response.data if response.data is not None else {"text": response.text}
                if task == "decision":
                    record["decisions"][actor] = answer
                elif task == "world_update":
                    world = str(answer.get("world_state") or answer.get("text") or json.dumps(answer))
                elif task in ("outreach", "reply"):
                    record["messages"].append({"actor": actor, **answer})
                elif task == "metric":
                    record["metrics"].append(answer)
                else:
                    record["checks"].append(answer)
        record["world"] = world
        history.append(record)
        _write_turn(out, record, ledger)
        with (out / "scenario-state.json").open("w") as handle:
            json.dump({"turn": turn, "world": world, "history": history, "costs": ledger}, handle, indent=2, ensure_ascii=False)
    return {"turns": len(history), "calls": len(ledger)}


def _turn_text(record: dict) -> str:
    parts = [f"## Turn {record['turn']}"]
    parts += [f"- {m['actor']}: {json.dumps(m, ensure_ascii=False)}" for m in record["messages"]]
    parts += [f"### {actor}\n{json.dumps(d, ensure_ascii=False)}" for actor, d in record["decisions"].items()]
    if "world" in record:
        parts.append(f"### World\n{record['world']}")
    return "\n".join(parts)


def _write_turn(out: Path, record: dict, ledger: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for actor, decision in record["decisions"].items():
        (out / f"{actor}-{record['turn']:03d}.md").write_text(f"# {actor}, turn {record['turn']}\n\n"
                                                              + json.dumps(decision, indent=2, ensure_ascii=False))
    (out / f"world-state-{record['turn']:03d}.md").write_text(record["world"])
    (out / "costs.json").write_text(json.dumps(ledger))


def engine_mix(actors: int, metrics: int) -> Counter:
    """The calls of one engine turn with no person seated: each actor reaches out, replies and decides, one world
    update, one call per metric, and the validation round (a check per decision, per actor and one overall)."""
    return Counter(outreach=actors, reply=actors, decision=actors, world_update=1, metric=metrics,
                   validation=2 * actors + 1)


def main(argv: list[str]) -> int:
    from engine.llm.routing import provider_from_environment

    scenario = Scenario.load(argv[0])
    provider = provider_from_environment(scenario).provider
    mix = engine_mix(len(scenario.actors), len(scenario.metric_definitions))
    done = asyncio.run(play(scenario, provider, turns=int(argv[1]), calls_per_turn=mix, out=Path(argv[2])))
    print(done["turns"], done["calls"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
