"""Runs: executing scenarios, their records, live pages and API (filled in by the site issue)."""
