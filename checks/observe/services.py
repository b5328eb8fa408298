"""Observations of the services area: see checks/observe/__init__.py."""
