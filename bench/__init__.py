"""Benchmarks: the suite against a bare sequential script and the monitoring-plugins way.

`python -m bench [NAME ...] [--quick]` (`make bench` runs them all). Every
figure is a ratio against a baseline measured in the same run on the same
machine; nothing here asserts a time. See docs/performance.md.
"""
