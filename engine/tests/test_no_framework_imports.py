"""The engine is plain Python: no module under engine/ (its tests included) may import Django, Channels, Huey or
their kin, nor the apps or V1's command lines built on it."""

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1]
FORBIDDEN = {"django", "channels", "channels_redis", "channels_lite", "huey", "daphne", "ninja",
             "runs", "scenarios", "batches", "accounts", "scenariolab_site", "legacy_v1"}


def imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {"import_module", "__import__"}:
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                roots.add(node.args[0].value.split(".")[0])
    return roots


def test_engine_imports_no_web_framework():
    offenders = {}
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) > 20, "the walk must actually see the engine's modules"
    for path in files:
        bad = imported_roots(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))) & FORBIDDEN
        if bad:
            offenders[str(path.relative_to(ENGINE.parent))] = sorted(bad)
    assert offenders == {}


def test_the_check_catches_a_forbidden_import():
    tree = ast.parse("import os\nfrom django.db import models\nimportlib.import_module('huey.api')\n")
    assert imported_roots(tree) & FORBIDDEN == {"django", "huey"}
