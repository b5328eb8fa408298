"""cutover.model: see docs/architecture.md."""
