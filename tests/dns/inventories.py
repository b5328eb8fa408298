"""The lab's IPv6-only inventory, as the DNS and outbound lab tests run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Lab


def ipv6_inventory(lab: Lab, directory: Path, acknowledgement: str) -> Path:
    """`.lab/inventory-ipv6.yaml` copied to `directory`: paths made absolute, the TTL
    lowering acknowledged (so DNS03 does not wait)."""
    base = lab.inventory.parent
    data = yaml.safe_load((base / "inventory-ipv6.yaml").read_text(encoding="utf-8"))

    def absolute(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: str(base / v)
                if (k.endswith("_file") or k == "ssh_config") and v
                else absolute(v)
                for k, v in node.items()
            }
        return [absolute(i) for i in node] if isinstance(node, list) else node

    data = absolute(data)
    for side in ("old", "new"):
        # An IPv6 address in a URL goes in brackets (RFC 3986 3.2.2): ssh://root@[2001:db8::1].
        # The lab writes it bare (told to the lab's owner); bracket it here until it does not.
        scheme, _, host = data[side]["ssh"].rpartition("@")
        if host.count(":") > 1 and not host.startswith("["):
            data[side]["ssh"] = f"{scheme}@[{host}]"
    data["dns"]["lowering_acknowledged"] = acknowledgement
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
