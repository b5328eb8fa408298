"""Loading: read, validate (shape, then meaning), resolve secrets; one pair or a fleet."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ValidationError,
)

from cutover.model.inventory.base import InventoryError, Loc, SecretRef
from cutover.model.inventory.meaning import meaning_problems
from cutover.model.inventory.model import (
    FILE_PLACES,
    NAME_PATTERN,
    SECRET_PLACES,
    Fleet,
    Inventory,
    Pair,
)
from cutover.model.inventory.source import (
    DuplicateKey,
    Problems,
    clean_loc,
    compose_lines,
    describe,
    line_for,
    parse_yaml,
)
from cutover.model.secrets import Secret, SecretError, resolve_secret


def _resolve_path(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    value = value.expanduser()
    return value if value.is_absolute() else base / value


def load_inventory(
    path: str | os.PathLike[str],
    *,
    environ: dict[str, str] | None = None,
    pair: str | None = None,
    secrets: bool = True,
) -> Inventory:
    """Read, validate and resolve one migration, or raise `InventoryError`.

    A fleet inventory (several pairs) needs `pair`, the name of the one wanted.

    >>> load_inventory("inventory.yaml").old.address  # doctest: +SKIP
    IPv4Address('198.51.100.10')
    """
    fleet = load_fleet(path, environ=environ, secrets=secrets)
    if pair is not None:
        return fleet.pair(pair)
    if fleet.several:
        raise InventoryError(
            f"{fleet.source}: pairs: the inventory describes {len(fleet.pairs)} migrations "
            f"({', '.join(fleet.names)}): name one with --pair"
        )
    return fleet.pairs[0]


# How the front doors that take `--inventory` (pytest, `cutover run`, `cutover watch`) name one.
NAME_AN_INVENTORY = "give --inventory PATH or set CUTOVER_INVENTORY"


def load_fleet(
    path: str | os.PathLike[str],
    *,
    environ: dict[str, str] | None = None,
    secrets: bool = True,
    how_to_name: str = NAME_AN_INVENTORY,
) -> Fleet:
    """Read, validate and resolve an inventory file, every pair of it, or raise `InventoryError`.

    With `secrets=False` (`validate --no-secrets`, on a laptop) secret references
    are checked for their shape only: the variables and files they name are not read.
    `how_to_name` ends the line of an inventory that is not there: how the
    command that was typed takes one.

    >>> load_fleet("fleet.yaml").names  # doctest: +SKIP
    ['web07', 'mail02']
    """
    source = Path(path).expanduser()
    environ = dict(os.environ) if environ is None else environ
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"{source}: inventory not found ({how_to_name})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{source}: cannot read inventory: {exc}") from None

    root, data = parse_yaml(source, text)
    if root is None or data is None:  # nothing, comments, or an empty document (`---`)
        raise InventoryError(
            f"{source}:1: the inventory is empty: it needs at least old and new "
            "(see `python -m cutover schema`)"
        )
    if not isinstance(data, dict):
        raise InventoryError(
            f"{source}:1: the inventory must be a mapping (key: value), not {type(data).__name__}"
        )
    lines: dict[Any, int] = {}
    duplicates: list[DuplicateKey] = []
    compose_lines(root, (), lines, duplicates)
    problems = Problems(source, lines)
    for duplicate in duplicates:
        problems.add(
            duplicate.loc,
            f"key given twice (first on line {duplicate.first_line}): YAML would keep only "
            "the last; remove one",
            line=duplicate.line,
        )
    base = source.resolve().parent
    if "pairs" in data:
        return _load_pairs(data, source, base, environ, problems, secrets)
    for loc, what in meaning_problems(data):
        problems.add(loc, what)
    inventory = _validate(Inventory, data, problems, _same_place)
    _finish(inventory, data, source, base, environ, problems, _same_place, secrets)
    problems.check()
    assert inventory is not None
    return Fleet(inventory.name, source, (inventory,))


# Where a location of a pair's merged data was written in the file.
Locate = Callable[[Loc], Loc]


ModelT = TypeVar("ModelT", bound=BaseModel)


def _same_place(loc: Loc) -> Loc:
    return loc


def _validate(
    model: type[ModelT],
    data: object,
    problems: Problems,
    locate: Locate,
    wanted: Callable[[Loc], bool] = lambda loc: True,
) -> ModelT | None:
    """The validated model, or None with every shape problem (those `wanted`) noted."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = clean_loc(error["loc"])
            if wanted(loc):
                problems.add(locate(loc), describe(error))
        return None


