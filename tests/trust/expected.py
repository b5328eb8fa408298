"""THE one table: lab fault -> the phase where it matters -> the check IDs that must fail.

No miss, no collateral failure: the detection matrix self-test
(tests/trust/test_detection_matrix.py) runs the whole suite in that phase with
the fault applied and asserts the set of failing check IDs equals this set.
docs/detection-matrix.md is rendered from this table (and the VFIO/VM fixture
scenarios) by `python -m tests.trust.matrix --write`; a test keeps it current.

A fault that breaks more than one property lists every check that property
break must fail, with the reason in REASONS.
"""

from __future__ import annotations

PREFLIGHT, CUTOVER, ACCEPTANCE = "preflight", "cutover", "acceptance"
PHASES = (PREFLIGHT, CUTOVER, ACCEPTANCE)

_ENDPOINT = frozenset({"PORT01", "PORT02", "TLS01", "TLS02", "TLS03"})
_IMAP_ALL = frozenset({"IMAP01", "IMAP02", "IMAP03", "IMAP04", "IMAP05"})

# fault spec (as given to `python -m lab fault`) -> {phase: failing check IDs}
EXPECTED: dict[str, dict[str, frozenset[str]]] = {
    "forward-drop:993": {CUTOVER: _ENDPOINT},
    "forward-wrong-backend:143": {CUTOVER: _ENDPOINT},
    "imap-uidvalidity": {PREFLIGHT: frozenset({"IMAP02"})},
    "imap-renumbered": {PREFLIGHT: frozenset({"IMAP03"})},
    "imap-missing-message": {PREFLIGHT: frozenset({"IMAP03"})},
    "imap-flags-lost": {PREFLIGHT: frozenset({"IMAP04"})},
    "mysql-skip-name-resolve": {PREFLIGHT: frozenset({"MYSQL03"})},
    "mysql-grant-missing": {PREFLIGHT: frozenset({"MYSQL04"})},
    "mysql-tunnel-down": {CUTOVER: frozenset({"MYSQL01"})},
    "dns-ttl-high:ns2": {PREFLIGHT: frozenset({"DNS02", "DNS03"})},
    "dns-serial-mismatch": {PREFLIGHT: frozenset({"DNS04"})},
    "dns-a-stale": {ACCEPTANCE: frozenset({"DNS05"})},
    "tls-cert-expired": {PREFLIGHT: frozenset({"TLS01", "TLS03"})},
    "tls-cert-wrong-name": {PREFLIGHT: frozenset({"TLS02", "TLS04"})},
    "starttls-off:587": {
        PREFLIGHT: frozenset({"PORT01", "TLS01", "TLS02", "TLS03", "TLS04", "CAP01"})
    },
    "capability-missing": {PREFLIGHT: frozenset({"CAP01"})},
    "vhost-missing": {PREFLIGHT: frozenset({"HTTP01"})},
    "service-down:new:imap": {
        PREFLIGHT: _ENDPOINT | {"TLS04", "CAP01"} | _IMAP_ALL,
    },
}

# Why a fault fails more than one property (the matrix doc prints these).
REASONS: dict[str, str] = {
    "forward-drop:993": "the old IP's port 993 is closed: the endpoint answers nothing, "
    "so neither its identity nor its certificate can be judged",
    "forward-wrong-backend:143": "the old IP's 143 answers POP3: no IMAP greeting, no STARTTLS",
    "dns-ttl-high:ns2": "a high TTL is also a lowering that has not been live long enough",
    "tls-cert-expired": "an expired certificate neither verifies nor outlasts the margin",
    "tls-cert-wrong-name": "the new certificate misses the client names the old one covered",
    "starttls-off:587": "no STARTTLS on new's 587: no TLS, so no certificate to judge, "
    "and the capability STARTTLS is gone",
    "service-down:new:imap": "new's IMAP is down: both IMAP ports on the new IP answer nothing, "
    "and mailbox continuity cannot be observed on new",
}

# The healthy lab is fully green in every phase.
HEALTHY: dict[str, frozenset[str]] = {phase: frozenset() for phase in PHASES}


def phase_of(fault: str) -> str:
    """The one phase where the fault is run."""
    (phase,) = EXPECTED[fault]
    return phase


def fault_name(spec: str) -> str:
    """`forward-drop:993` -> `forward-drop` (as `lab fault --list` names it)."""
    return spec.split(":", 1)[0]
