"""cutover.probes: see docs/architecture.md."""
