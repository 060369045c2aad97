"""Counting the queries of one request, for the query-count tests of every app.

A page or endpoint is measured on a small and on a larger data set (more turns, actors, events, runs); the
count must be the same for both (nothing per row: no N+1) and stay under a ceiling, so a new query shows up
as a test failure that lists the SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection
from django.test.utils import CaptureQueriesContext


@dataclass(frozen=True)
class Measured:
    url: str
    sql: list[str]

    @property
    def count(self) -> int:
        return len(self.sql)

    def listing(self) -> str:
        return f"{self.url}: {self.count} queries\n" + "\n".join(f"  {i + 1}. {q[:300]}" for i, q in enumerate(self.sql))


def measure(get: Callable[[str], object], url: str, *, status: int = 200) -> Measured:
    """The queries `get(url)` makes (a test client's get); the answer must have `status`."""
    with CaptureQueriesContext(connection) as captured:
        response = get(url)
    assert response.status_code == status, f"{url}: {response.status_code} {response.content[:500]!r}"
    return Measured(url, [query["sql"] for query in captured.captured_queries])


def assert_flat(small: Measured, large: Measured, *, ceiling: int) -> None:
    """The larger data set costs no more queries than the small one, and neither more than `ceiling`."""
    assert large.count == small.count, (
        f"the query count grows with the data ({small.count} → {large.count}):\n{small.listing()}\n{large.listing()}")
    assert large.count <= ceiling, f"more queries than the ceiling of {ceiling}:\n{large.listing()}"
