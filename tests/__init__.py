"""Tests for context-server (a package so `from tests.fakes import ...` works from the repo root)."""
