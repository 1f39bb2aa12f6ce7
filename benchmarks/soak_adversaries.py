"""The soak's origins and raw clients (soak.py): what misbehaves, and how it is counted.

- `Origin`: the normal stream, the classic faults, and the adversaries of issues 11 and
  12 (a cookie-locked key, redirects to the proxy itself and to gopher://, amplification
  playlists, cookie floods).
- `StaleOrigin`: a normal stream served with a ~50 ms keep-alive (Site timeout), so the
  proxy's pooled connections are often closed by the time it reuses them.
- `Counting`: a listener that only counts connections (the gopher:// target: must be 0).
- `raw_probe`: one raw request (over-long line, too many headers, a 1 GiB body) and the
  status line it got, or how the connection ended.
"""

from __future__ import annotations

import collections
import gzip
import os
import secrets
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

reactor: Any = _reactor
SEGMENT = b"\x47" * (1024 * 1024)
SMALL_SEGMENT = b"\x47" * (64 * 1024)
KEY = b"K3Y-only-4-cookie"[:16]
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg.ts\n#EXT-X-ENDLIST\n"
LOCKED = (
    b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n"
    b'#EXT-X-KEY:METHOD=AES-128,URI="key.bin"\n#EXTINF:4,\nseg.ts\n#EXT-X-ENDLIST\n'
)
COOKIES_PER_RELOAD = 3000
KEEP_ALIVE_S = 0.05
# A few KB gzip'd: millions of one-char URIs (the byte cap refuses it), and a body just
# under the 1 MB --max-playlist-bytes the soak runs with (the URI cap refuses it).
AMPLIFIERS = {
    "/amp-millions.m3u8": gzip.compress(b"#EXTM3U\n" + b"a\n" * 3_900_000),
    "/amp-uris.m3u8": gzip.compress(b"#EXTM3U\n" + b"a\n" * 500_000),
}

FAULTS = ["/404.m3u8", "/500.m3u8", "/503.m3u8", "/garbage.m3u8", "/loop.m3u8", "/hang.m3u8",
          "/stall.ts", "/reset.ts", "/endless.m3u8"]  # fmt: skip


def _endless(request: Request) -> int:
    request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
    request.write(b"#EXTM3U\n")
    alive = {"yes": True}
    request.notifyFinish().addBoth(lambda _: alive.update(yes=False))

    def more() -> None:
        if alive["yes"]:
            request.write(b"#X:" + b"x" * 65536 + b"\n")
            reactor.callLater(0.001, more)

    more()
    return NOT_DONE_YET


class Origin(Resource):
    isLeaf = True

    def __init__(self, proxy_base: str, gopher_port: int) -> None:
        super().__init__()
        self.proxy_base = proxy_base
        self.gopher = f"gopher://127.0.0.1:{gopher_port}/1x".encode()
        self.sessions: set[bytes] = set()
        self.reloads = 0

    def render_GET(self, request: Request) -> bytes | int:
        path = request.path.decode()
        if path == "/ok.m3u8":
            request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
            return PLAYLIST
        if path in ("/seg.ts", "/locked/seg.ts"):
            request.setHeader(b"content-type", b"video/mp2t")
            return SEGMENT if path == "/seg.ts" else SMALL_SEGMENT
        if path == "/locked/index.m3u8":  # the key needs the cookie this sets
            session = secrets.token_hex(16).encode()
            self.sessions.add(session)
            request.addCookie(b"sess", session, path=b"/locked/")
            request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
            return LOCKED
        if path == "/locked/key.bin":
            if (request.getCookie(b"sess") or b"") not in self.sessions:
                request.setResponseCode(403)
                return b"no session\n"
            request.setHeader(b"content-type", b"application/octet-stream")
            return KEY
        if path in ("/404.m3u8", "/500.m3u8", "/503.m3u8"):
            request.setResponseCode(int(path[1:4]))
            return b"no\n"
        if path == "/garbage.m3u8":
            return os.urandom(4096)
        if path in ("/loop.m3u8", "/to-proxy.m3u8", "/gopher.m3u8", "/gopher.ts"):
            request.setResponseCode(302)
            request.setHeader(b"location", self._redirect(request, path))
            return b""
        if path == "/hang.m3u8":
            return NOT_DONE_YET
        if path in ("/stall.ts", "/reset.ts"):
            request.setHeader(b"content-type", b"video/mp2t")
            request.setHeader(b"content-length", b"%d" % len(SEGMENT))
            request.write(SEGMENT[:100_000])
            if path == "/reset.ts":
                reactor.callLater(0.05, request.channel.transport.abortConnection)
            return NOT_DONE_YET
        if path == "/endless.m3u8":
            return _endless(request)
        if path in AMPLIFIERS:
            request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
            request.setHeader(b"content-encoding", b"gzip")
            return AMPLIFIERS[path]
        if path == "/cookies.m3u8":  # thousands of new cookies on every reload
            self.reloads += 1
            for number in range(COOKIES_PER_RELOAD):
                cookie = b"c%d_%d=%s; Path=/" % (
                    self.reloads,
                    number,
                    secrets.token_hex(8).encode(),
                )
                request.responseHeaders.addRawHeader(b"set-cookie", cookie)
            request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
            return b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nseg.ts\n"
        request.setResponseCode(404)
        return b"not found\n"

    def _redirect(self, request: Request, path: str) -> bytes:
        if path == "/loop.m3u8":
            return b"/loop.m3u8"
        if path == "/to-proxy.m3u8":  # back through the proxy, to this very URL
            me = f"http://127.0.0.1:{request.getHost().port}{path}"
            return f"{self.proxy_base}/playlist.m3u8?url={quote(me, safe='')}".encode()
        return self.gopher


