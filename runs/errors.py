"""What a run's services refuse with: a wrong parameter, or a run whose state does not allow the change."""

from __future__ import annotations


class RunInputError(ValueError):
    """A run parameter is wrong; the message names it and says what would be right."""


class RunConflict(Exception):
    """The run is not in a state that allows this (resume a cancelled run, cancel a completed one)."""
