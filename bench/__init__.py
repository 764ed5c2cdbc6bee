"""Benchmarks: ``python -m bench all [--smoke]`` or ``python -m bench NAME [--smoke]``.

Each benchmark prints its figures and, last, a one-line JSON summary. docs/benchmarks.md has the
results of a full run and says what each figure means.
"""
