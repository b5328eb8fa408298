"""cutover.probes.mysql: see docs/architecture.md."""
