"""Tests of the sans-IO protocol package (synchronous, parametrized, golden bytes)."""
