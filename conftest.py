"""Repository-level pytest configuration.

The suite's own plugin (options, inventory, phases, reports) is
`checks/plugin.py`, registered as the `cutover` pytest11 entry point so its
options exist before pytest reads the command line.
"""

collect_ignore = [".lab", "reports", "bench"]