class StaleResource(Resource):
    """A live-like stream nothing may cache: every reload lists a new segment."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.reloads = 0

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/live.m3u8":
            self.reloads += 1
            request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
            request.setHeader(b"cache-control", b"no-store")
            return b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nseg.ts?n=%d\n" % self.reloads
        request.setHeader(b"content-type", b"video/mp2t")
        return SMALL_SEGMENT


class _KeepAlive50ms(HTTPChannel):
    """Closes a connection idle 50 ms after an answer, like nginx's keepalive_timeout.

    A new connection gets 10 s for its first request (nginx: client_header_timeout):
    on a loaded machine a fresh connection may see its request late, and closing it
    then is not the stale keep-alive race this origin is for.
    """

    counts: collections.Counter[str]

    def connectionMade(self) -> None:
        self.counts["connections"] += 1
        self.timeOut = 10
        super().connectionMade()

    def requestDone(self, request: Request) -> None:
        self.counts["requests"] += 1
        super().requestDone(request)
        self.setTimeout(KEEP_ALIVE_S)  # cancelled by connectionLost if it closes now

    def timeoutConnection(self) -> None:
        self.counts["closed idle"] += 1
        super().timeoutConnection()


def stale_origin() -> tuple[Site, collections.Counter[str]]:
    """A Site whose connections are closed after ~50 ms idle between requests, and its
    counts of connections, requests answered and connections closed idle."""
    counts: collections.Counter[str] = collections.Counter()

    def channel() -> _GenericHTTPChannelProtocol:
        made = _KeepAlive50ms()
        made.counts = counts
        return _GenericHTTPChannelProtocol(made)

    site = Site(StaleResource())
    site.protocol = channel  # type: ignore[assignment]
    return site, counts


class _Counted(Protocol):
    def __init__(self, counter: Counting) -> None:
        self.counter = counter

    def connectionMade(self) -> None:
        self.counter.connections += 1
        self.transport.loseConnection()  # type: ignore[union-attr]


class Counting(Factory):
    """Counts the connections made to it, and closes them."""

    def __init__(self) -> None:
        self.connections = 0

    def buildProtocol(self, addr: object) -> Protocol:
        return _Counted(self)


class _Probe(Protocol):
    def __init__(self, payload: bytes, done: Deferred[str]) -> None:
        self.payload = payload
        self.done = done
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(self.payload)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"\r\n" in self.received and not self.done.called:
            line = self.received.split(b"\r\n", 1)[0].split()
            self.done.callback(line[1].decode() if len(line) > 1 else "garbled")
            self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.done.called:
            self.done.callback("closed without an answer")


async def raw_probe(port: int, payload: bytes, timeout_s: float = 5.0) -> str:
    """Send `payload` raw to 127.0.0.1:`port`: the status it got, or how it ended."""
    done: Deferred[str] = Deferred()
    protocol = _Probe(payload, done)
    try:
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)
    except Exception as error:
        return type(error).__name__
    timer = reactor.callLater(timeout_s, lambda: done.called or done.callback("timeout"))
    outcome = await done
    if timer.active():
        timer.cancel()
    if protocol.transport is not None:
        protocol.transport.abortConnection()  # type: ignore[attr-defined]
    return outcome


def raw_requests() -> dict[str, bytes]:
    """The raw adversaries: a 1 GiB body announced on /health (and its first MB sent),
    a 100 KB request line, 200 header lines."""
    body = (
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n"
        + b"b" * 1024 * 1024
    )
    long_line = b"GET /health?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    headers = b"".join(b"X-%d: y\r\n" % number for number in range(200))
    many = b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    return {"1 GiB body on /health": body, "100 KB request line": long_line,
            "200 headers": many}  # fmt: skip
