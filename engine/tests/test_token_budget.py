"""A model's context length, the token estimate and a request's prompt budget."""

from __future__ import annotations

import pytest

from engine.llm.parsing import json_schema_for
from engine.llm.provider import CallPurpose, LLMRequest, Message
from engine.phases.decision_form import DecisionOutput
from engine.phases.tests.conftest import build_scenario
from engine.token_budget import (
    CONTEXT_LENGTHS_VARIABLE,
    DEFAULT_CONTEXT_LENGTH,
    context_length,
    estimate_tokens,
    fits,
    prompt_budget,
    request_tokens,
    scenario_context_length,
    shorten,
)

NO_SETTING: dict[str, str] = {}


def test_hosted_models_take_their_context_window_from_genai_prices():
    assert context_length("openai/gpt-4o-mini", env=NO_SETTING) == 128_000
    assert context_length("anthropic/claude-3.5-haiku", env=NO_SETTING) == 200_000
    assert context_length("gpt-4", env=NO_SETTING) == 8_192  # no vendor: genai-prices' own match


def test_families_genai_prices_does_not_know_come_from_the_table():
    assert context_length("meta-llama/llama-3.3-70b-instruct", env=NO_SETTING) == 131_072
    assert context_length("qwen/qwen-2.5-72b-instruct", env=NO_SETTING) == 32_768


def test_an_unknown_model_gets_the_small_default():
    assert context_length("test/upland-model", env=NO_SETTING) == DEFAULT_CONTEXT_LENGTH == 8_192


def test_local_servers_are_taken_at_the_context_they_start_with():
    assert context_length("ollama/llama3.1:8b", env=NO_SETTING) == 4_096  # the model could take 128k; Ollama's default cannot
    assert context_length("local/gemma", env=NO_SETTING) == 8_192


def test_the_environment_overrides_any_model_and_the_longest_prefix_wins():
    env = {CONTEXT_LENGTHS_VARIABLE: "ollama/*=32768, ollama/llama3.1:8b=131072 ,openai/gpt-4o-mini=1000"}
    assert context_length("ollama/llama3.1:8b", env=env) == 131_072
    assert context_length("ollama/qwen2.5", env=env) == 32_768
    assert context_length("OpenAI/GPT-4o-mini", env=env) == 1_000
    assert context_length("openai/gpt-4o", env=env) == 128_000


@pytest.mark.parametrize("setting", ["ollama/x", "ollama/x=lots", "=4096", "x=0"])
def test_a_malformed_setting_names_the_variable(setting):
    with pytest.raises(ValueError, match=CONTEXT_LENGTHS_VARIABLE):
        context_length("ollama/x", env={CONTEXT_LENGTHS_VARIABLE: setting})


def test_a_scenarios_max_context_tokens_caps_every_model_but_never_raises_one():
    capped = build_scenario(features={"context_management": {"max_context_tokens": 16_000}})
    assert scenario_context_length(capped, "openai/gpt-4o-mini", env=NO_SETTING) == 16_000
    assert scenario_context_length(capped, "test/upland-model", env=NO_SETTING) == 8_192
    assert scenario_context_length(build_scenario(), "openai/gpt-4o-mini", env=NO_SETTING) == 128_000


def test_the_estimate_errs_high_for_prose_and_counts_other_scripts_a_token_a_character():
    prose = "The delegations agreed to meet again next week to settle the verification annex. " * 20
    assert estimate_tokens(prose) >= len(prose) / 3.5  # real tokenizers give about len / 4 for English
    assert estimate_tokens("") == 0
    assert estimate_tokens("水资源协定") == 5
    assert estimate_tokens("café") == 2  # "caf" and "é"


def test_a_request_counts_its_messages_and_its_schema():
    bare = LLMRequest((Message("system", "s" * 300), Message("user", "u" * 600)), "m", CallPurpose("decision", "decision", 1))
    with_schema = LLMRequest(bare.messages, "m", bare.purpose, json_schema=json_schema_for(DecisionOutput))
    assert request_tokens(bare) == 100 + 200 + 3 * 4
    assert request_tokens(with_schema) > request_tokens(bare) + 200


def test_the_budget_leaves_room_for_the_answer_and_a_margin():
    assert prompt_budget(8_192, 1_200) == 8_192 - 1_200 - 409
    assert prompt_budget(4_096, 600) == 4_096 - 600 - 256
    long = LLMRequest((Message("user", "x" * 30_000),), "test/m", CallPurpose("decision", "decision", 1), max_tokens=1_200)
    assert not fits(long, env=NO_SETTING)
    assert fits(long, env={CONTEXT_LENGTHS_VARIABLE: "test/m=32768"})


def test_shorten_cuts_at_a_word_and_marks_the_cut():
    text = "one two three four five six seven eight nine ten " * 10
    start, end = shorten(text, 20), shorten(text, 20, keep="end")
    assert estimate_tokens(start) <= 20 and start.endswith(" […]") and text.startswith(start[:-4])
    assert estimate_tokens(end) <= 20 and end.startswith("[…] ") and text.rstrip().endswith(end[4:].rstrip())
    assert shorten(text, 1000) == text
    assert shorten(text, 1) == ""
