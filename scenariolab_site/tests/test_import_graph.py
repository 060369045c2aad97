"""No module imports another that imports it back, within the engine or within an app: dependencies point one
way. Imports inside functions count too (a local import that hides a circle is still a circle). The one
exception is the import of an app's tasks by its services: a Huey task calls services, and a service queues
the task, so that one edge is left out of the graph (and only that one: a loop without it is still found)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("engine", "runs", "scenarios", "batches", "accounts")


def queues_its_task(source: str, target: str) -> bool:
    """`app.services` importing `app.tasks`: a service queueing its Huey task."""
    app, _, module = source.rpartition(".")
    return module == "services" and target == f"{app}.tasks"


def modules(root: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "tests" in parts or "migrations" in parts:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that the module `name` at `path` imports, anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    edges = set()
    for target in targets:
        while target and target not in known:  # `import a.b.c` names a.b.c; a name inside a module names the module
            target = target.rpartition(".")[0]
        if target and target != name and not (name.startswith(f"{target}.") and (known[target].name == "__init__.py")):
            edges.add(target)
    return edges


def circles(root: Path, package: str) -> list[list[str]]:
    """Groups of modules of `package` that import each other, directly or round a loop (Tarjan's components)."""
    known = modules(root, package)
    graph = {name: {target for target in imported(path, name, known) if not queues_its_task(name, target)}
             for name, path in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_the_engine_and_the_apps_have_no_import_circles():
    assert len(modules(ROOT, "engine")) > 40, "the walk must see the engine's modules"
    assert {package: circles(ROOT, package) for package in CHECKED} == {package: [] for package in CHECKED}


def test_a_circle_is_found_even_through_a_local_import_or_a_relative_one(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "one.py").write_text("def x():\n    from app import two\n")
    (app / "two.py").write_text("from .one import x\n")
    (app / "three.py").write_text("from app import two\n")
    (app / "services.py").write_text("from app import tasks\nfrom app import four\n")
    (app / "tasks.py").write_text("from app.services import run\n")
    (app / "four.py").write_text("def y():\n    from app import tasks\n")
    # services -> tasks -> services is the queueing exception; services -> four -> tasks -> services is not.
    assert sorted(circles(tmp_path, "app")) == [["app.four", "app.services", "app.tasks"], ["app.one", "app.two"]]
