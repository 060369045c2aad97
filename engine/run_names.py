"""How runs are numbered within a scenario: `run-001`, `run-002`, …, one above the highest there is (V1's rule:
gaps are not reused). V1's run folders, the site's runs and their downloads all follow it."""

from __future__ import annotations

from pathlib import Path


def run_folder_name(number: int) -> str:
    """A run's name within its scenario, as V1 named its folders (and the site its runs): `run-007`."""
    return f"run-{number:03d}"


def highest_run_number(scenario_output: Path) -> int:
    """The highest `run-NNN` folder number in a scenario's output folder (0 for none)."""
    numbers = [0]
    if scenario_output.is_dir():
        for entry in scenario_output.iterdir():
            prefix, _, number = entry.name.partition("-")
            if prefix == "run" and number.isdigit() and entry.is_dir():
                numbers.append(int(number))
    return max(numbers)
