"""Autopilot benchmark harness (issue 6). Run with ``python -m benchmarks.run [--quick]``.

These are measurements, not tests: nothing here asserts a timing. See ``benchmarks/README.md``.
"""
