"""Config templates (`lab/templates/*`) with `{{name}}` placeholders.

Not string.Template: Postfix and shell configs are full of `$name` of their own.
"""

from __future__ import annotations

import re
from pathlib import Path

from lab.topology import TEMPLATES

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(template: str, **values: object) -> str:
    """Fill a template; a placeholder without a value is an error, never left in."""
    text = (TEMPLATES / template).read_text(encoding="utf-8")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template {template}: no value for {{{{{name}}}}}")
        return str(values[name])

    return _PLACEHOLDER.sub(fill, text)


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path
