"""Faults of the legacy profile's TLS (lab/legacy_tls.py): new drops what old's clients use."""

from __future__ import annotations

from typing import Any

from lab import daemons, profiles
from lab.fault_registry import Fault, Saved, dovecot_override, register
from lab.run import on
from lab.topology import NEW

_POSTFIX = ("smtpd_tls_protocols", "smtpd_tls_mandatory_protocols")


@register
class TlsDroppedOnNew(Fault):
    name = "tls-dropped-on-new"
    summary = (
        "new refuses TLS 1.0 and 1.1 on every TLS port (Dovecot ssl_min_protocol, Postfix "
        "smtpd_tls_protocols raised to TLS 1.2), which old's clients use"
    )
    for_profiles = (profiles.LEGACY,)

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        before = {
            name: on(NEW, ["postconf", "-h", name], timeout=10).stdout.strip() for name in _POSTFIX
        }
        on(NEW, ["postconf", "-e", *(f"{name} = >=TLSv1.2" for name in _POSTFIX)], timeout=20)
        daemons.reload(NEW, "postfix", 0)
        dovecot_override("tls-dropped", "ssl_min_protocol = TLSv1.2\n")
        return {"postfix": before}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        settings = saved["postfix"]
        on(NEW, ["postconf", "-e", *(f"{n} = {v}" for n, v in settings.items())], timeout=20)
        daemons.reload(NEW, "postfix", 0)
        dovecot_override("tls-dropped", None)
