"""Turning model answers into validated data: strict JSON, repaired near-JSON, clear errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from engine.llm.parsing import json_schema_for, parse_structured
from engine.llm.provider import StructuredOutputError


class Offer(BaseModel):
    party: str
    cubic_metres: int = Field(ge=0)
    conditions: list[str] = Field(default_factory=list)


def test_plain_json():
    assert parse_structured('{"party": "city", "cubic_metres": 40}', Offer) == Offer(party="city", cubic_metres=40)


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"party": "city", "cubic_metres": 40}\n```',
        '```\n{"party": "city", "cubic_metres": 40}\n```',
        '  \n```json\n{"party": "city", "cubic_metres": 40}\n```\n',
    ],
)
def test_fenced_json(text):
    assert parse_structured(text, Offer) == Offer(party="city", cubic_metres=40)


def test_trailing_commas_are_repaired():
    offer = parse_structured('{"party": "city", "cubic_metres": 40, "conditions": ["gauges", "audits",],}', Offer)
    assert offer.conditions == ["gauges", "audits"]


def test_a_truncated_object_is_repaired():
    offer = parse_structured('{"party": "growers", "cubic_metres": 12, "conditions": ["night irrigation', Offer)
    assert (offer.party, offer.cubic_metres) == ("growers", 12)
    assert offer.conditions == ["night irrigation"]


@pytest.mark.parametrize("text", ["[1, 2, 3]", "42", '"just a string"', "not json at all", ""])
def test_anything_but_an_object_is_a_structured_output_error(text):
    with pytest.raises(StructuredOutputError) as caught:
        parse_structured(text, Offer)
    assert "expected a JSON object for Offer" in str(caught.value)
    assert caught.value.raw_text == text


def test_a_schema_mismatch_names_the_field():
    text = '{"party": "city", "cubic_metres": -5}'
    with pytest.raises(StructuredOutputError) as caught:
        parse_structured(text, Offer)
    message = str(caught.value)
    assert message.startswith("Offer does not match the schema")
    assert "cubic_metres" in message
    assert "party" not in message.split(":", 1)[1]  # only the bad field is named
    assert caught.value.raw_text == text


def test_a_missing_field_is_named():
    with pytest.raises(StructuredOutputError, match="cubic_metres: Field required"):
        parse_structured('{"party": "city"}', Offer)


def test_a_nested_field_is_named_by_its_path():
    with pytest.raises(StructuredOutputError, match=r"conditions\.1"):
        parse_structured('{"party": "city", "cubic_metres": 1, "conditions": ["ok", {"no": 1}]}', Offer)


def test_json_schema_for_forbids_extra_keys():
    schema = json_schema_for(Offer)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"party", "cubic_metres", "conditions"}
