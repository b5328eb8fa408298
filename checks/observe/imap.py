"""Observations of the imap area: see checks/observe/__init__.py."""
