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
# Decommission runs in the acceptance state of the lab (the forwards still up).
DECOMMISSION = "decommission"
PHASES = (PREFLIGHT, CUTOVER, ACCEPTANCE, DECOMMISSION)

_ENDPOINT = frozenset({"PORT01", "PORT02", "TLS01", "TLS02", "TLS03"})
_COMPARED = frozenset({"CAP01", "TLS04"})  # compared with the old server, per endpoint
_IMAP_ALL = frozenset({"IMAP01", "IMAP02", "IMAP03", "IMAP04", "IMAP05"})
# An account that cannot log in on new: AUTH01, and its mailboxes cannot be compared.
_LOGIN_AND_IMAP = _IMAP_ALL | {"AUTH01"}

# fault spec (as given to `python -m lab fault`) -> {phase: failing check IDs}
EXPECTED: dict[str, dict[str, frozenset[str]]] = {
    # CAP01/TLS04 judge the old endpoint through its forward too (issue #18).
    "forward-drop:993": {CUTOVER: _ENDPOINT | _COMPARED | _LOGIN_AND_IMAP},
    "forward-wrong-backend:143": {CUTOVER: _ENDPOINT | _COMPARED | {"AUTH01"}},
    "imap-uidvalidity": {PREFLIGHT: frozenset({"IMAP02"})},
    "imap-renumbered": {PREFLIGHT: frozenset({"IMAP03", "POP01"})},
    "imap-missing-message": {PREFLIGHT: frozenset({"IMAP03", "POP01"})},
    "imap-flags-lost": {PREFLIGHT: frozenset({"IMAP04"})},
    "mysql-skip-name-resolve": {PREFLIGHT: frozenset({"MYSQL03"})},
    "mysql-grant-missing": {PREFLIGHT: frozenset({"MYSQL04"})},
    "mysql-tunnel-down": {CUTOVER: frozenset({"MYSQL01"})},
    "mail-delivery-deferred": {CUTOVER: frozenset({"PORT03"})},
    "dns-ttl-high:ns2": {PREFLIGHT: frozenset({"DNS02"})},
    "dns-serial-mismatch": {PREFLIGHT: frozenset({"DNS04"})},
    "dns-a-stale": {ACCEPTANCE: frozenset({"DNS05"})},
    "tls-cert-expired": {PREFLIGHT: frozenset({"TLS01", "TLS03"}) | _IMAP_ALL},
    "tls-cert-wrong-name": {PREFLIGHT: frozenset({"TLS02", "TLS04"}) | _IMAP_ALL},
    "starttls-off:587": {
        PREFLIGHT: frozenset({"PORT01", "TLS01", "TLS02", "TLS03", "TLS04", "CAP01", "AUTH01"})
    },
    "capability-missing": {PREFLIGHT: frozenset({"CAP01", "AUTH01"})},
    "vhost-missing": {PREFLIGHT: frozenset({"HTTP01"})},
    "service-down:new:imap": {
        PREFLIGHT: _ENDPOINT | {"TLS04", "CAP01"} | _LOGIN_AND_IMAP,
    },
    "auth-hash-broken": {PREFLIGHT: _LOGIN_AND_IMAP},
    "user-missing": {PREFLIGHT: _LOGIN_AND_IMAP},
    "pop3-uidl-changed": {PREFLIGHT: frozenset({"POP01"})},
    "spf-missing-new-ip": {PREFLIGHT: frozenset({"MAIL01"})},
    "spf-too-many-lookups": {PREFLIGHT: frozenset({"MAIL01"})},
    "ptr-mismatch": {PREFLIGHT: frozenset({"MAIL02"})},
    "dkim-key-mismatch": {PREFLIGHT: frozenset({"MAIL03"})},
    "stale-client:25": {DECOMMISSION: frozenset({"DECOM02"})},
    "mail-stranded-on-old": {DECOMMISSION: frozenset({"DECOM03"})},
    "old-queue-not-empty": {DECOMMISSION: frozenset({"DECOM03"})},
    "tunnel-socket-in-use": {DECOMMISSION: frozenset({"DECOM04"})},
    # Dual stack (issue #18): faults only IPv6 clients see (the lab inventory lists both
    # addresses of each server). forward-v4-only fails every check on old's IPv6 endpoints
    # and nothing else; v6-old-server-still-serving the "who answered" check there and
    # the mailbox checks that see old's stale mailboxes (test_detection_matrix.py checks
    # that every failing testcase is on old's IPv6 endpoints).
    "forward-v4-only": {CUTOVER: _ENDPOINT | _COMPARED | _LOGIN_AND_IMAP | {"HTTP01", "POP01"}},
    "v6-old-server-still-serving": {CUTOVER: frozenset({"PORT02", "IMAP03", "IMAP05"})},
    "aaaa-stale": {ACCEPTANCE: frozenset({"DNS05"})},
    "aaaa-ttl-high:ns2": {PREFLIGHT: frozenset({"DNS02"})},
    "ptr6-missing": {PREFLIGHT: frozenset({"MAIL02"})},
    "spf-missing-ip6": {PREFLIGHT: frozenset({"MAIL01"})},
}

