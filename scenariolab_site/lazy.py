"""Start-up imports a profile does not use, skipped.

huey's storage module imports the Redis and PostgreSQL clients at start-up, for storages of its own that the
embedded profile never uses (SQLite queue, SQLite channel layer): 22 MB and 80 ms of every process.
"""

from __future__ import annotations

import importlib
import sys


def import_without(module: str, hidden: tuple[str, ...]) -> None:
    """Import `module` as if `hidden` were not installed (it treats a missing client as "that storage is not
    available"), then make them importable again for anyone else who needs them."""
    if module in sys.modules:
        return
    saved = {name: sys.modules[name] for name in hidden if name in sys.modules}
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment] - the import system's "not installed here"
    try:
        importlib.import_module(module)
    finally:
        for name in hidden:
            del sys.modules[name]
        sys.modules.update(saved)
