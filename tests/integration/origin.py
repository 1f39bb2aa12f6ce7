"""Scripted origin resources for integration tests (served by harness.start_origin)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from .harness import Waits

__all__ = ["Body", "Redirect", "Scripted", "Streaming", "Tree"]

reactor = _reactor


class Body(Resource):
    """A fixed answer; `check` may refuse a request with a status."""

    isLeaf = True

    def __init__(
        self,
        body: bytes,
        content_type: bytes = b"application/vnd.apple.mpegurl",
        status: int = 200,
        headers: dict[bytes, bytes] | None = None,
        check: Callable[[Request], int | None] | None = None,
    ) -> None:
        super().__init__()
        self.body = body
        self.content_type = content_type
        self.status = status
        self.headers = headers or {}
        self.check = check

    def render_GET(self, request: Request) -> bytes:
        refused = self.check(request) if self.check else None
        if refused:
            request.setResponseCode(refused)
            return b"refused\n"
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", self.content_type)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return self.body


class Redirect(Resource):
    isLeaf = True

    def __init__(self, location: bytes, status: int = 302) -> None:
        super().__init__()
        self.location = location
        self.status = status

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(self.status)
        request.setHeader(b"location", self.location)
        return b""


class Tree(Resource):
    """Resources by full path (`/a/b.m3u8`), so tests read like the URLs they serve."""

    def __init__(self, by_path: dict[str, IResource]) -> None:
        super().__init__()
        self.by_path = by_path

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        full = "/" + "/".join(part.decode() for part in [path, *request.postpath])
        request.postpath = []
        resource = self.by_path.get(full)
        if resource is None:
            return Body(b"not found\n", b"text/plain", 404)
        return resource

    def render(self, request: Request) -> bytes:
        return self.getChildWithDefault(b"", request).render(request)  # type: ignore[no-any-return]


@implementer(IPushProducer)
class _CountingWriter:
    """Writes the body in chunks as fast as the consumer takes them, counting."""

    def __init__(self, owner: Streaming, request: Request, until: int) -> None:
        self.owner = owner
        self.request = request
        self.until = until  # then stop writing (the whole body, or where it holds)
        self.paused = False
        self.stopped = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        reactor.callLater(0, self.pump)

    def stopProducing(self) -> None:
        self.stopped = True

    def pump(self) -> None:
        chunk = b"\x47" * 65536
        while not self.paused and not self.stopped and self.owner.sent < self.until:
            size = min(len(chunk), self.until - self.owner.sent)
            self.owner.sent += size
            self.request.write(chunk[:size])
        self.owner.waits.changed()
        if self.owner.sent >= self.owner.total and not self.stopped:
            self.stopped = True
            self.request.unregisterProducer()
            self.request.finish()


class Streaming(Resource):
    """A large body streamed with backpressure. Tests wait on events: `sent_at_least(n)`,
    `disconnected` (the proxy hung up); `hold_after` bytes in, it sends nothing more until
    the test calls `abort()` (an upstream that dies mid-body)."""

    isLeaf = True

    def __init__(self, total: int, hold_after: int | None = None) -> None:
        super().__init__()
        self.total = total
        self.sent = 0
        self.hold_after = hold_after
        self.disconnected_at: float | None = None
        self.waits = Waits()
        self._open: list[Request] = []

    @property
    def disconnected(self) -> Deferred[float]:
        """Fires with the reactor time the proxy hung up (a fresh Deferred per read)."""
        return self.waits.until(lambda: self.disconnected_at)

    def sent_at_least(self, count: int) -> Deferred[int]:
        return self.waits.until(lambda: self.sent if self.sent >= count else None)

    def abort(self) -> None:
        """Drop every open response's connection, as an upstream that dies does."""
        for request in self._open:
            request.channel.transport.abortConnection()  # type: ignore[union-attr]

    def render_GET(self, request: Request) -> int:
        request.setHeader(b"content-type", b"video/mp2t")
        request.setHeader(b"content-length", b"%d" % self.total)
        writer = _CountingWriter(self, request, self.hold_after or self.total)
        self._open.append(request)

        def gone(_: object) -> None:
            writer.stopped = True
            self.disconnected_at = reactor.seconds()
            self.waits.changed()

        def ended(_: object) -> None:
            self._open.remove(request)

        request.notifyFinish().addErrback(gone).addBoth(ended)
        request.registerProducer(writer, True)
        writer.pump()
        return NOT_DONE_YET


class Scripted(Resource):
    """Delegates each request to a function (for one-off behaviours in a test)."""

    isLeaf = True

    def __init__(self, handler: Callable[[Request], bytes | int]) -> None:
        super().__init__()
        self.handler = handler

    def render_GET(self, request: Request) -> bytes | int:
        return self.handler(request)
