"""Generated damaged scenario-state.json documents and files: read, or refused with V1StateError (the document)
or RunDirectoryError (the run directory), never another exception. Bounded in `make test` (30 examples each);
SCENARIOLAB_RELIABILITY_FULL=1 runs 500."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Runner
from engine.scenario import load_scenario_folder
from engine.scenario.tests.hostile import FUZZ, nasty_text
from engine.v1 import RunDirectoryError, V1RunDirectory, V1StateError, read_run_directory, state_from_v1
from engine.testing.v1_folders import write_v1_scenario

# Some generated files are hundreds of KB; hypothesis warns that their repr is large, which is the point.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), nasty_text,
                         st.sampled_from(["2025-13-45T00:00:00", "2025-01-31T12:00:00", "-1", "1e309", "completed",
                                          "running", "halted", "x" * 100_000]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(nasty_text, st.sampled_from(["0", "1", "-1", "99999999999"])),
                                                 inner, max_size=4)), max_leaves=10)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """scenario-state.json of a two-turn offline run written by this project, and its scenario."""
    root = tmp_path_factory.mktemp("written")
    scenario = load_scenario_folder(write_v1_scenario(root))
    Runner(persistence=V1RunDirectory(root / "run", scenario, scenario_path="river-compact")).run(scenario, max_turns=2)
    return json.loads((root / "run" / "scenario-state.json").read_text(encoding="utf-8")), scenario


def places(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from places(item, (*path, index))


@st.composite
def damage(draw, document: dict) -> dict:
    """The document with a few places replaced by other JSON values, or removed."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(places(document))[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.integers(0, 3)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return document


@FUZZ
@given(data=st.data(), with_scenario=st.booleans())
def test_a_damaged_state_document_is_read_or_refused_by_key(written, data, with_scenario):
    document, scenario = written
    damaged = data.draw(st.one_of(damage(document), damage(document), json_values))
    try:
        state_from_v1(damaged, scenario=scenario if with_scenario else None)
    except V1StateError as exc:
        assert str(exc).strip() and "\n" not in str(exc), exc


raw_files = st.one_of(
    st.binary(max_size=300),
    st.just(b"\xff\xfe{}"),
    st.integers(10, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(4000, 20_000).map(lambda digits: b'{"current_turn": ' + b"9" * digits + b"}"),
    st.sampled_from([b"NaN", b'{"current_turn": NaN}', b'{"current_turn": 1e999}', b"[]", b'"x"', b"", b"{",
                     b'{"actors": {"../x": {"name": "x"}}}', b'{"\\ud800": 1}']),
)


@FUZZ
@given(data=st.data())
def test_a_damaged_state_file_is_read_or_refused_as_a_run_directory(written, data):
    document, _ = written
    content = data.draw(st.one_of(raw_files, damage(document).map(lambda d: json.dumps(d).encode())))
    with tempfile.TemporaryDirectory() as temporary:
        (Path(temporary) / "scenario-state.json").write_bytes(content)
        try:
            read_run_directory(temporary)
        except RunDirectoryError as exc:
            assert str(exc).strip(), exc
