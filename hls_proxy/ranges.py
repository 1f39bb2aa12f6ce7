"""Range requests on shared media: from a complete cached object or a running fetch.

ffmpeg, mpv, ffprobe and everything on libavformat send `Range: bytes=0-` on every
request; answering those from the fetch a plain GET makes is what lets N such players cost
one upstream fetch. Other ranges go upstream as ranges (the caller's business).
"""

from __future__ import annotations

from collections.abc import Hashable

import attrs
from twisted.web.server import Request

from ._http import as_bytes
from .fanout import Diverted, FanOut, Opener
from .media import write_head
from .viewers import Body, Viewer

__all__ = ["parse_range", "serve_range"]


async def serve_range(
    fanout: FanOut, request: Request, key: Hashable, range_value: bytes, open_upstream: Opener
) -> bool | Diverted:
    """Answer a Range request from the cache or a shared fetch; False: go upstream.

    libavformat players (ffmpeg, mpv, Jellyfin...) send `Range: bytes=0-` on every
    request: those join the fetch a plain GET would make (or start it), and so does a
    range whose start is already among the bytes a running fetch has received.
    """
    cached = fanout.cache.get(key)
    if cached is None:
        return await _serve_shared(fanout, request, key, range_value, open_upstream)
    if_range = request.getHeader(b"if-range")
    if if_range is not None:
        validator = as_bytes(if_range)
        head = cached.head
        if validator not in (head.header(b"etag"), head.header(b"last-modified")):
            await fanout.serve_cached(request, cached)
            return True
    wanted = parse_range(range_value.decode("latin-1"), cached.length)
    if wanted is None:
        return False
    if wanted is False:
        _unsatisfiable(request, cached.length)
        return True
    assert isinstance(wanted, tuple)
    start, end = wanted
    content_range = b"bytes %d-%d/%d" % (start, end - 1, cached.length)
    head = cached.head
    headers = (*head.headers, (b"content-range", (content_range,)))
    write_head(request, attrs.evolve(head, code=206, headers=headers, length=end - start))
    viewer = Viewer(request, Body.whole(cached.slice(start, end)))
    viewer.start()
    await viewer.done
    return True


async def _serve_shared(
    fanout: FanOut, request: Request, key: Hashable, range_value: bytes, open_upstream: Opener
) -> bool | Diverted:
    wanted = _open_range(range_value.decode("latin-1"))
    if wanted is None or request.getHeader(b"if-range") is not None:
        return False
    start, last = wanted
    fetch = fanout.inflight.get(key)
    if fetch is not None and fetch.joinable and (start == 0 or start < fetch.received):
        fanout.coalesced += 1
    elif start == 0 and last is None:  # "bytes=0-": the whole object, as a GET would
        fetch = fanout.start(key, open_upstream, pinned=False)
    else:
        return False
    head = await fetch.wait_head()
    if isinstance(head, Diverted):
        return head
    if not fetch.joinable or head.code != 200 or (head.length is None and start > 0):
        return False
    if head.length is None:  # a body of unknown length: all of it, as a 200
        write_head(request, head)
        viewer = Viewer(request, fetch)
    elif start >= head.length:
        _unsatisfiable(request, head.length)
        return True
    else:
        end = head.length if last is None else min(head.length, last + 1)
        content_range = b"bytes %d-%d/%d" % (start, end - 1, head.length)
        headers = (*head.headers, (b"content-range", (content_range,)))
        write_head(request, attrs.evolve(head, code=206, headers=headers, length=end - start))
        viewer = Viewer(request, fetch, start, end)
    fetch.attach(viewer)
    await viewer.done
    return True


def parse_range(value: str, length: int) -> tuple[int, int] | bool | None:
    """A single `bytes=` range as [start, end); None if not one we serve; False if unsatisfiable."""
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    try:
        if not dash:
            return None
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return False
            return (max(0, length - suffix), length)
        start = int(first)
        end = length if last == "" else min(length, int(last) + 1)
    except ValueError:
        return None
    if start >= length or end <= start:
        return False
    return (start, end)


def _unsatisfiable(request: Request, length: int) -> None:
    request.setResponseCode(416)
    request.setHeader(b"content-range", b"bytes */%d" % length)
    request.setHeader(b"content-length", b"0")
    request.finish()


def _open_range(value: str) -> tuple[int, int | None] | None:
    """A single `bytes=first-[last]` range as (first, last or None); None for others."""
    unit, _, spec = value.strip().partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or "," in spec or not dash or not first.isdigit():
        return None
    if last and not last.isdigit():
        return None
    start, end = int(first), (int(last) if last else None)
    return None if end is not None and end < start else (start, end)
