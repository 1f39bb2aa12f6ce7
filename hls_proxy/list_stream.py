"""A channel list written to the client as its upstream sends it, line by line.

`ListBody` is given to `IResponse.deliverBody`. It decodes gzip/deflate incrementally,
splits lines, feeds them to a `ListRewriter` and writes what comes out. It is the
client request's push producer: a full client socket pauses it, and it pauses the
upstream socket, so memory stays bounded by one chunk whatever the list's size (and a
small gzip chunk that inflates a lot is decoded a piece at a time, never all at once).

Nothing is answered until the first bytes say it is a channel list: `#EXTM3U` (after
an optional BOM and blanks), or `#EXTINF` for lists that lack the header line (then a
`#EXTM3U` line is added, since some apps refuse a list without one). Anything else
(an HTML login page, garbage) is a 502 with a one-line message.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from ._http import abort_client, finish_if_connected, settle
from .bodies import DONE, SilenceTimer, ended_cleanly, upstream_of
from .channel_list import ListRewriter, looks_like_list
from .errors import ProxyError, bad_gateway, gateway_timeout

__all__ = ["ListBody", "decoder_for"]

_PIECE_BYTES = 256 * 1024  # decoded bytes handled per step of a compressed body
_MAX_LINE_BYTES = 1024 * 1024  # a longer "line" is passed on in pieces
_MAX_LEADING_BLANKS = 64 * 1024
_HEADER_LINE = b"#EXTM3U\n"


def decoder_for(encoding: str) -> zlib._Decompress | None:
    """An incremental decoder for the upstream Content-Encoding (None: identity)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise bad_gateway(f"unsupported upstream Content-Encoding {encoding}")
    return zlib.decompressobj(47 if encoding != "deflate" else 15)  # 47: gzip or zlib


@implementer(IPushProducer)
class ListBody(Protocol):
    """Streams one rewritten list to `request`; `done` fires when the answer ends.

    `start(header_added)` is called once the first bytes are known to be a list; it
    writes the answer's head. Until then an error is still a clean 502.
    """

    def __init__(
        self,
        request: Request,
        rewriter: ListRewriter,
        clock: IReactorTime,
        idle_timeout_s: float,
        encoding: str,
        start: Callable[[bool], None],
    ) -> None:
        self._request = request
        self._rewriter = rewriter
        self._clock = clock
        self._idle_timeout_s = idle_timeout_s
        self._decoder = decoder_for(encoding)
        self._start = start
        self._timer: SilenceTimer | None = None
        self._compressed = b""  # input not yet decoded while the client is paused
        self._head = b""  # decoded bytes before the decision
        self._partial = b""  # the last line, until its end arrives
        self._started = False
        self._paused = False
        self._ended = False
        self._upstream_end: Failure | None = None
        self.done: Deferred[None] = Deferred(canceller=lambda _: self._stop(None))

    # Protocol: the upstream body
    def connectionMade(self) -> None:
        self._timer = SilenceTimer(self._clock, self._idle_timeout_s, self._silent)

    def dataReceived(self, data: bytes) -> None:
        if self._ended:
            return
        if self._timer is not None:
            self._timer.reset()
        if self._decoder is None:
            self._decoded(data)
        else:
            self._compressed += data
            self._decode()

    def connectionLost(self, reason: Failure = DONE) -> None:
        self._upstream_end = reason
        if self._timer is not None:
            self._timer.cancel()
        if not self._compressed:
            self._end_of_body()

    # IPushProducer: the client
    def pauseProducing(self) -> None:
        self._paused = True
        if self._timer is not None:
            self._timer.cancel()  # a slow client is not a silent upstream
        if self._upstream_end is None:
            upstream_of(self).pauseProducing()

    def resumeProducing(self) -> None:
        if self._ended:
            return
        self._paused = False
        self._decode()
        if self._paused or self._ended:
            return
        if self._upstream_end is not None:
            self._end_of_body()
            return
        self._timer = SilenceTimer(self._clock, self._idle_timeout_s, self._silent)
        upstream_of(self).resumeProducing()

    def stopProducing(self) -> None:
        self._stop(None)

    # Decoding, deciding, rewriting
    def _decode(self) -> None:
        """Decode held compressed input, a piece at a time, until done or paused."""
        decoder = self._decoder
        while decoder is not None and self._compressed and not self._paused and not self._ended:
            try:
                piece = decoder.decompress(self._compressed, _PIECE_BYTES)
            except zlib.error:
                self._fail(bad_gateway("upstream list is not valid gzip/deflate"))
                return
            self._compressed = decoder.unconsumed_tail
            if decoder.eof:  # concatenated gzip members: start another
                rest, self._decoder = decoder.unused_data, zlib.decompressobj(47)
                self._compressed = rest + self._compressed
                decoder = self._decoder if rest else None
            self._decoded(piece)

    def _decoded(self, data: bytes) -> None:
        if not self._started:
            self._head += data
            kind = looks_like_list(self._head)
            if kind is None:
                if _clearly_not_a_list(self._head):
                    self._fail(bad_gateway("upstream did not return a channel list (#EXTM3U)"))
                return
            self._started = True
            data, self._head = self._head, b""
            self._request.registerProducer(self, True)
            self._start(kind == "extinf")
            if self._request.method == b"HEAD":
                self._stop(None)
                finish_if_connected(self._request)
                return
            if kind == "extinf":
                self._request.write(_HEADER_LINE)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        out = [self._rewriter.feed(line + b"\n") for line in lines]
        if len(self._partial) > _MAX_LINE_BYTES:
            out.append(self._rewriter.feed(self._partial))
            self._partial = b""
        written = b"".join(out)
        if written:
            self._request.write(written)

    def _end_of_body(self) -> None:
        reason = self._upstream_end
        if self._ended or reason is None:
            return
        if not ended_cleanly(reason):
            self._fail(bad_gateway("upstream failed mid-list"))
            return
        if not self._started:
            self._fail(bad_gateway("upstream did not return a channel list (#EXTM3U)"))
            return
        tail = self._rewriter.feed(self._partial) if self._partial else b""
        tail += self._rewriter.finish()
        self._ended = True
        if tail and self._request.channel is not None:
            self._request.write(tail)
        finish_if_connected(self._request)
        settle(self.done, None)

    def _silent(self) -> None:
        self._fail(gateway_timeout("upstream list stalled"))

    def _fail(self, error: ProxyError) -> None:
        if self._started:
            abort_client(self._request)
        self._stop(error)

    def _stop(self, error: ProxyError | None) -> None:
        """End at once: the client left, the answer failed, or it was HEAD."""
        if self._ended:
            return
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
        if self._upstream_end is None and self.transport is not None:
            upstream_of(self).stopProducing()
        if not self._started and self._request.producer is self:
            self._request.unregisterProducer()
        settle(self.done, error)


def _clearly_not_a_list(head: bytes) -> bool:
    """The first non-blank bytes already rule a list out (`<html`, `{`, binary), or
    there have been too many blanks to wait for more."""
    rest = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not rest:
        return len(head) > _MAX_LEADING_BLANKS
    start = rest[:7]
    return not (b"#EXTM3U".startswith(start) or b"#EXTINF".startswith(start))
