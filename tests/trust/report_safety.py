"""What the hostile-data tests assert about a finished run: output, JUnit and HTML are inert.

Shared by the no-lab test (tests/trust/test_hostile_report.py) and the lab
test (tests/trust/test_hostile_data.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

# What a terminal acts on: C0 controls but newline and tab (a carriage return
# rewrites a line), DEL, and C1 controls, as UTF-8 (U+0080-U+009F) or as lone
# bytes (which `surrogateescape` decodes to U+DC80-U+DC9F).
_RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\udc80-\udc9f]")
CHROMIUM = "chromium"


def raw_controls(output: bytes) -> list[str]:
    """Each raw control character in `output`, with some context, for an assertion message.

    >>> raw_controls("ok\\n\\tfine — é".encode())
    []
    >>> len(raw_controls(b"ESC \\x1b[2K, C1 \\xc2\\x9b, a lone \\x9b, CR \\r"))
    4
    """
    text = output.decode("utf-8", errors="surrogateescape")
    return [
        f"{m.group()!r} in {text[max(0, m.start() - 20) : m.end() + 20]!r}"
        for m in _RAW_CONTROL.finditer(text)
    ]


def junit_parses(path: Path) -> ET.Element:
    """The JUnit XML parsed (raises with the offending position when it does not)."""
    return ET.parse(path).getroot()


def chromium_available() -> bool:
    return shutil.which(CHROMIUM) is not None


def rendered_dom(html: Path, timeout: float = 90) -> str:
    """The page's DOM after its scripts ran, in headless Chromium with no network at all.

    `unshare --net` gives Chromium a network namespace with only a down
    loopback: a planted `<img src=http://...>` cannot reach anything.
    """
    command = [
        "unshare",
        "--net",
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={html.parent / '.chromium-profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        html.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(
            f"chromium exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}"
        )
    return done.stdout.decode("utf-8", errors="replace")


def dom_title(dom: str) -> str:
    match = re.search(r"<title[^>]*>(.*?)</title>", dom, re.DOTALL)
    return match.group(1).strip() if match else ""
