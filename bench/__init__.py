"""Benchmarks with their baselines; runnable as scripts (python bench/NAME.py) or modules (python -m bench.NAME)."""
