"""Bounded commands on a server over ssh (testinfra), every failure one line.

testinfra has no per-command timeout, so each command runs under the remote
`timeout`; ssh runs in batch mode (it never prompts). What the command says
(its exit status, stdout, stderr) is the caller's to judge; only the ways it
can fail to run at all become a `ProbeError`: ssh not connecting (exit 255 or
testinfra's exception), the command timing out (124) or missing (127).

>>> remote = RemoteHost("ssh://root@198.51.100.20", ssh_config, 5.0)  # doctest: +SKIP
>>> remote.run("apachectl -t", "apachectl").rc                       # doctest: +SKIP
0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cutover.probes.connect import ProbeError
from cutover.untrusted import shown

__all__ = ["RemoteHost"]


def _gist(exc: Exception) -> str:
    """One line of what went wrong.

    testinfra raises `RuntimeError(CommandResult)` when ssh itself fails
    (exit 255): use ssh's own message, not the result's repr.

    >>> class Result:
    ...     rc, stderr = 255, "ssh: connect to host h port 22: Connection timed out\\r\\n"
    >>> _gist(RuntimeError(Result()))
    'ssh: connect to host h port 22: Connection timed out'
    >>> _gist(OSError("no such file"))
    'no such file'
    """
    result = exc.args[0] if exc.args else None
    if result is not None and hasattr(result, "stderr") and hasattr(result, "rc"):
        message = str(result.stderr or "").strip().splitlines()
        return shown(message[-1]) if message else f"ssh exited with {result.rc}, no message"
    return shown((str(exc).splitlines() or [type(exc).__name__])[0])


class RemoteHost:
    """One server reached over ssh; connects on the first command."""

    def __init__(self, hostspec: str, ssh_config: Path | None, timeout: float) -> None:
        self.hostspec = hostspec
        self.ssh_config = ssh_config
        self.seconds = max(1, round(timeout))
        self._host: Any = None

    def run(self, command: str, what: str) -> Any:
        """`timeout N COMMAND` on the host: testinfra's result, or a one-line `ProbeError`.

        `what` names the command in messages ("apachectl", "openssl").
        """
        try:
            if self._host is None:
                import testinfra

                self._host = testinfra.get_host(
                    self.hostspec,
                    ssh_config=str(self.ssh_config) if self.ssh_config else None,
                    timeout=self.seconds,
                    ssh_extra_args="-o BatchMode=yes",
                )
            result = self._host.run(f"timeout {self.seconds} {command}")
        except Exception as exc:  # testinfra raises plain RuntimeError/OSError subclasses
            raise ProbeError(
                f"cannot run {what} on {self.hostspec} within {self.seconds} s (ssh): {_gist(exc)}"
            ) from None
        if result.rc == 255:
            raise ProbeError(f"ssh to {self.hostspec} failed: {shown(result.stderr.strip())}")
        if result.rc == 124:
            raise ProbeError(f"{what} on {self.hostspec} timed out after {self.seconds} s")
        if result.rc == 127:
            raise ProbeError(f"{what} not found on {self.hostspec}")
        return result
