"""cutover.probes.mail: see docs/architecture.md."""
