"""Runs: executing scenarios, their records, live pages and API."""
