"""hypothesis strategies for hostile scenario folders: wrong types, missing keys and files, huge strings, deep
nesting, alias bombs, non-UTF-8 bytes, control characters, actor names with path tricks. Shared by the loader's
fuzz test and the import fuzz tests (folder and zip)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from engine.scenario import LocatedError, ScenarioLoadError
from engine.scenario.tests.folders import FISHERS, PORT, SCENARIO

# `make test` runs a few examples; `make reliability` (SCENARIOLAB_RELIABILITY_FULL=1) runs many.
FULL = os.environ.get("SCENARIOLAB_RELIABILITY_FULL") == "1"
EXAMPLES = 500 if FULL else 30
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not FULL,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

# Text with what YAML forbids, escapes, confusables and right-to-left marks.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "\x07", "\x1b[31m", "\u202e", "\ufeff", "\ud7ff", "ﬁ", "а", "ｐｏｒｔ", "\t", "\r\n",
                     "{{ 7*7 }}", "<script>", "%s%n", "*x", "&a", "!!python/object:os.system", "'", '"', ": ", "- "]),
)
# Actor names as scenario.yaml lists them: path tricks of every kind, next to the real ones.
actor_names = st.one_of(
    st.sampled_from(["port-authority", "fishers", "../x", "../../etc/passwd", "/etc/passwd", "C:\\x", "a/b", "..",
                     ".", "", " ", "fishers\x00", "ﬁshers", "fishеrs", "port-authority.yml", "actors/fishers",
                     "~", "$HOME", "%2e%2e%2fx", "fishers/../../x", "x" * 300]),
    nasty_text,
)
# Long or odd strings that are still valid YAML text: control characters escaped, up to 300 KB.
odd_strings = st.one_of(
    st.integers(min_value=0, max_value=300_000).map(lambda n: "é" * n),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200),
    st.sampled_from(["a\x00b", "\x00", "\u202eevil", "\x1b[2J", "line\rbreak"]).map(lambda s: s.encode().decode("unicode_escape")),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), nasty_text)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.one_of(st.text(max_size=8), st.integers()),
                                                                      inner, max_size=4)), max_leaves=12)

# Whole files YAML readers trip on.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)) + "name: *i\n"
hostile_files = st.one_of(
    st.just(ALIAS_BOMB),
    st.just("a: &a [*a]\n"),
    st.integers(min_value=50, max_value=5000).map(lambda depth: "x: " + "[" * depth + "]" * depth + "\n"),
    st.integers(min_value=50, max_value=300).map(lambda depth: "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v\n"),
    st.integers(min_value=1024 * 1024 - 16, max_value=1024 * 1024 + 64).map(lambda n: "name: " + "x" * n + "\n"),
    st.just("name: !!python/object/apply:os.system ['true']\n"),
    st.just("name: !!binary '%%%'\nturns: !!int abc\nwhen: 2025-13-45\n"),
    st.just("- a\n- b\n"),
    st.just(""),
    st.just("name: [\n"),
    st.just("\tname: x\n"),
    st.just("? [a, b]\n: c\n"),
    st.just("<<: *nope\n"),
    st.binary(max_size=200),
    st.just(b"name: caf\xe9\n"),
    st.just(b"\xff\xfen\x00a\x00m\x00e\x00"),
)


def _mutated_scenario(base: dict, deletions: list[str], replacements: dict, actors: list[str] | None) -> dict:
    document = dict(base)
    for key in deletions:
        document.pop(key, None)
    document.update(replacements)
    if actors is not None:
        document["actors"] = actors
    return document


KEYS = ["name", "description", "initial_world_state", "turns", "turn_duration", "actors", "features", "world_state_model",
        "system_prompt", "num_turns", "context_window", "seed", "metrics", "checks", "max_context_tokens", "zzz"]
scenario_documents = st.builds(
    _mutated_scenario,
    st.just(yaml.safe_load(SCENARIO)),
    st.lists(st.sampled_from(KEYS), max_size=3),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
    st.one_of(st.none(), st.lists(actor_names, max_size=4)),
)
actor_documents = st.builds(
    _mutated_scenario,
    st.sampled_from([yaml.safe_load(PORT), yaml.safe_load(FISHERS)]),
    st.lists(st.sampled_from(["name", "short_name", "goals", "llm_model", "constraints"]), max_size=2),
    st.dictionaries(st.sampled_from(["name", "short_name", "goals", "llm_model", "constraints", "control", "x"]), values,
                    max_size=2),
    st.none(),
)


def _dumped(document: dict) -> str | bytes:
    try:
        return yaml.safe_dump(document, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return "name: x\n"


def file_contents(documents: st.SearchStrategy[dict]) -> st.SearchStrategy[str | bytes]:
    """Mostly a mutated valid document; sometimes a hostile file, or the document with bytes spliced in."""
    dumped = documents.map(_dumped)
    spliced = st.tuples(dumped, st.binary(min_size=1, max_size=8), st.integers(min_value=0, max_value=400)).map(
        lambda t: (t[0].encode("utf-8") if isinstance(t[0], str) else t[0])[: t[2]] + t[1]
        + (t[0].encode("utf-8") if isinstance(t[0], str) else t[0])[t[2]:])
    return st.one_of(dumped, dumped, hostile_files, spliced)


# Names actor files have on disk: odd but writable (no '/', no NUL).
disk_names = st.one_of(
    st.sampled_from(["port-authority", "fishers", "ﬁshers", "fishеrs", "..yaml", ".hidden", "a b", "x" * 200, "-", "ä"]),
    st.text(alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1,
            max_size=20).filter(lambda n: n not in (".", "..")),
)


@st.composite
def scenario_folders(draw) -> dict[str, str | bytes]:
    """A scenario folder as {relative path: content}; scenario.yaml may be missing, actor files odd."""
    files: dict[str, str | bytes] = {}
    if draw(st.booleans()):  # a valid folder with one odd value: exercises storing, not only refusing
        documents = {"scenario.yaml": SCENARIO, "actors/port-authority.yaml": PORT, "actors/fishers.yaml": FISHERS}
        changed = draw(st.sampled_from(sorted(documents)))
        document = yaml.safe_load(documents[changed])
        key = draw(st.sampled_from(sorted(document) + ["extra_key"]))
        document[key] = draw(st.one_of(values, odd_strings, odd_strings))
        documents[changed] = _dumped(document)
        return documents
    if draw(st.integers(0, 9)):
        files[draw(st.sampled_from(["scenario.yaml", "scenario.yaml", "scenario.yml", "definition/scenario.yaml"]))] = \
            draw(file_contents(scenario_documents))
    for name in draw(st.lists(disk_names, max_size=4, unique=True)):
        suffix = draw(st.sampled_from([".yaml", ".yml", ".txt", ""]))
        files[f"actors/{name}{suffix}"] = draw(file_contents(actor_documents))
    for extra in draw(st.lists(st.sampled_from(["metrics.yaml", "validation-rules.yaml", "exogenous-events.yaml",
                                                "background/notes.md"]), max_size=2, unique=True)):
        files[extra] = draw(st.one_of(st.just(b"\xff\xfe"), file_contents(st.dictionaries(st.text(max_size=8), values,
                                                                                          max_size=3))))
    return files


def write_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    return root


def assert_located(exc: ScenarioLoadError) -> None:
    """Every error names a file of the folder (relative, never a path outside it) and says what is wrong."""
    assert exc.errors, exc
    for error in exc.errors:
        assert isinstance(error, LocatedError)
        assert error.file and error.message.strip(), error
        assert not error.file.startswith(("/", "..")), error
        assert error.line is None or (isinstance(error.line, int) and error.line >= 1), error
        str(error)
    str(exc)
