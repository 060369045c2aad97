"""Scenarios: the scenario library, its models and admin."""
