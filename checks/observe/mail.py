"""Observations of the mail area: see checks/observe/__init__.py."""
