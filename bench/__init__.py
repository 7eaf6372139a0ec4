"""Benchmarks of Switchboard, run with ``make bench`` (``python -m bench.run``).

Every benchmark measures Switchboard side by side with a baseline on the same machine in the
same run and reports ratios, never absolute targets: absolute numbers depend on the machine,
ratios say what Switchboard itself costs. ``run.py`` keeps the registry; ``harness.py`` the
shared pieces (server processes, the load generator, statistics, tables).
"""
