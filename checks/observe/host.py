"""Observations of the host area: see checks/observe/__init__.py."""
