"""Observations of the http area: see checks/observe/__init__.py."""
