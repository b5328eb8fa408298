"""What a run's failures share, and how an area's outcomes read: the verdict's reasoning.

`root_causes` groups failures by what their messages name (an address that
answered nothing, a missing baseline, one account rejected everywhere);
`area_verdict` says one area's outcome in words. Plain functions over
`Result`s, so they are tested without a run (tests/test_verdict.py);
checks/verdict.py prints them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

# How a probe says an address answered nothing (cutover/probes/connect.py's wording): no
# connection at all, or a connection that never got a word (a forwarder whose
# backend is gone accepts, then stays silent or hangs up).
_ADDRESS = r"(?P<address>\[[0-9A-Fa-f:.]+\]|[^\s:\[\]()]+):(?P<port>\d+)"
_UNREACHABLE = re.compile(
    r"(?P<how>connection refused by|timed out after \S+ s connecting to|no route to"
    r"|timed out after \S+ s asking) " + _ADDRESS  # asking: a DNS query that got no answer
)
_MUTE = (  # (how it shows, what the run says)
    ("timed out", re.compile(r"timed out after \S+ s [^\n:]*? from " + _ADDRESS)),
    ("closed the connection", re.compile(_ADDRESS + r" closed the connection while")),
    (
        "closed it in the TLS handshake",
        re.compile(r"TLS handshake with " + _ADDRESS + r" failed: [^\n]*(?:EOF|closed)"),
    ),
)
_LOGIN = re.compile(r"login as (?P<user>\S+?) (?:failed on|with|rejected)\b")
_NO_BASELINE = re.compile(r"run (?:the )?preflight(?: phase)? (?:first|before|again)")
_HOW = {
    "connection refused by": "connection refused",
    "no route to": "no route",
}
_ASKING = "no answer to DNS queries"


@dataclass
class Result:
    props: dict[str, str]
    outcome: str  # passed | skipped | failed | error (the check could not run: a setup error)
    message: str = ""  # a failure's message (its first line leads with the check ID)


@dataclass(frozen=True)
class Finding:
    """The shared cause one failure names."""

    kind: str  # unreachable | mute | account | baseline
    subject: str = ""  # the address or the account
    how: str = ""
    port: int | None = None


# Checks whose pass says nothing of whether their address answered: MYSQL02 passes when
# the direct login is refused, and when no login is possible at all.
PASSES_WITHOUT_AN_ANSWER = frozenset({"MYSQL02"})


@dataclass
class Cause:
    """What several failures share, and which checks it failed."""

    checks: list[str] = field(default_factory=list)
    errors: int = 0  # how many of the checks errored (could not run) rather than failed
    hows: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)


def cause_of(message: str) -> Finding | None:
    """The shared cause a failure's message names, or None.

    >>> cause_of("PORT01 imaps-993-old: timed out after 5 s reading a line from 198.51.100.10:993")
    Finding(kind='mute', subject='198.51.100.10', how='timed out', port=993)
    >>> cause_of("IMAP01 bob@example.test: login as bob@example.test failed on new: NO")
    Finding(kind='account', subject='bob@example.test', how='', port=None)
    """
    found = _UNREACHABLE.search(message)
    if found:
        asked = found["how"].endswith("asking")
        how = _ASKING if asked else _HOW.get(found["how"], "timed out connecting")
        return Finding("unreachable", found["address"].strip("[]"), how, int(found["port"]))
    for how, pattern in _MUTE:
        found = pattern.search(message)
        if found:
            return Finding("mute", found["address"].strip("[]"), how, int(found["port"]))
    found = _LOGIN.search(message)
    if found:
        return Finding("account", found["user"])
    if _NO_BASELINE.search(message):
        return Finding("baseline")
    return None


def root_causes(results: list[Result]) -> list[str]:
    """One line per shared cause with the number of checks it failed, then the rest by ID.

    >>> silent = "timed out after 5 s connecting to 198.51.100.20"
    >>> for line in root_causes([
    ...     Result({"check_id": "PORT01"}, "failed", f"PORT01 imaps-993-new: {silent}:993"),
    ...     Result({"check_id": "TLS01"}, "failed", f"TLS01 smtp-25-new: {silent}:25"),
    ...     Result({"check_id": "DNS03"}, "failed", "DNS03 example.test: TTL 3600"),
    ... ]):
    ...     print(line)  # doctest: +NORMALIZE_WHITESPACE
    198.51.100.20 answered nothing: timed out connecting on every port tried (25, 993):
    2 checks failed
    1 check failed on its own: DNS03
    """
    answered = {
        r.props.get("address")
        for r in results
        if r.outcome == "passed" and r.props.get("check_id") not in PASSES_WITHOUT_AN_ANSWER
    }
    causes: dict[tuple[str, str], Cause] = {}
    alone: dict[str, list[str]] = {"failed": [], "error": []}
    for result in results:
        if result.outcome not in alone:
            continue
        check_id = result.props.get("check_id", "?")
        finding = cause_of(result.message)
        if finding is None:
            alone[result.outcome].append(check_id)
            continue
        cause = causes.setdefault((finding.kind, finding.subject), Cause())
        cause.checks.append(check_id)
        cause.errors += result.outcome == "error"
        if finding.how:
            cause.hows.add(finding.how)
        if finding.port is not None:
            cause.ports.add(finding.port)
    lines = []
    for (kind, subject), cause in sorted(causes.items(), key=lambda kv: -len(kv[1].checks)):
        failed = _failed(len(cause.checks), cause.errors)
        how = " or ".join(sorted(cause.hows))
        ports = ", ".join(str(p) for p in sorted(cause.ports))
        if kind == "unreachable" and subject not in answered:
            lines.append(
                f"{subject} answered nothing: {how} on every port tried ({ports}): {failed}"
            )
        elif kind == "unreachable":
            lines.append(f"{subject}: {how} on port {ports}: {failed}")
        elif kind == "mute":
            lines.append(
                f"{subject} accepted connections but never answered ({how}) on port {ports}: "
                f"{failed}"
            )
        elif kind == "account":
            lines.append(f"account {subject} rejected (login failed): {failed}")
        else:
            lines.append(f"no baseline from preflight (run the preflight phase first): {failed}")
    for outcome, how in (("failed", "failed"), ("error", "could not run (error)")):
        ids = alone[outcome]
        if ids:
            whose = "its" if len(ids) == 1 else "their"
            lines.append(f"{_checks(len(ids))} {how} on {whose} own: {', '.join(_counted(ids))}")
    return lines


def _failed(count: int, errors: int) -> str:
    """How many checks a cause failed, errors (a check that could not run) told apart.

    >>> _failed(5, 3)
    '5 checks: 2 failed, 3 could not run (error)'
    """
    if not errors:
        return f"{_checks(count)} failed"
    if errors == count:
        return f"{_checks(count)} could not run (error)"
    return f"{_checks(count)}: {count - errors} failed, {errors} could not run (error)"


def _checks(count: int) -> str:
    return f"{count} check{'' if count == 1 else 's'}"


def _counted(ids: list[str]) -> Iterator[str]:
    counts: dict[str, int] = defaultdict(int)
    for check_id in ids:
        counts[check_id] += 1
    for check_id in sorted(counts):
        yield check_id if counts[check_id] == 1 else f"{check_id} x{counts[check_id]}"


def area_verdict(outcomes: dict[str, int]) -> str:
    """FAIL (a check failed or could not run), ok, or skipped when nothing was checked at all."""
    if outcomes.get("failed") or outcomes.get("error"):
        return "FAIL"
    return "ok" if outcomes.get("passed") else "skipped"