def _finish(
    inventory: Inventory | None,
    data: dict[Any, Any],
    source: Path,
    base: Path,
    environ: dict[str, str],
    problems: Problems,
    locate: Locate,
    secrets: bool,
) -> None:
    """Check the files and secrets `data` names, and give them to `inventory` if it is valid.

    Read from the raw data, so a shape problem elsewhere (even in the same
    account) hides no missing file or unset variable: every problem at once.
    """
    _check_files(data, base, problems, locate)
    resolved = _resolve_secrets(data, base, environ, problems, locate) if secrets else {}
    if inventory is None:
        return
    inventory._source = source
    # Models are frozen for the checks; paths are made absolute once, here.
    object.__setattr__(inventory, "ssh_config", _resolve_path(base, inventory.ssh_config))
    object.__setattr__(inventory.tls, "ca_file", _resolve_path(base, inventory.tls.ca_file))
    for loc, ref in inventory.secret_refs():
        ref._password = resolved.get(loc)


def _at(data: object, loc: Loc) -> object:
    """The raw value at `loc`, or None where the data has no such place."""
    for key in loc:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def _check_files(data: dict[Any, Any], base: Path, problems: Problems, locate: Locate) -> None:
    for loc in FILE_PLACES:
        value = _at(data, loc)
        if isinstance(value, str) and value.strip():
            path = _resolve_path(base, Path(value.strip()))
            if path is not None and not path.is_file():
                problems.add(locate(loc), f"no such file: {path}")


def _raw_secret_refs(data: dict[Any, Any]) -> Iterator[tuple[Loc, SecretRef]]:
    """Every well-shaped password reference in the raw data (the others are shape problems)."""
    for place, many in SECRET_PLACES.items():
        value = _at(data, place)
        if many != isinstance(value, list):
            continue  # missing, or a shape problem of its own
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if not isinstance(item, dict):
                continue
            reference = {key: item[key] for key in ("password_env", "password_file") if key in item}
            try:
                ref = SecretRef.model_validate(reference)
            except ValidationError:
                continue
            yield place if index is None else (*place, index), ref


def _resolve_secrets(
    data: dict[Any, Any],
    base: Path,
    environ: dict[str, str],
    problems: Problems,
    locate: Locate,
) -> dict[Loc, Secret]:
    """Every secret the raw data references, by location; each one that does not resolve noted."""
    resolved: dict[Loc, Secret] = {}
    for loc, ref in _raw_secret_refs(data):
        if ref.password_env is None and ref.password_file is None:
            continue
        field = "password_env" if ref.password_env else "password_file"
        try:
            if ref.password_env is not None:
                secret = resolve_secret(env=ref.password_env, environ=environ)
            else:
                path = _resolve_path(base, ref.password_file)
                assert path is not None
                secret = resolve_secret(file=path)
        except SecretError as exc:
            problems.add(
                locate(loc), str(exc), line=line_for(locate((*loc, field)), problems.lines)
            )
            continue
        resolved[loc] = secret
    return resolved


def _pair_place(at: Loc, own: frozenset[Any], *, whole: bool = False) -> Locate:
    """A pair's own keys were written under `pairs[i]`, the rest at the top level."""

    def locate(loc: Loc) -> Loc:
        return (*at, *loc) if whole or not loc or loc[0] in own else loc

    return locate


def _load_pairs(
    data: dict[Any, Any],
    source: Path,
    base: Path,
    environ: dict[str, str],
    problems: Problems,
    secrets: bool,
) -> Fleet:
    raw_pairs = data["pairs"]
    if not isinstance(raw_pairs, list) or not raw_pairs:
        problems.add(("pairs",), "must be a list of pairs (name, old, new), at least one")
        problems.check()
    for key in ("old", "new"):
        if key in data:
            problems.add((key,), "with pairs: every pair gives its own old and new")
    name = data.get("name", "migration")
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        problems.add(("name",), f"must match {NAME_PATTERN} (got {name!r})")
    defaults = {key: value for key, value in data.items() if key not in ("name", "pairs")}
    first_use: dict[str, int] = {}
    pairs = []
    for index, raw in enumerate(raw_pairs):
        at: Loc = ("pairs", index)
        if not isinstance(raw, dict):
            problems.add(at, f"a pair is a mapping (name, old, new), not {type(raw).__name__}")
            continue
        _validate(Pair, raw, problems, _pair_place(at, frozenset(raw), whole=True))
        pair_name = raw.get("name")
        if isinstance(pair_name, str) and pair_name in first_use:
            problems.add(
                (*at, "name"),
                f"pair name '{pair_name}' is used twice (first by pairs[{first_use[pair_name]}])",
            )
        elif isinstance(pair_name, str):
            first_use[pair_name] = index
        locate = _pair_place(at, frozenset(raw))

        def inherited(loc: Loc, own: frozenset[Any] = frozenset(raw)) -> bool:
            # The pair's own keys were checked as a Pair above: only what it
            # inherits, and the rules across sections, are left to report.
            return not loc or (loc[0] not in own and loc[0] not in ("name", "old", "new"))

        merged = {**defaults, **raw}
        for loc, what in meaning_problems(merged):
            problems.add(locate(loc), what)
        inventory = _validate(Inventory, merged, problems, locate, inherited)
        _finish(inventory, merged, source, base, environ, problems, locate, secrets)
        if inventory is not None:
            pairs.append(inventory)
    problems.check()
    return Fleet(str(name), source, tuple(pairs), explicit=True)
