"""Answering one proxied request: decides once which kind of answer it gets.

- a playlist (the URL's kind says so, or `/playlist.m3u8`): `playlists.Playlists`;
- media on GET: the segment cache and the fan-out (`fanout.FanOut`);
- media on HEAD: the cached head, or an upstream HEAD; never a body;
- a Range the cache cannot answer: one upstream Range request, relayed.

When the upstream's first bytes contradict the guess (a `.ts` URL that is a playlist,
a variant URL that serves media), the answer that was opened is handed to the other
path as a value (`Diverted`), not fetched again.
"""

from __future__ import annotations

from collections.abc import Coroutine, Hashable
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from ._http import as_bytes
from .bodies import Answer, open_upstream
from .cache import ByteLru
from .channels import LiveChannels, is_live_head
from .config import Config
from .cpu import runner_for
from .disguise import reveal
from .errors import ProxyError
from .fanout import CachedBody, Diverted, FanOut, Opened
from .heal import Healer
from .manifest_answers import JSON_KINDS, ManifestAnswers
from .media import ResponseHead, media_head, write_head
from .playlist import UriKind
from .playlists import Playlists, with_ll_hls
from .ranges import serve_range
from .relay import Relay
from .signing import Signer
from .streams import Stream, StreamRegistry, jar_cookies
from .target import Target

__all__ = ["Dispatcher"]

_PASSED_REQUEST_HEADERS = (b"range", b"if-range")


def _media_key(stream: Stream, target: Target) -> Hashable:
    return target.media_key(jar_cookies(stream, target.url))


