"""Golden files of the Markdown views: a fixed offline run of ai-summit, rendered and compared.

After an intended change to the views or the offline provider, regenerate with
    SCENARIOLAB_UPDATE_GOLDEN=1 .venv/bin/pytest engine/views
and review the diff of engine/views/tests/golden/ before committing it.
"""

import os
from datetime import datetime
from pathlib import Path

import pytest

from engine import Runner, Scenario
from engine.views.markdown import (
    communications_markdown,
    decision_markdown,
    run_summary_markdown,
    world_state_markdown,
)

GOLDEN = Path(__file__).parent / "golden"
SUMMIT = Path(__file__).resolve().parents[3] / "scenarios" / "library" / "ai-summit"
AT = datetime(2026, 1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def views() -> dict[str, str]:
    state = Runner().run(Scenario.load(SUMMIT), max_turns=2, run_id="golden-run")
    rendered = {
        "world-state-000.md": world_state_markdown(state, 0, generated_at=AT),
        "world-state-002.md": world_state_markdown(state, 2, generated_at=AT),
        "communications-001.md": communications_markdown(state, 1, generated_at=AT),
        "summary.md": run_summary_markdown(state, generated_at=AT),
    }
    for decision in state.decisions_in(2).values():
        rendered[f"{decision.actor}-002.md"] = decision_markdown(state, decision, generated_at=AT)
    return rendered


def test_views_match_the_golden_files(views):
    if os.environ.get("SCENARIOLAB_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        for name, text in views.items():
            (GOLDEN / name).write_text(text, encoding="utf-8")
    missing = [name for name in views if not (GOLDEN / name).exists()]
    assert not missing, f"no golden file for {missing}: see this module's docstring"
    for name, text in views.items():
        assert text == (GOLDEN / name).read_text(encoding="utf-8"), f"{name} differs from its golden file"


def test_views_have_the_v1_headers(views):
    assert views["world-state-002.md"].startswith(
        "# World State - Turn 2\n\n**Scenario:** International AI Safety Summit\n\n**Turn Duration:**"
    )
    assert "**Generated:** 2026-01-02 03:04:05\n\n---\n\n## Current Situation" in views["world-state-002.md"]
    assert "## Actions Taken This Turn\n\n### Government of Norvale" in views["world-state-002.md"]
    decision = views["norvale-002.md"]
    for heading in ("## Current Goals", "## Reasoning", "## Action"):
        assert heading in decision
    assert "offline provider" in views["summary.md"]
