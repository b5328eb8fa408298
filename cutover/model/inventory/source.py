"""The inventory file as YAML: one parse, every node's line, keys given twice.

Also `Problems`, the list of `file:line: field: what` lines an `InventoryError` is made of.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cutover.model.inventory.base import InventoryError, Loc, field_path

# --- loading -------------------------------------------------------------


# libyaml's loader when PyYAML was built with it: the pure-Python one is ~10x slower.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class DuplicateKey:
    loc: Loc
    line: int
    first_line: int


def compose_lines(
    node: yaml.Node, path: Loc, lines: dict[Any, int], duplicates: list[DuplicateKey]
) -> None:
    """Note the line of every node by its field path, and every key given twice in a mapping."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, Any], int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                if (key_node.tag, key) in first:
                    duplicates.append(DuplicateKey((*path, key), line, first[key_node.tag, key]))
                else:
                    first[key_node.tag, key] = line
            compose_lines(value_node, (*path, key), lines, duplicates)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            compose_lines(item, (*path, index), lines, duplicates)


def line_for(loc: Loc, lines: dict[Any, int]) -> int | None:
    # Walk up the location until a node we know: an unknown key lives on
    # its own line, a missing key is best reported at its parent.
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def describe(error: Any) -> str:
    kind = error["type"]
    message = str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see `python -m cutover schema`)"
    if kind == "missing":
        return "required field is missing"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif message.startswith("Assertion failed, "):
        message = message[len("Assertion failed, ") :]
    value = error.get("input")
    if kind.startswith(
        ("greater", "less", "int_", "float_", "bool_", "string_", "literal", "enum")
    ) and (isinstance(value, (str, int, float))):
        return f"{message} (got {value!r})"
    return message


def clean_loc(loc: tuple[Any, ...]) -> Loc:
    # pydantic adds the union member's type name to the location of a
    # union-typed field ("IPv4Address"); the operator never wrote it.
    return tuple(
        part
        for part in loc
        if not (isinstance(part, str) and (part[:1].isupper() or part.startswith("function-")))
    )


class Problems:
    """Every problem found in one inventory file, each once, as `file:line: field: what`."""

    def __init__(self, source: Path, lines: dict[Any, int]) -> None:
        self.source = source
        self.lines = lines
        self.found: list[tuple[int, str]] = []

    def add(self, loc: Loc, what: str, line: int | None = None) -> None:
        line = line or line_for(loc, self.lines)
        where = f"{self.source}:{line}" if line else str(self.source)
        text = f"{where}: {field_path(loc)}: {what}"
        if all(text != known for _, known in self.found):
            self.found.append((line or 0, text))

    def check(self) -> None:
        """Raise every problem found, in the file's order."""
        if self.found:
            raise InventoryError(*(text for _, text in sorted(self.found, key=lambda f: f[0])))


def parse_yaml(source: Path, text: str) -> tuple[yaml.Node | None, Any]:
    """One parse: the node tree gives line numbers, then becomes the data."""
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            return root, (loader.construct_document(root) if root is not None else None)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            raise InventoryError(f"{source}: YAML syntax error: {exc.problem}") from None
        line = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
        if "\t" in line[: len(line) - len(line.lstrip())] or "tab" in str(exc.problem):
            raise InventoryError(
                f"{source}:{mark.line + 1}: a tab character; YAML indents with spaces"
            ) from None
        raise InventoryError(
            f"{source}:{mark.line + 1}: YAML syntax error: {exc.problem}"
        ) from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{source}: YAML syntax error: {exc}") from None
