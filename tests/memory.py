"""One in-memory proxy for unit tests: the real site over StringTransports, no sockets.

Clients are StringTransports on the proxy's HTTPChannels; each upstream connection the
proxy dials on the MemoryReactorClock is connected by the test to another
StringTransport and fed raw HTTP bytes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.config import Config
from hls_proxy.playlist import UriKind
from hls_proxy.service import build_site
from hls_proxy.signing import Signer
from hls_proxy.streams import stream_spec

__all__ = ["ENTRY", "SECRET", "MemoryProxy", "body_of", "child", "head_of", "media_head"]

SECRET = b"memory-test"
ENTRY = "http://o.example/i.m3u8"


def child(url: str, kind: UriKind = UriKind.MEDIA, entry: str = ENTRY) -> str:
    """The signed child path this proxy would mint for `url` in the stream of `entry`."""
    signer = Signer(SECRET)
    spec = stream_spec(entry, {})
    return signer.child_path(signer.stream_part(spec), url, kind)


def media_head(length: int, extra: bytes = b"") -> bytes:
    return (
        b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: video/mp2t\r\nETag: "e1"\r\n'
        + extra
        + b"Content-Length: %d\r\n\r\n" % length
    )


def body_of(transport: StringTransport) -> bytes:
    return transport.value().partition(b"\r\n\r\n")[2]


def head_of(transport: StringTransport) -> tuple[bytes, dict[bytes, bytes]]:
    """The status line and the headers (lower-case names) a client received."""
    text = transport.value().partition(b"\r\n\r\n")[0]
    status, *lines = text.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class MemoryProxy:
    """The whole proxy (build_site) on a MemoryReactorClock."""

    def __init__(self, case: SynchronousTestCase, **config: Any) -> None:
        self.reactor = MemoryReactorClock()
        settings: dict[str, Any] = {"secret": SECRET, "allow_private": True}
        settings.update(config)
        self.parts = build_site(Config(**settings), self.reactor)
        self.site = self.parts.site
        self.dispatcher = self.parts.dispatcher
        self.upstreams: list[tuple[StringTransport, Any]] = []
        case.addCleanup(self.parts.registry.close_all)

    def request(self, method: str, path: str, headers: str = "") -> tuple[StringTransport, Any]:
        transport = StringTransport()
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        channel.makeConnection(transport)
        channel.dataReceived(f"{method} {path} HTTP/1.1\r\nHost: p\r\n{headers}\r\n".encode())
        return transport, channel

    def get(self, path: str, headers: str = "") -> tuple[StringTransport, Any]:
        return self.request("GET", path, headers)

    def answer(self, index: int, data: bytes) -> tuple[StringTransport, Any]:
        """Connect upstream connection `index` (in dial order) and send it `data`."""
        while len(self.upstreams) <= index:
            host, port, factory, *_ = self.reactor.tcpClients[len(self.upstreams)]
            protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
            transport = StringTransport()
            protocol.makeConnection(transport)
            self.upstreams.append((transport, protocol))
        transport, protocol = self.upstreams[index]
        protocol.dataReceived(data)
        return transport, protocol
