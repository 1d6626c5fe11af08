"""Benchmarks and their harness (not shipped). Each module runs as a script from the repo root: `python bench/X.py`."""
