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

from cutover.probes.connect import ProbeError, one_line
from cutover.untrusted import shown

__all__ = ["RemoteHost"]


class RemoteHost:
    """One server reached over ssh; connects on the first command.

    Every command runs under the remote `timeout` (testinfra has none of its
    own), `timeout` seconds unless the command names another bound.
    """

    def __init__(self, hostspec: str, ssh_config: Path | None, timeout: float) -> None:
        self.hostspec = hostspec
        self.ssh_config = ssh_config
        self.seconds = max(1, round(timeout))
        self._host: Any = None

    def execute(self, command: str, what: str, timeout: float | None = None) -> Any:
        """`timeout N COMMAND` on the host: testinfra's result, whatever its exit status.

        Only ssh failing to run it at all is a one-line `ProbeError`; `what`
        names the command in messages ("apachectl", "openssl").
        """
        seconds = f"{self.seconds}" if timeout is None else f"{timeout:g}"
        try:
            if self._host is None:
                import testinfra

                self._host = testinfra.get_host(
                    self.hostspec,
                    ssh_config=str(self.ssh_config) if self.ssh_config else None,
                    timeout=self.seconds,
                    ssh_extra_args="-o BatchMode=yes",
                )
            return self._host.run(f"timeout {seconds} {command}")
        except Exception as exc:  # testinfra raises plain RuntimeError/OSError subclasses
            raise ProbeError(
                f"cannot run {what} on {self.hostspec} within {seconds} s (ssh): {one_line(exc)}"
            ) from None

    def run(self, command: str, what: str) -> Any:
        """`execute`, and a one-line `ProbeError` when the command did not run to its end.

        That is: ssh failed (255), the command timed out (124) or is missing (127).
        """
        result = self.execute(command, what)
        if result.rc == 255:
            raise ProbeError(f"ssh to {self.hostspec} failed: {shown(result.stderr.strip())}")
        if result.rc == 124:
            raise ProbeError(f"{what} on {self.hostspec} timed out after {self.seconds} s")
        if result.rc == 127:
            raise ProbeError(f"{what} not found on {self.hostspec}")
        return result
