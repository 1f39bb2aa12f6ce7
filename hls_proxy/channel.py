"""The HTTP edge: a clear answer to a request no endpoint should see, then a closed connection.

Twisted's HTTPChannel, left alone, closes an over-long request line without a word, waits
for a bare-LF request until the header timeout, folds obs-fold lines into the header
before them, and spools any announced body to a temporary file (a 1 GiB Content-Length on
GET /health is read into one). Here, before any resource runs:

- request line over MAX_REQUEST_LINE_BYTES: 414;
- header section over MAX_HEADER_BYTES, or more than MAX_HEADERS lines: 431;
- a bare LF line ending, or an obs-fold line (RFC 9112 section 5.2): 400 at once;
- a body: no endpoint takes one. An announced Content-Length over MAX_BODY_BYTES is 413
  as soon as the header is read; a chunked body is 413 at its first byte (observe.py's
  request keeps at most MAX_BODY_BYTES, in memory, never in a file).

Every answer is one text line, `Connection: close`, and the connection is closed.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger
from twisted.web.http import RESPONSES, HTTPChannel, _GenericHTTPChannelProtocol

from .config import MAX_REQUEST_LINE_BYTES

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_REQUEST_LINE_BYTES",
    "EdgeChannel",
    "edge_protocol",
]

log = Logger()

# The longest child URL the rewrite mints is about 44 KB: the upstream URL (at most 16 KiB
# characters, urls.py) in base64 (21.8 KB) plus the stream part (h_ headers, at most 16 KiB,
# compressed then base64: 21.9 KB when they do not compress) plus the signature and name.
MAX_HEADER_BYTES = 32 * 1024  # every header line, without line endings
MAX_HEADERS = 100
MAX_BODY_BYTES = 4 * 1024
_BARE_LF = re.compile(rb"(?<!\r)\n")


def _answer(status: int, message: str) -> bytes:
    body = message.encode("utf-8") + b"\n"
    return (
        b"HTTP/1.1 %d %s\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Access-Control-Allow-Origin: *\r\n"
        b"Connection: close\r\n"
        b"Content-Length: %d\r\n"
        b"\r\n" % (status, RESPONSES.get(status, b"Error"), len(body))
    ) + body


class EdgeChannel(HTTPChannel):
    """An HTTPChannel that answers what it refuses (see the module docstring)."""

    # LineReceiver's cap on one line; a longer header line is still 431 (lineLengthExceeded).
    MAX_LENGTH = MAX_REQUEST_LINE_BYTES
    # Twisted's own limits sit above ours, so ours (with their answers) always apply first.
    totalHeadersSize = MAX_REQUEST_LINE_BYTES + MAX_HEADER_BYTES + 1
    maxHeaders = MAX_HEADERS + 1

    def __init__(self) -> None:
        super().__init__()
        self._awaiting_request_line = True
        self._header_bytes = 0
        self._header_lines = 0
        self.refused = False

    def dataReceived(self, data: bytes) -> None:
        if self.refused:
            return
        super().dataReceived(data)
        if self.refused or not self.line_mode or self.transport is None:
            return
        # What is left is an incomplete line: a LF in it has no CR before it, and a header
        # line that already passes the budget need not be read to its end.
        pending = self._buffer
        if _BARE_LF.search(pending):
            self.refuse(400, "line ends in a bare LF; HTTP needs CRLF")
        elif not self._awaiting_request_line and (
            self._header_bytes + len(pending) > MAX_HEADER_BYTES
        ):
            self.refuse(431, f"request headers longer than {MAX_HEADER_BYTES} bytes")

    def lineReceived(self, line: bytes) -> None:
        if self.refused:
            return
        if b"\n" in line:
            self.refuse(400, "line ends in a bare LF; HTTP needs CRLF")
            return
        if self._awaiting_request_line:
            if line:  # Twisted itself tolerates (once) an empty line before a request
                self._awaiting_request_line = False
                self._header_bytes = self._header_lines = 0
        elif line:
            if line[:1] in (b" ", b"\t"):
                self.refuse(400, "obs-fold (a header line starting with a space) is not allowed")
                return
            self._header_bytes += len(line)
            self._header_lines += 1
            if self._header_bytes > MAX_HEADER_BYTES:
                self.refuse(431, f"request headers longer than {MAX_HEADER_BYTES} bytes")
                return
            if self._header_lines > MAX_HEADERS:
                self.refuse(431, f"more than {MAX_HEADERS} request headers")
                return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._awaiting_request_line:
            self.refuse(414, f"request line longer than {MAX_REQUEST_LINE_BYTES} bytes")
        else:
            self.refuse(431, f"request headers longer than {MAX_HEADER_BYTES} bytes")

    def headerReceived(self, line: bytes) -> bool:
        ok: bool = super().headerReceived(line)
        if ok and self.length is not None and self.length > MAX_BODY_BYTES:
            self.refuse(413, f"no endpoint takes a request body over {MAX_BODY_BYTES} bytes")
            return False
        return ok

    def allContentReceived(self) -> None:
        if self.refused:  # a body refused mid-way: the decoder may still reach its end
            return
        self._awaiting_request_line = True  # whatever comes next starts a new request
        super().allContentReceived()

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Twisted's own refusals (bad request line, bad header, bad chunk): with a body."""
        self.refuse(400, "malformed request")

    def refuse(self, status: int, message: str) -> None:
        """Answer `status` with a one-line `message` and close; read nothing more."""
        if self.refused or self.transport is None:
            return
        self.refused = True
        self.transport.write(_answer(status, message))
        self.loseConnection()
        site: Any = getattr(self, "site", None)
        refused = getattr(site, "edge_refused", None)
        if refused is not None:
            refused(status, message, self.transport.getPeer())


def edge_protocol(factory: object) -> _GenericHTTPChannelProtocol:
    """`Site.protocol`: Twisted's TLS/ALPN wrapper around an EdgeChannel.

    Site.buildProtocol calls `self.protocol()`, so this is bound like a method; Twisted's
    own `_genericHTTPChannelProtocolFactory` does the same with a plain HTTPChannel.
    """
    return _GenericHTTPChannelProtocol(EdgeChannel())
