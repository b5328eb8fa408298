"""The legacy profile's TLS: old speaks TLS 1.0 only, like the playbook's CentOS 5 server.

- old: TLS 1.0 only (1.1, 1.2, 1.3 off), the CBC/SHA-1 suites AES256-SHA and
  AES128-SHA, a 1024-bit RSA key, on every TLS port (993, 995, 465; STARTTLS
  on 143, 110, 25, 587). Set three ways, as an admin of such a host would see
  it: the host's own OpenSSL configuration (old's mount namespace has its own
  /etc/ssl/openssl.cnf: MinProtocol = MaxProtocol = TLSv1, CipherString with
  @SECLEVEL=0, which OpenSSL 3 needs for TLS 1.0), Dovecot's ssl_min_protocol
  and ssl_cipher_list, and Postfix's smtpd_tls_protocols,
  smtpd_tls_mandatory_protocols and cipher grade. (The lab's Apache serves no TLS.)
- new: today's defaults and its usual certificate, except that an admin kept
  old clients working: the minimum is lowered to TLS 1.0 and the weak ciphers
  are available (security level 0), so new accepts TLS 1.0 through 1.3. The
  `tls-dropped-on-new` fault raises the minimum back to TLS 1.2.

`configure(host)` runs in `up` after the host's daemons are configured;
`old_conditions()` is the lab's postcondition while old serves (its IMAPS
port speaks TLS 1.0 and refuses TLS 1.2). Both do nothing in the default
profile.
"""

from __future__ import annotations

from lab import pki, profiles
from lab.render import write
from lab.run import on
from lab.topology import CLIENT, NEW, OLD, Host

OLD_CIPHERS = "AES256-SHA:AES128-SHA:@SECLEVEL=0"
# Dovecot's own default list, with the weak suites' security level allowed.
NEW_DOVECOT_CIPHERS = (
    "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW"
    "@STRENGTH:@SECLEVEL=0"
)
OLD_KEY_BITS = 1024
OPENSSL_CNF = "/etc/ssl/openssl.cnf"
DOVECOT_FILE = "etc/dovecot/local.d/legacy-tls.conf"


def openssl_cnf(minimum: str, maximum: str | None, ciphers: str) -> str:
    """A host's OpenSSL configuration: what every TLS library user on it starts from."""
    lines = [
        "# The lab's legacy profile (lab/legacy_tls.py): this host's TLS defaults.",
        "openssl_conf = openssl_init",
        "[openssl_init]",
        "ssl_conf = ssl_sect",
        "[ssl_sect]",
        "system_default = system_default_sect",
        "[system_default_sect]",
        f"MinProtocol = {minimum}",
        *([f"MaxProtocol = {maximum}"] if maximum else []),
        f"CipherString = {ciphers}",
    ]
    return "\n".join(lines) + "\n"


def _use_openssl_cnf(host: Host, text: str) -> None:
    """Put `text` over /etc/ssl/openssl.cnf inside `host`'s own mount namespace."""
    source = write(host.root / "etc/openssl-legacy.cnf", text)
    on(host, ["mount", "--bind", str(source), OPENSSL_CNF], timeout=10)


def _postfix(host: Host, settings: dict[str, str]) -> None:
    lines = ["", "# The lab's legacy profile (lab/legacy_tls.py)."]
    lines += [f"{name} = {value}" for name, value in settings.items()]
    path = host.root / "etc/postfix/main.cf"
    path.write_text(path.read_text() + "\n".join(lines) + "\n")


def configure(host: Host) -> None:
    """Old: TLS 1.0 only with a 1024-bit RSA key; new: TLS 1.0 to 1.3 (legacy profile only)."""
    if not profiles.legacy() or host not in (OLD, NEW):
        return
    if host is OLD:
        tls = host.root / "tls"
        pki.issue(host, tls / "host.pem", tls / "host.key", rsa_bits=OLD_KEY_BITS)
        _use_openssl_cnf(host, openssl_cnf("TLSv1", "TLSv1", OLD_CIPHERS))
        write(
            host.root / DOVECOT_FILE,
            f"ssl_min_protocol = TLSv1\nssl_cipher_list = {OLD_CIPHERS}\n",
        )
        _postfix(
            host,
            {
                "smtpd_tls_protocols": ">=TLSv1, <=TLSv1",
                "smtpd_tls_mandatory_protocols": ">=TLSv1, <=TLSv1",
                "smtpd_tls_ciphers": "medium",
                "smtpd_tls_mandatory_ciphers": "medium",
                "tls_medium_cipherlist": OLD_CIPHERS,
            },
        )
    else:
        _use_openssl_cnf(host, openssl_cnf("TLSv1", None, "DEFAULT:@SECLEVEL=0"))
        write(
            host.root / DOVECOT_FILE,
            f"ssl_min_protocol = TLSv1\nssl_cipher_list = {NEW_DOVECOT_CIPHERS}\n",
        )
        _postfix(
            host,
            {
                "smtpd_tls_protocols": ">=TLSv1",
                "smtpd_tls_mandatory_protocols": ">=TLSv1",
            },
        )


def handshakes(address: str, port: int, version: str) -> bool:
    """Does `openssl s_client -VERSION` (any cipher, security level 0) from the client succeed?"""
    host = f"[{address}]" if ":" in address else address
    result = on(
        CLIENT,
        [
            *("openssl", "s_client", "-brief", f"-{version}"),
            *("-cipher", "DEFAULT:@SECLEVEL=0", "-connect", f"{host}:{port}"),
        ],
        input="",
        timeout=20,
        check=False,
    )
    return result.returncode == 0 and "Protocol version:" in result.stderr


def old_conditions() -> list[tuple[str, bool, str]]:
    """(name, holds, detail) of the legacy profile's TLS while old serves; none otherwise."""
    if not profiles.legacy():
        return []
    found = []
    for version, wanted in (("tls1", True), ("tls1_2", False)):
        done = handshakes(OLD.address, 993, version)
        verb = "speaks" if wanted else "refuses"
        found.append(
            (
                f"old {OLD.address}:993 {verb} {version} (legacy profile)",
                done is wanted,
                "handshake completed" if done else "handshake refused",
            )
        )
    return found