class Dispatcher:
    """Fetches upstream for a stream and answers the client request."""

    def __init__(
        self, config: Config, clock: IReactorTime, registry: StreamRegistry, signer: Signer
    ) -> None:
        self._config = config
        self._clock = clock
        self._registry = registry
        segments: ByteLru[Hashable, CachedBody] = ByteLru(
            clock, config.cache_size_bytes, config.cache_object_max_bytes
        )
        self.fanout = FanOut(clock, segments, silence_timeout_s=config.body_idle_timeout_s)
        self.channels = LiveChannels(
            clock,
            ring_bytes=config.live_ring_bytes,
            linger_s=config.live_linger_s,
            silence_timeout_s=config.body_idle_timeout_s,
            on_complete=self._cache_complete,
            young_max_bytes=config.cache_object_max_bytes,
        )
        self.playlists = Playlists(
            config, clock, signer, prefetch=self._prefetch, run_cpu=runner_for(clock)
        )
        self.manifests = ManifestAnswers(config, clock, self.playlists.child_urls)
        self.healer = Healer(clock, self.playlists.fetch, enabled=config.heal)

    async def serve(self, request: Request, target: Target) -> None:
        """Answer `request` for `target`: a rewritten playlist or media.

        A refused child of a live stream is retried once with the fresh URL the healer
        finds (heal.py); the player sees the refusal only when there is none.
        """
        with self._registry.using(target.stream) as stream:
            target = self.healer.current(target)
            try:
                await self._serve(request, stream, target)
            except ProxyError as error:
                if request.startedWriting:
                    raise
                retry = await self.healer.recover(stream, target, error)
                await self._serve(request, stream, retry)

    async def _serve(self, request: Request, stream: Stream, target: Target) -> None:
        if target.wants_playlist:
            await self._serve_playlist(request, stream, target)
        elif target.kind in JSON_KINDS:  # asset list, steering manifest: rewritten JSON
            await self.manifests.serve(request, stream, target)
        elif self.playlists.cached(stream, target):  # a /stream URL already known as a playlist
            await self.playlists.serve(request, stream, target)
        elif request.method == b"HEAD":
            await self._serve_head(request, stream, target)
        elif await self.channels.join(request, _media_key(stream, target)):
            return  # a live channel already runs for this URL (plain or bytes=0-)
        elif request.getHeader(b"range") is not None:
            await self._serve_range(request, stream, target)
        else:
            diverted = await self.fanout.serve(
                request, _media_key(stream, target), lambda: self._open_shared(stream, target)
            )
            if diverted is None or await self._joined_live(request, stream, target, diverted):
                return
            await self._serve_opened(request, stream, target, diverted.answer)

    async def _serve_playlist(self, request: Request, stream: Stream, target: Target) -> None:
        target = attrs.evolve(target, url=with_ll_hls(target.url, request.args or {}))
        diverted = await self.playlists.serve(request, stream, target)
        if diverted is not None:  # media after all (not on /playlist.m3u8, which is strict)
            await self._serve_opened(request, stream, target, diverted.answer)

    async def _serve_head(self, request: Request, stream: Stream, target: Target) -> None:
        """HEAD on media: the head a GET would get, from the cache or an upstream HEAD."""
        ranged = request.getHeader(b"range") is not None
        head = None if ranged else self.fanout.cached_head(_media_key(stream, target))
        if head is None:
            answer = await self._open(stream, target, b"HEAD", request)
            if answer.is_playlist:  # answered like the GET of a playlist, minus the body
                await self.playlists.serve(request, stream, target)
                return
            head = media_head(answer.response, target.url, target.kind, target.authorized)
        write_head(request, head)
        request.finish()

    async def _serve_range(self, request: Request, stream: Stream, target: Target) -> None:
        range_value = as_bytes(request.getHeader(b"range") or b"")
        served = await serve_range(
            self.fanout,
            request,
            _media_key(stream, target),
            range_value,
            lambda: self._open_shared(stream, target),
        )
        if isinstance(served, Diverted):
            if not await self._joined_live(request, stream, target, served):
                await self._serve_opened(request, stream, target, served.answer)
        elif not served:
            await self._serve_opened(request, stream, target, None)

    async def _serve_opened(
        self, request: Request, stream: Stream, target: Target, answer: Answer | None
    ) -> None:
        """Serve one upstream answer to this client alone: a playlist, or media relayed."""
        if answer is None:
            answer = await self._open(stream, target, b"GET", request)
        if answer.is_playlist:
            diverted = await self.playlists.serve(request, stream, target, answer)
            if diverted is None:
                return
            assert diverted.answer is not None  # the answer we gave it, found to be media
            answer = diverted.answer
        head = media_head(answer.response, target.url, target.kind, target.authorized)
        if target.kind is UriKind.MEDIA and request.method != b"HEAD":
            answer, head = await reveal(answer, head, self._clock, self._config.body_idle_timeout_s)
        write_head(request, head)
        if request.method == b"HEAD":
            answer.body.discard()
            request.finish()
            return
        relay = Relay(request, self._clock, self._config.body_idle_timeout_s)
        done = relay.done
        answer.body.hand_over(relay)
        await done

    async def _open(
        self,
        stream: Stream,
        target: Target,
        method: bytes = b"GET",
        request: Request | None = None,
    ) -> Answer:
        """One upstream request for `target` (with `request`'s Range headers, if given)."""
        extra: dict[bytes, bytes] = {}
        for name in _PASSED_REQUEST_HEADERS:
            value = None if request is None else request.getHeader(name)
            if value:
                extra[name] = as_bytes(value)
        return await open_upstream(
            stream,
            target.url,
            method,
            extra,
            self._clock,
            self._config.body_idle_timeout_s,
            target.carry,
        )

    async def _open_media(self, stream: Stream, target: Target) -> Opened | Diverted:
        """One upstream GET for the fan-out: its head decided, its body held."""
        answer = await self._open(stream, target)
        if answer.is_playlist:
            return Diverted(answer)
        head = media_head(answer.response, target.url, target.kind, target.authorized)
        if target.kind is UriKind.MEDIA:
            timeout_s = self._config.body_idle_timeout_s
            answer, head = await reveal(answer, head, self._clock, timeout_s)
        return Opened(head, answer.body)

    # Live channels (issue 14 part 2, channels.py): an endless TS answer to a shared GET
    # becomes a channel; every waiter of that fetch, and every later viewer, joins it.

    async def _open_shared(self, stream: Stream, target: Target) -> Opened | Diverted:
        opened = await self._open_media(stream, target)
        if isinstance(opened, Opened) and is_live_head(opened.head, opened.body.first_bytes):
            key = _media_key(stream, target)

            def reopen() -> Coroutine[Any, Any, Answer]:
                return self._open(stream, target)

            self.channels.adopt(key, opened.head, opened.body, reopen)
            return Diverted(None)  # not the fan-out's: the waiters join the channel
        return opened

    async def _joined_live(
        self, request: Request, stream: Stream, target: Target, diverted: Diverted
    ) -> bool:
        if diverted.answer is not None:  # a playlist after all
            return False
        return await self.channels.join(request, _media_key(stream, target))

    def _cache_complete(
        self, key: Hashable, head: ResponseHead, chunks: tuple[bytes, ...], length: int
    ) -> None:
        """A young channel's body ended whole (a segment sent without a length): cache it."""
        self.fanout.cache.put(key, CachedBody(head, chunks, length), length, head.ttl_s)

    def _prefetch(self, stream: Stream, url: str, carry: str = "") -> None:
        """Warm the segment cache with `url` through the same coalescing path as viewers."""
        target = Target(stream.spec, url, UriKind.MEDIA, carry=carry)
        self.fanout.prefetch(_media_key(stream, target), lambda: self._open_media(stream, target))
