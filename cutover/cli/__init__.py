"""cutover.cli: see docs/architecture.md."""