# Why a fault fails more than one check (the matrix doc prints these).
REASONS: dict[str, str] = {
    "rsync-without-uidlist": "without dovecot-uidlist new's Dovecot numbers the messages "
    "afresh: every mailbox has a new UIDVALIDITY, messages have other UIDs, UIDNEXT goes "
    "back where old had expunged messages, and the POP3 UIDLs (built from UID and "
    "UIDVALIDITY) all change",
    "forward-drop:993": "the old IP's port 993 is closed: the endpoint answers nothing, so "
    "neither its identity nor its certificate can be judged, logins there fail, and the "
    "mailboxes cannot be compared through the old IP",
    "forward-wrong-backend:143": "the old IP's 143 answers POP3: no IMAP greeting, no STARTTLS, "
    "no IMAP login on 143 (the mailbox comparison uses 993, which is fine)",
    "imap-renumbered": "POP3 UIDLs are built from IMAP UIDs (Dovecot's %08Xu%08Xv): renumbered "
    "messages get new UIDLs, so POP3 clients download them again",
    "imap-missing-message": "the missing message is missing from the POP3 UIDL list too",
    "tls-cert-expired": "an expired certificate neither verifies nor outlasts the margin, and "
    "no IMAP session to new can be opened to compare the mailboxes",
    "tls-cert-wrong-name": "the new certificate misses the client names the old one covered, "
    "so IMAP sessions to new by the client name fail verification",
    "starttls-off:587": "no STARTTLS on new's 587: no TLS, so no certificate to judge, the "
    "capability STARTTLS is gone, and clients cannot log in on 587 without TLS",
    "capability-missing": "AUTH LOGIN is gone: it is missing from the capabilities, and "
    "clients set up for it cannot log in",
    "service-down:new:imap": "new's IMAP is down: both IMAP ports on the new IP answer nothing, "
    "no IMAP login works there, and mailbox continuity cannot be observed on new",
    "auth-hash-broken": "bob cannot log in on new: his logins fail and his mailboxes cannot "
    "be compared",
    "user-missing": "carol cannot log in on new: her logins fail and her mailboxes cannot "
    "be compared (POP01 skips her: AUTH01 says why)",
    "v6-old-server-still-serving": "old's own daemons answer on its IPv6 address: not the "
    "server the phase expects, and behind the new one — messages delivered since the sync "
    "are missing there and UIDNEXT/HIGHESTMODSEQ went back (the stale mailboxes IPv6 "
    "clients would read)",
    "forward-v4-only": "old's IPv6 address refuses every forwarded port: those endpoints "
    "answer nothing, so neither their identity, certificates, capabilities nor vhosts can be "
    "judged, logins there fail and the mailboxes cannot be compared through them",
}

# Extra suite arguments of a row: the mail-flow probe (PORT03) writes, so it is
# opt-in; the matrix proves it green on the healthy cutover lab and red when
# delivery on new is deferred.
SUITE_ARGS: dict[str, tuple[str, ...]] = {
    "mail-delivery-deferred": ("--probe-mail",),
    f"{CUTOVER} healthy": ("--probe-mail",),
}

# The healthy lab is fully green in every phase (decommission: with the DNS-switch wait
# acknowledged, tests/trust/matrix.py's inventory).
HEALTHY: dict[str, frozenset[str]] = {phase: frozenset() for phase in PHASES}

# The legacy profile (`lab up --profile legacy`, issue #19): the old host as a CentOS
# 5-era server, mail copied by rsync. Its healthy lab is green in these phases, and each
# of its faults fails exactly these checks. Run on their own lab, after the default rows.
LEGACY_PHASES = (PREFLIGHT, CUTOVER, ACCEPTANCE)
LEGACY_EXPECTED: dict[str, dict[str, frozenset[str]]] = {
    # New keeps old's pre-4.1 hashes with secure_auth ON. MYSQL04 stays green: the
    # hashes are the same on both sides; in cutover MYSQL01 would fail too.
    "mysql-old-password": {PREFLIGHT: frozenset({"MYSQL06"})},
    # The refused reload keeps the converted vhosts running: only the config on disk is
    # wrong (apachectl -t fails, each Order/Allow line named), so HTTP01 stays green.
    "apache22-copied-unconverted": {PREFLIGHT: frozenset({"HTTP02"})},
    # ns2 serves a MyDNS row whose active flag is 'N' (its views ignore the flag).
    "mydns-row-inactive": {PREFLIGHT: frozenset({"DNS06"})},
    # new requires TLS 1.2 where old spoke only TLS 1.0: every new TLS endpoint.
    "tls-dropped-on-new": {PREFLIGHT: frozenset({"TLS05"})},
    "rsync-without-uidlist": {PREFLIGHT: frozenset({"IMAP02", "IMAP03", "IMAP05", "POP01"})},
}


def expected_faults(fault: str) -> dict[str, frozenset[str]]:
    """The row of EXPECTED or LEGACY_EXPECTED for a fault spec."""
    return EXPECTED[fault] if fault in EXPECTED else LEGACY_EXPECTED[fault]


def phase_of(fault: str) -> str:
    """The one phase where the fault is run."""
    (phase,) = expected_faults(fault)
    return phase


def fault_name(spec: str) -> str:
    """`forward-drop:993` -> `forward-drop` (as `lab fault --list` names it)."""
    return spec.split(":", 1)[0]
