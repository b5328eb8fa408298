"""HTTP: one GET with a Host header; status, headers and a digest of the body.

>>> fetch(endpoint, settings, host="www.example.test").status  # doctest: +SKIP
200
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cutover.model.endpoints import Endpoint
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import MAX_LINE, Deadline, ProbeError
from cutover.probes.services.base import Conversation, ServiceAnswer, converse
from cutover.untrusted import shown

__all__ = ["HttpResponse", "body_digest", "fetch", "observe", "parse_response"]

MAX_RESPONSE = 16 * 1024 * 1024


@dataclass(frozen=True)
class HttpResponse:
    where: str
    host: str
    path: str
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def digest(self, ignore: Sequence[str] = ()) -> str:
        return body_digest(self.body, ignore)


def body_digest(body: bytes, ignore: Sequence[str] = ()) -> str:
    """SHA-256 of the body with every `ignore` regex match removed.

    >>> body_digest(b"generated at 12:00", ["generated at [0-9:]+"]) == body_digest(b"")
    True
    """
    text = body.decode("utf-8", errors="surrogateescape")
    for pattern in ignore:
        text = re.sub(pattern, "", text)
    return hashlib.sha256(text.encode("utf-8", errors="surrogateescape")).hexdigest()


def _dechunk(data: bytes, where: str, deadline: Deadline | None = None) -> bytes:
    """The body of a chunked response, in time linear in its size.

    Chunks are collected in a list and joined once (adding each to a growing
    bytes object is quadratic: 250,000 one-byte chunks took minutes), and the
    exchange's deadline still applies while they are decoded.

    >>> _dechunk(b"2\\r\\nhi\\r\\n1;ext\\r\\n!\\r\\n0\\r\\n\\r\\n", "p")
    b'hi!'
    """
    chunks: list[bytes] = []
    position = 0
    while True:
        if deadline is not None and len(chunks) % 4096 == 0:
            deadline.check(f"decoding the chunked body from {where}")
        end = data.find(b"\r\n", position)
        if end < 0:
            raise ProbeError(f"{where} sent a truncated chunked body")
        try:
            size = int(data[position:end].split(b";")[0].strip(), 16)
        except ValueError:
            raise ProbeError(f"{where} sent a malformed chunked body") from None
        if size == 0:
            return b"".join(chunks)
        if size < 0:
            raise ProbeError(f"{where} sent a malformed chunked body")
        start = end + 2
        chunks.append(data[start : start + size])
        position = start + size + 2


def parse_response(
    raw: bytes, where: str, deadline: Deadline | None = None
) -> tuple[int, str, dict[str, str], bytes]:
    """Status, reason, headers (lower-case names) and body of a whole HTTP/1.x response.

    >>> parse_response(b"HTTP/1.1 200 OK\\r\\nX-A: b\\r\\n\\r\\nhi", "p")
    (200, 'OK', {'x-a': 'b'}, b'hi')
    """
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        raise ProbeError(f"{where} closed the connection before a complete HTTP response")
    lines = head.decode("iso-8859-1").split("\r\n")
    status_line = lines[0].split(None, 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith("HTTP/")
        or not (status_line[1].isdigit())
    ):
        raise ProbeError(f"{where} is not an HTTP server: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = shown(value.strip(), limit=MAX_LINE)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body, where, deadline)
    elif headers.get("content-length", "").isdigit():
        body = body[: int(headers["content-length"])]
    reason = shown(status_line[2]) if len(status_line) > 2 else ""
    return int(status_line[1]), reason, headers, body


def _get(conversation: Conversation, host: str, path: str) -> HttpResponse:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cutover\r\nAccept: */*\r\n"
        "Connection: close\r\n"
    )
    conversation.send(request, f"sending GET {path} for {host}")
    raw = conversation.recv_all(MAX_RESPONSE, f"reading the response to GET {path} for {host}")
    status, reason, headers, body = parse_response(raw, conversation.where, conversation.deadline)
    return HttpResponse(conversation.where, host, path, status, reason, headers, body)


def fetch(endpoint: Endpoint, settings: ProbeSettings, host: str, path: str = "/") -> HttpResponse:
    """`GET path` with `Host: host` on the endpoint's IP (over TLS where the port uses it)."""
    return converse(endpoint, settings, lambda conversation: _get(conversation, host, path))


def _answer(conversation: Conversation, response: HttpResponse) -> ServiceAnswer:
    header = conversation.settings.identity_header
    digest = response.digest()
    if header and header.lower() in response.headers:
        identity, source, note = response.headers[header.lower()], f"{header} header", None
    else:
        identity, source = f"body sha256:{digest[:16]}", f"body of {response.path}"
        note = f"no {header} header in the response" if header else None
    return ServiceAnswer(
        where=conversation.where,
        protocol="http",
        greeting=f"{response.status} {response.reason}".strip(),
        identity=identity,
        identity_source=source,
        identity_note=note,
        tls=conversation.tls,
        http_status=response.status,
        body_digest=digest,
        server_version=response.headers.get("server"),
    )


def observe(endpoint: Endpoint, settings: ProbeSettings) -> ServiceAnswer:
    """`GET /` for the service's first client-facing name (or the IP)."""
    host = settings.server_names.get(endpoint.service.name, str(endpoint.address))

    def exchange(conversation: Conversation) -> ServiceAnswer:
        return _answer(conversation, _get(conversation, host, "/"))

    return converse(endpoint, settings, exchange)
