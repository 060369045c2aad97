"""Markdown views of a run."""
