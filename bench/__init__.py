"""Benchmarks of durablehost against the targets of issue 5 (`python -m bench`).

Every workload runs against a started host process (`python -m durablehost start`) on a
free port with its own task hub file, over real HTTP; the DBOS comparison runs in its own
process on its own SQLite file. See docs/performance.md for the method and the figures.
"""
