"""Observations of the outbound area: see checks/observe/__init__.py."""
