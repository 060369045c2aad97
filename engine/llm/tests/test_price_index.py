"""The kept genai-prices answers: the installed package's answers, and a run that needs no more never imports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.llm import build_price_index, price_index
from engine.llm.pricing import genai_price
from engine.token_budget import genai_context_length

ROOT = Path(__file__).resolve().parents[3]


def test_the_index_holds_the_installed_packages_own_answers(monkeypatch):
    index = json.loads(price_index.INDEX.read_text())
    assert index["genai_prices"] == price_index.installed_version(), \
        "genai-prices was upgraded: rebuild the index with `make price-index`"
    assert len(index["models"]) > 1000
    assert build_price_index.build()["models"].keys() >= index["models"].keys()
    monkeypatch.setattr(price_index, "_building", True)  # every answer below from the package itself
    for name, (input_rate, output_rate, window) in index["models"].items():
        price = genai_price.__wrapped__(name)
        assert (price.input_per_mtok if price else None, price.output_per_mtok if price else None) == (input_rate, output_rate), name
        assert genai_context_length.__wrapped__(name) == window, name


def test_an_index_of_another_package_version_is_not_used(tmp_path, monkeypatch):
    stale = tmp_path / "price_index.json"
    stale.write_text(json.dumps({"genai_prices": "0.0.1", "models": {"openai/gpt-4o-mini": [999.0, 999.0, 1]}}))
    monkeypatch.setattr(price_index, "INDEX", stale)
    price_index._entries.cache_clear()
    try:
        assert price_index.indexed("openai/gpt-4o-mini") is None
        assert genai_price.__wrapped__("openai/gpt-4o-mini").input_per_mtok != 999.0
    finally:
        price_index._entries.cache_clear()


def test_a_summit_run_prices_its_models_without_importing_genai_prices():
    code = ("import sys; from engine import Runner, Scenario; from engine.llm.pricing import PriceBook; "
            "s = Scenario.load('scenarios/library/ai-summit'); book = PriceBook(); "
            "assert all(book.is_known(a.llm_model) for a in s.actors); "
            "Runner().run(s, max_turns=1); print('genai_prices' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
