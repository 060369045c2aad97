"""The reliability suite: scenarios that break the system on purpose (kill workers, inject LLM faults, feed
bad input, try what a role may not do) and count how often it holds up.

Each scenario is a function `run(trials: int, *, seed: int) -> Result` in a module of this package, named in
`reliability.scenarios.SCENARIOS`. `python -m reliability` (`make reliability`) plays them in full and prints
one table; `reliability/test_bounded.py` plays each with a few trials inside `make test`.
"""

from typing import NamedTuple


class Result(NamedTuple):
    """One row of the table: how many trials held up, and the figure that says how well."""

    scenario: str
    trials: int
    passed: int
    figure: str
