"""Scenarios: the scenario library, its models and admin (filled in by the site issue)."""
