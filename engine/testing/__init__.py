"""Test doubles that ship with the engine, for tests, benchmarks and demos."""
