"""A tiny YAML writer for the inventory (the lab is stdlib-only, no PyYAML).

Strings are written as JSON strings, which are valid YAML double-quoted scalars.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence


def _scalar(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _is_flat(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        not isinstance(v, (Mapping, list, tuple)) for v in value.values()
    )


def dump(value: object, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(value, Mapping):
        lines = []
        for key, item in value.items():
            if isinstance(item, (Mapping, list, tuple)) and item:
                lines.append(f"{pad}{key}:\n{dump(item, indent + 2)}")
            elif isinstance(item, (Mapping, list, tuple)):
                lines.append(f"{pad}{key}: {'{}' if isinstance(item, Mapping) else '[]'}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, Sequence) and not isinstance(value, str):
        lines = []
        for item in value:
            if _is_flat(item):
                assert isinstance(item, Mapping)
                pairs = ", ".join(f"{k}: {_scalar(v)}" for k, v in item.items())
                lines.append(f"{pad}- {{{pairs}}}")
            elif isinstance(item, Mapping):
                body = dump(item, indent + 2)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return "\n".join(lines)
    return pad + _scalar(value)
