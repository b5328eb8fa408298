"""cutover.compare: see docs/architecture.md."""
