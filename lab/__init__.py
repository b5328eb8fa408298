"""The lab: a real two-host migration (old -> new) with two nameservers and a
client, each in its own network namespace on this machine, dual stack (an
address in 198.51.100.0/24 and one in 2001:db8:5100::/64 per host).

Nothing in `cutover/` or `checks/` imports this package; the suite sees the
lab only through `.lab/inventory.yaml`, like any other migration.

>>> # python -m lab up && python -m lab status && python -m lab down
"""
