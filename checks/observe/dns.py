"""Observations of the dns area: see checks/observe/__init__.py."""
