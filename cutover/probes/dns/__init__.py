"""cutover.probes.dns: see docs/architecture.md."""
