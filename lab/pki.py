"""The lab CA and one certificate (with its own key) per server.

Each server gets a different key, so certificate fingerprints tell the old
server from the new one even through the old host's TCP forward.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from lab.render import render, write
from lab.run import run
from lab.topology import CLIENT_NAMES, STATE, Host

CA_DIR = STATE / "ca"
CA_FILE = STATE / "ca.pem"
VALID_DAYS = 825


def _new_key(path: Path, rsa_bits: int | None = None) -> None:
    # P-256 keys take milliseconds to make; RSA 2048 takes ~100 ms each.
    kind = (
        ["RSA", "-pkeyopt", f"rsa_keygen_bits:{rsa_bits}"]
        if rsa_bits
        else ["EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    )
    run(["openssl", "genpkey", "-algorithm", *kind, "-out", str(path)], timeout=20)
    path.chmod(0o600)


def create_ca() -> None:
    """Make a fresh CA in `.lab/ca/` and publish its certificate as `.lab/ca.pem`."""
    shutil.rmtree(CA_DIR, ignore_errors=True)
    (CA_DIR / "issued").mkdir(parents=True)
    CA_DIR.chmod(0o700)
    (CA_DIR / "index.txt").write_text("")
    (CA_DIR / "serial").write_text("1000\n")
    config = write(CA_DIR / "ca.cnf", render("openssl-ca.cnf", ca_dir=CA_DIR))
    _new_key(CA_DIR / "ca.key")
    run(
        [
            "openssl",
            "req",
            "-new",
            "-x509",
            "-config",
            str(config),
            "-extensions",
            "ca_ext",
            "-key",
            str(CA_DIR / "ca.key"),
            "-days",
            "3650",
            "-out",
            str(CA_DIR / "ca.pem"),
        ],
        timeout=20,
    )
    shutil.copyfile(CA_DIR / "ca.pem", CA_FILE)


def issue(
    host: Host,
    cert: Path,
    key: Path,
    *,
    names: tuple[str, ...] | None = None,
    start: str | None = None,
    end: str | None = None,
    rsa_bits: int | None = None,
) -> None:
    """Issue a server certificate for `host` into `cert`/`key`.

    `names` defaults to the host's own name plus every client-facing name;
    `start`/`end` (YYYYMMDDHHMMSSZ) override the usual validity of VALID_DAYS;
    `rsa_bits` makes an RSA key of that size (default: a P-256 key).
    """
    names = names if names is not None else (host.fqdn, *CLIENT_NAMES)
    with tempfile.TemporaryDirectory(prefix="lab-cert-") as tmp:
        csr = Path(tmp) / "host.csr"
        ext = Path(tmp) / "ext.cnf"
        ext.write_text(
            "basicConstraints = CA:false\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectAltName = " + ", ".join(f"DNS:{n}" for n in names) + "\n"
        )
        cert.parent.mkdir(parents=True, exist_ok=True)
        _new_key(key, rsa_bits)
        run(
            [
                "openssl",
                "req",
                "-new",
                "-key",
                str(key),
                "-subj",
                f"/CN={names[0]}",
                "-out",
                str(csr),
            ],
            timeout=20,
        )
        validity = (
            ["-startdate", start, "-enddate", end] if start and end else ["-days", str(VALID_DAYS)]
        )
        run(
            [
                "openssl",
                "ca",
                "-batch",
                "-notext",
                "-config",
                str(CA_DIR / "ca.cnf"),
                "-extfile",
                str(ext),
                "-in",
                str(csr),
                "-out",
                str(cert),
                *validity,
            ],
            timeout=20,
        )
    # Postfix and Apache want the chain after the leaf.
    cert.write_text(cert.read_text() + CA_FILE.read_text())
    key.chmod(0o600)


DKIM_SELECTOR = "mail"


def dkim_key(key: Path) -> str:
    """A DKIM signing key in `key`; returns the public half for the TXT record (p=...).

    The PEM body of `openssl pkey -pubout` is the base64 SubjectPublicKeyInfo DKIM wants.
    """
    run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(key),
        ],
        timeout=30,
    )
    key.chmod(0o600)
    return dkim_public(key)


def dkim_public(key: Path) -> str:
    """The public half of an existing DKIM key, as the TXT record's p= wants it."""
    pem = run(["openssl", "pkey", "-in", str(key), "-pubout"], timeout=20).stdout
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))
