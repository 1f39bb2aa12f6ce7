"""Per-request observation: metrics and one access-log line per request.

The log line names the endpoint, never the path or query: those carry upstream URLs,
tokens and signed child URLs, which are credentials. Stream ids are safe to log.
"""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import Logger
from twisted.web import http
from twisted.web.server import Request, Site

from .channel import MAX_BODY_BYTES, edge_protocol
from .forwarded import Forwarding
from .limits import Busy, HeaderDeadline
from .metrics import Metrics, endpoint_of, status_label

__all__ = ["ObservedRequest", "ObservedSite", "player_kind"]

log = Logger(namespace="hlsproxy.access")

# Most specific first: ExoPlayer-based apps also say "Android", MX Player says "MXPlayer".
_PLAYERS = [
    ("mxplayer", re.compile(r"MXPlayer|MX ?Player", re.I)),
    ("vlc", re.compile(r"\bVLC\b|LibVLC", re.I)),
    ("mpv", re.compile(r"\bmpv\b", re.I)),
    ("ffmpeg", re.compile(r"\bLavf\b|ffmpeg|ffprobe", re.I)),
    ("exoplayer", re.compile(r"ExoPlayer|AndroidXMedia3", re.I)),
    ("kodi", re.compile(r"\bKodi\b", re.I)),
    ("safari", re.compile(r"Version/[\d.]+ (Mobile/\S+ )?Safari/", re.I)),
    ("browser", re.compile(r"Mozilla/", re.I)),
]


def player_kind(user_agent: str) -> str:
    """Which player asked, for logs and metrics only; never to change an answer."""
    for kind, pattern in _PLAYERS:
        if pattern.search(user_agent):
            return kind
    return "other" if user_agent else "none"


class ObservedRequest(Request):
    """A Request that reports its first byte and its end to the site's observer."""

    stream_id = "-"
    _body_allowed_bytes = 0

    def gotLength(self, length: int | None) -> None:
        """Keep the (small) body in memory; Twisted would spool 100 KB and more to a file.

        The channel has already refused an announced length over MAX_BODY_BYTES; a chunked
        body (no length) is allowed no bytes at all.
        """
        self.content = self._body = BytesIO()
        self._body_allowed_bytes = min(length or 0, MAX_BODY_BYTES)

    def handleContentChunk(self, data: bytes) -> None:
        if self._body.tell() + len(data) > self._body_allowed_bytes:
            refuse = getattr(self.channel, "refuse", None)
            if refuse is not None:
                refuse(413, "no endpoint takes a request body")
            return
        self._body.write(data)

    def process(self) -> None:
        site: ObservedSite = self.channel.site  # type: ignore[attr-defined]  # set by Site.buildProtocol
        self._observed_site = site
        self._started_s = site.clock.seconds()
        self._first_byte_s: float | None = None
        deadline = getattr(self.channel, "header_deadline", None)
        if deadline is not None:
            deadline.met()
        site.requests_in_flight += 1
        self.notifyFinish().addBoth(self._ended)
        super().process()

    def write(self, data: bytes) -> None:
        if data and getattr(self, "_first_byte_s", 0) is None:
            self._first_byte_s = self._observed_site.clock.seconds()
        super().write(data)

    def _ended(self, result: Any) -> None:
        site = self._observed_site
        site.requests_in_flight -= 1
        now = site.clock.seconds()
        endpoint = endpoint_of(self.path)
        status = status_label(self.code) if result is None else "aborted"
        metrics = site.metrics
        metrics.requests.labels(endpoint, status).inc()
        metrics.duration.labels(endpoint).observe(now - self._started_s)
        if self._first_byte_s is not None:
            metrics.ttfb.labels(endpoint).observe(self._first_byte_s - self._started_s)
        metrics.sent_bytes.inc(self.sentLength)
        user_agent = self.getHeader(b"user-agent") or ""
        log.info(
            "{method} {endpoint} {status} {bytes}B {duration_ms:.1f}ms stream={stream_id} "
            "player={player} client={client}",
            client=site.forwarding.client_ip(self),
            method=self.method.decode("latin-1", "replace"),
            endpoint=endpoint,
            status=status,
            bytes=self.sentLength,
            duration_ms=(now - self._started_s) * 1000,
            stream_id=self.stream_id,
            player=player_kind(
                user_agent if isinstance(user_agent, str) else user_agent.decode("latin-1")
            ),
        )


class ObservedSite(Site):
    """A Site with metrics, open-connection counting, and our own access log."""

    requestFactory = ObservedRequest
    protocol = edge_protocol  # answers 414/431/400/413 at the edge (channel.py)

    def __init__(
        self,
        resource: Any,
        clock: IReactorTime,
        metrics: Metrics,
        *,
        max_clients: int = 10_000,
        header_timeout_s: float = 15.0,
        idle_timeout_s: float = 60.0,
        forwarding: Forwarding | None = None,
    ) -> None:
        super().__init__(resource, reactor=clock, timeout=idle_timeout_s)
        self.clock = clock
        self.metrics = metrics
        self.max_clients = max_clients
        self.forwarding = forwarding or Forwarding()
        self.header_timeout_s = header_timeout_s
        self.open_connections = 0
        self.requests_in_flight = 0
        self.draining = False  # set on SIGTERM; /health answers 503
        self.displayTracebacks = False

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if self.open_connections >= self.max_clients:
            return Busy()
        protocol = super().buildProtocol(addr)
        if protocol is not None:
            self.open_connections += 1
            # Site wraps the HTTPChannel (_GenericHTTPChannelProtocol); requests see the
            # inner channel, and only it gets a transport.
            channel = getattr(protocol, "_channel", protocol)
            deadline = HeaderDeadline(self.clock, self.header_timeout_s, channel)
            channel.header_deadline = deadline
            lost = protocol.connectionLost

            def counted_lost(reason: Any) -> None:
                self.open_connections -= 1
                deadline.met()
                lost(reason)

            protocol.connectionLost = counted_lost
        return protocol

    def edge_refused(self, status: int, message: str, peer: IAddress) -> None:
        """Count and log a request the channel refused before any endpoint saw it."""
        self.metrics.requests.labels("edge", str(status)).inc()
        log.info(
            "edge {status} {message} client={client}",
            status=status,
            message=message,
            client=getattr(peer, "host", "-"),
        )

    def log(self, request: http.Request) -> None:
        """Replaced by ObservedRequest's line, which carries no URL."""
