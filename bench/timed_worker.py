"""`python bench/timed_worker.py run_huey …`: a manage.py command whose HTTP LLM calls are timed to a file.

Each call the real OpenAI-compatible client makes appends `[turn, task, seconds]` (the HTTP exchange, as
`LLMResponse.latency_ms` measures it, without the wait for a free slot) to the JSON-lines file named by
BENCH_CALLS_FILE, so a benchmark can find each turn's LLM critical path in a worker process as it does in
its own. The timing wraps the client; nothing else about the command changes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def instrument(path: str) -> None:
    from engine.llm.openai_compatible import OpenAICompatibleProvider

    original = OpenAICompatibleProvider.complete

    async def complete(self, request):
        response = await original(self, request)
        with open(path, "a", encoding="utf-8") as calls:  # one short line: a write of it is not interleaved
            calls.write(json.dumps([request.purpose.turn, request.purpose.task, response.latency_ms / 1000]) + "\n")
        return response

    OpenAICompatibleProvider.complete = complete


def main() -> None:
    if not os.environ.get("BENCH_CALLS_FILE"):
        raise SystemExit("BENCH_CALLS_FILE must name the file the calls are written to")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings")
    instrument(os.environ["BENCH_CALLS_FILE"])
    from django.core.management import execute_from_command_line

    execute_from_command_line([str(ROOT / "manage.py"), *sys.argv[1:]])


if __name__ == "__main__":
    main()
