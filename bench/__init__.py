"""Benchmarks: not part of the test suite. Each script prints a table and writes JSON."""
