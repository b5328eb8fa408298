"""Observations of the mysql area: see checks/observe/__init__.py."""
