"""cutover.probes.virt: see docs/architecture.md."""
