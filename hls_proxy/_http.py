"""Small helpers for writing HTTP answers with twisted.web; internal to the package.

Each exists because the same three lines were written in several places, and a fix to
one copy (a client that left, a str-or-bytes header) must reach all of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers
from twisted.web.server import Request

from .errors import ProxyError

__all__ = [
    "abort_client",
    "as_bytes",
    "finish_if_connected",
    "header_text",
    "render_error",
    "request_header",
    "settle",
    "write_headers",
]


def as_bytes(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


def request_header(request: Request, name: bytes) -> str:
    """A request header as text ("" when absent); twisted.web may give str or bytes."""
    value = request.getHeader(name)
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def header_text(headers: Headers, name: bytes) -> str:
    """The first value of header `name` as text ("" when absent)."""
    values = headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else ""


def write_headers(
    request: Request, code: int, headers: Iterable[tuple[bytes, Iterable[bytes]]]
) -> None:
    request.setResponseCode(code)
    for name, values in headers:
        request.responseHeaders.setRawHeaders(name, list(values))


def abort_client(request: Request) -> None:
    """Cut the client's connection (a short body must never look complete)."""
    if request.channel is not None:
        if request.producer is not None:
            request.unregisterProducer()
        # typing note: HTTPChannel.transport is Optional in the stubs; connected here.
        request.channel.transport.abortConnection()  # type: ignore[union-attr]


def finish_if_connected(request: Request) -> None:
    """End the answer normally, unless the client has already gone."""
    if request.channel is None:
        return
    if request.producer is not None:
        request.unregisterProducer()
    request.finish()


def render_error(request: Request, status: int, message: str) -> None:
    """Answer with a one-line message, or abort if the body had already begun (a short
    body must never look complete); nothing if the client has gone."""
    if getattr(request, "channel", None) is None or request.finished:
        return  # the client has gone (Twisted drops the attribute on some paths)
    if request.startedWriting:
        abort_client(request)
        return
    if request.producer is not None:
        request.unregisterProducer()
    body = message.encode("utf-8", "replace") + b"\n"
    request.setResponseCode(status)
    request.responseHeaders.removeHeader(b"content-length")
    request.responseHeaders.removeHeader(b"content-range")
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


def settle(done: Deferred[None], error: ProxyError | None) -> None:
    """Fire `done` once: with None, or with the error the client was answered with."""
    if done.called:
        return
    if error is None:
        done.callback(None)
    else:
        done.errback(error)
