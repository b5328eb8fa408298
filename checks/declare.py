"""One declaration per check: its ID, the phases it runs in and (rarely) its area.

Written directly above the check function, beside the docstring that says
what the check holds and why:

    @check("DNS02", phases=("preflight", "cutover"))
    def test_ttl_lowered(...) -> None:
        '''DNS02: every authoritative server already serves the lowered TTL. ...'''

`cutover.model.catalogue` reads these arguments from the source (it never
imports checks/), so they are literals: the ID as a string, the phases as a
tuple of phase names. The area follows from the ID's prefix (`DNS` -> dns)
unless `area=` names another. The docstring still starts with the ID: the
failure messages and the catalogue quote it, and both must agree.

There is no severity: a check passes or fails, and every failure blocks its
phase (docs/checks.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cutover.model.phases import CHECK_ID, Phase

__all__ = ["check"]

F = TypeVar("F", bound=Callable[..., object])


def check(
    check_id: str,
    *,
    phases: tuple[str, ...] = tuple(Phase),
    area: str | None = None,
) -> Callable[[F], F]:
    """Declare the function below as the check `check_id`, run in `phases`.

    The arguments are checked when the module is imported (an unknown phase, an
    ID the docstring does not start with); the function itself is returned as it is.

    >>> @check("PORT01", phases=("preflight",))
    ... def test_x() -> None:
    ...     '''PORT01: the port answers.'''
    >>> test_x.__name__
    'test_x'
    """
    if CHECK_ID.fullmatch(check_id) is None:
        raise ValueError(f"@check({check_id!r}): not a check ID such as 'PORT01'")
    for phase in phases:
        Phase(phase)  # ValueError on a phase that does not exist

    def declare(function: F) -> F:
        doc = (function.__doc__ or "").strip()
        found = CHECK_ID.match(doc)
        if found is None or found.group(0) != check_id:
            raise ValueError(
                f"{function.__qualname__}: declared {check_id}, but its docstring starts with "
                f"{found.group(0) if found else 'no check ID'}"
            )
        return function

    return declare
