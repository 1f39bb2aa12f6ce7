"""Playlist answers: micro-cache, coalesced fetch, rewrite, TTL, ETag/304, prefetch.

A playlist is fetched once for every viewer asking within its TTL (½ target duration
when live), rewritten so every URI goes through the proxy, and answered by one writer
for GET and HEAD alike: same status, type, length, ETag and Cache-Control.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable, Mapping
from urllib.parse import parse_qsl, urlsplit

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from ._http import as_bytes, header_text
from .bodies import Answer, CappedBody, decode_content, open_upstream
from .bypass import carries_tokens, stream_carry_mode
from .cache import ByteLru, Coalescer
from .config import MAX_REQUEST_LINE_BYTES, Config
from .cpu import RunCpu, run_inline
from .errors import bad_gateway
from .fanout import Diverted
from .media import PLAYLIST_TYPE, cache_directives, max_age_s
from .playlist import (
    PlaylistInfo,
    UriKind,
    looks_like_playlist,
    playlist_info,
    playlist_shape,
    rewrite_playlist,
)
from .renditions import rendition_ids, sequence_numbers
from .signing import ChildTarget, Minter, Signer, segment_extension
from .streams import Stream, jar_cookies
from .target import Target
from .tokens import Carrier, CarryMode, carry_for, carry_tokens, children_tokens
from .urls import quote_unsafe, quote_unsafe_many
from .variables import carry_definitions, resolve_variables, split_carried

__all__ = [
    "LL_HLS_PARAMS",
    "PlaylistEntry",
    "Playlists",
    "child_upstream_url",
    "etag_for",
    "etag_matches",
    "playlist_ttl_s",
    "with_ll_hls",
]

# The `_HLS_` query parameters a player adds, by the specs that define them, each with
# the values those specs allow; forwarded to the upstream, in this order. Any other
# parameter on a proxy URL stays with the proxy. rfc8216bis 6.2.5.1 (LL-HLS delivery
# directives), 7.2 (content steering: pathway, throughput in bit/s); Apple's HLS
# interstitials (primary playback session id, start offset in seconds).
_DECIMAL = r"[0-9]{1,15}(?:\.[0-9]{1,9})?"
LL_HLS_PARAMS = (
    "_HLS_msn", "_HLS_part", "_HLS_skip", "_HLS_pathway", "_HLS_throughput",
    "_HLS_primary_id", "_HLS_start_offset",
)  # fmt: skip
_HLS_PARAM_VALUES = {
    "_HLS_msn": re.compile(r"[0-9]{1,12}"),
    "_HLS_part": re.compile(r"[0-9]{1,12}"),
    "_HLS_skip": re.compile(r"YES|v2"),
    "_HLS_pathway": re.compile(r"[A-Za-z0-9._-]{1,64}"),  # PATHWAY-ID's character set
    "_HLS_throughput": re.compile(_DECIMAL),
    "_HLS_primary_id": re.compile(r"[A-Za-z0-9._~-]{1,128}"),  # a UUID in hls.js
    "_HLS_start_offset": re.compile(_DECIMAL),
}
# A child path must fit the request line the proxy itself accepts ("GET <path> HTTP/1.1",
# with room for LL-HLS query directives a player adds).
_MAX_CHILD_PATH_CHARS = MAX_REQUEST_LINE_BYTES - 256
# Playlists up to this size are rewritten on the reactor thread (a few milliseconds).
_INLINE_REWRITE_BYTES = 64 * 1024


@attrs.frozen
class PlaylistEntry:
    """A rewritten playlist as served, with what its answer headers need."""

    body: bytes
    etag: bytes
    max_age_s: float
    # A big VOD asked for at its entry URL is answered with a redirect to its own sealed
    # URL, where its segments are written relative to it (once, not the stream per URI).
    location: bytes | None = None


def with_ll_hls(url: str, args: dict[bytes, list[bytes]]) -> str:
    """`url` with the request's valid `_HLS_*` parameters added (unless already there)."""
    query = urlsplit(url).query
    present = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    extra: list[str] = []
    for name in LL_HLS_PARAMS:
        values = args.get(name.encode("ascii"))
        if name in present or not values:
            continue
        value = values[0].decode("latin-1")
        if _HLS_PARAM_VALUES[name].fullmatch(value):
            extra.append(f"{name}={value}")
    if not extra:
        return url
    base, _, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    return base + separator + "&".join(extra) + (f"#{fragment}" if fragment else "")


def playlist_ttl_s(info: PlaylistInfo, cache_control: str, default_ttl_s: float) -> float:
    """How long a playlist may be reused: ½ target duration if live, else the default;
    never longer than the upstream's max-age, and 0 if the upstream forbids storing it."""
    directives = cache_directives(cache_control)
    if {"no-store", "no-cache", "private"} & directives.keys():
        return 0.0
    if info.is_live:
        target = info.part_target_s if info.part_target_s else info.target_duration_s
        ttl = (target or 0.0) / 2
    else:
        ttl = default_ttl_s
    upstream_s = max_age_s(directives)
    return ttl if upstream_s is None else min(ttl, upstream_s)


def etag_for(body: bytes) -> bytes:
    return b'"' + hashlib.sha256(body).hexdigest()[:24].encode("ascii") + b'"'


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """`If-None-Match` matches `etag` (weak comparison, `*` matches anything)."""
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip().removeprefix(b"W/")
        if candidate == b"*" or candidate == etag:
            return True
    return False


def child_upstream_url(tokens_from: str | None, url: str) -> str:
    """What the proxy fetches for a playlist's URI `url` (absolute): the playlist's tokens
    carried (`tokens_from`, when they should be), what a request line cannot hold escaped."""
    if tokens_from is not None:
        url = carry_tokens(tokens_from, url)
    return quote_unsafe(url)


Fetched = PlaylistEntry | Diverted


@attrs.frozen
class _Fetched:
    """An upstream playlist as fetched: what its rewrite and its TTL need."""

    url: str  # as asked for (without carried definitions)
    imported: Mapping[str, str] | None  # the definitions it was given (variables.py)
    body: bytes
    final_url: str  # after redirects: what its URIs resolve against
    cache_control: str  # the upstream's Cache-Control


@attrs.frozen
class HealPlan:
    """What a rewrite's children carry for self-healing (heal.py); empty when off."""

    entry_url: str | None
    renditions: Mapping[str, str]
    sequences: Mapping[str, int]
    info: PlaylistInfo | None


def _key(stream: Stream, target: Target) -> Hashable:
    return target.playlist_key(jar_cookies(stream, target.url))


def _for_later(result: Fetched) -> Fetched:
    # An unread media body can be relayed to one waiter only; the others fetch anew.
    return Diverted(None) if isinstance(result, Diverted) else result


class Playlists:
    """Answers playlist requests from the micro-cache or one coalesced upstream fetch."""

    def __init__(
        self,
        config: Config,
        clock: IReactorTime,
        signer: Signer,
        prefetch: Callable[[Stream, str, str], None],
        run_cpu: RunCpu = run_inline,
    ) -> None:
        self._run_cpu = run_cpu
        self._config = config
        self._clock = clock
        self._signer = signer
        self._prefetch = prefetch
        # Any rewritten playlist that fits the budget may be kept (a 50,000-segment VOD too).
        self.cache: ByteLru[Hashable, PlaylistEntry] = ByteLru(
            clock, config.playlist_cache_bytes, config.playlist_cache_bytes
        )
        self._fetches: Coalescer[Hashable, Fetched] = Coalescer(for_later=_for_later)

    def cached(self, stream: Stream, target: Target) -> bool:
        return self.cache.get(_key(stream, target), count=False) is not None

    async def serve(
        self, request: Request, stream: Stream, target: Target, answer: Answer | None = None
    ) -> Diverted | None:
        """Answer with the rewritten playlist; a `Diverted` if the upstream sent media.

        `answer` is an upstream response already opened (by the media path) and found
        to be a playlist: it is used instead of a new fetch.
        """
        key = _key(stream, target)
        result: Fetched | None = self.cache.get(key)
        if result is None and answer is not None:
            result = await self._fetch(stream, target, answer)
        elif result is None:
            result = await self._fetches.run(key, lambda: self._fetch(stream, target, None))
        if isinstance(result, Diverted):
            return result
        _write(request, result)
        return None

    async def _fetch(self, stream: Stream, target: Target, answer: Answer | None) -> Fetched:
        # The multivariant playlist's EXT-X-DEFINEs ride in the fragment (variables.py);
        # it never goes upstream.
        url, imported = split_carried(target.url)
        if answer is None:
            gzip = {b"accept-encoding": b"gzip"}
            answer = await open_upstream(
                stream,
                url,
                b"GET",
                gzip,
                self._clock,
                self._config.body_idle_timeout_s,
                target.carry,
            )
        if not target.strict and not answer.is_playlist:
            return Diverted(answer)
        body = await self._collect(answer)
        final_url = answer.response.request.absoluteURI.decode("ascii")  # after redirects
        upstream_control = header_text(answer.response.headers, b"cache-control")
        fetched = _Fetched(url, imported, body, final_url, upstream_control)
        max_uris = self._config.max_playlist_uris
        uri_lines = _uri_lines_estimate(body)
        if uri_lines > max_uris + max_uris // 8:  # not worth a rewrite
            raise bad_gateway(f"playlist has more than {max_uris} URIs (--max-playlist-uris)")
        if target.child is None and uri_lines >= self._config.redirect_playlist_uris:
            if b"#EXT-X-ENDLIST" in body:  # a VOD: asked for once, not reloaded
                return self._redirect_home(stream, target, fetched)
        return await self._rewrite(stream, target, fetched)

    def _redirect_home(self, stream: Stream, target: Target, fetched: _Fetched) -> Fetched:
        """The answer to a big VOD's entry request: a redirect to its own sealed URL, where
        its segments are written relative to it. Given at once: the rewrite goes on, and
        the player's request for that URL joins it (or finds it cached)."""
        home, location = self._sealed_home(stream, target, fetched.url)
        rewriting = self._fetches.run(
            _key(stream, home), lambda: self._rewrite(stream, home, fetched)
        )
        rewriting.addErrback(lambda _: None)  # the player's own request gets the error
        info = playlist_info(fetched.body, fetched.final_url, live_segments_only=True)
        ttl_s = playlist_ttl_s(info, fetched.cache_control, self._config.playlist_cache_ttl_s)
        entry = PlaylistEntry(b"", etag_for(location), ttl_s, location)
        if ttl_s > 0:
            self.cache.put(_key(stream, target), entry, len(location), ttl_s)
        return entry

    async def _rewrite(self, stream: Stream, target: Target, fetched: _Fetched) -> PlaylistEntry:
        """The fetched playlist rewritten, cached for its TTL, its next segments prefetched."""

        def rewrite() -> tuple[bytes, PlaylistInfo]:
            return self.rewritten(
                stream, target, fetched.url, fetched.body, fetched.final_url, fetched.imported
            )

        # Off the reactor thread only when it takes long: a thread (and the GIL handed
        # back and forth) costs more than rewriting a typical live playlist inline.
        run = self._run_cpu if len(fetched.body) > _INLINE_REWRITE_BYTES else run_inline
        rewritten, info = await run(rewrite)
        ttl_s = playlist_ttl_s(info, fetched.cache_control, self._config.playlist_cache_ttl_s)
        entry = PlaylistEntry(rewritten, etag_for(rewritten), ttl_s)
        if ttl_s > 0:
            self.cache.put(_key(stream, target), entry, len(rewritten), ttl_s)
        if self._config.prefetch and info.is_live:
            tokens = _children_carry(stream, target)
            for segment_url in info.segment_urls[-self._config.prefetch :]:
                self._prefetch(stream, segment_url, carry_for(tokens, target.url, segment_url))
        return entry

    def rewritten(
        self,
        stream: Stream,
        target: Target,
        url: str,
        body: bytes,
        final_url: str,
        imported: Mapping[str, str] | None,
    ) -> tuple[bytes, PlaylistInfo]:
        """Playlist `body` of `target` (fetched from `url`, ending at `final_url`) as served,
        and its facts. Pure CPU: may run off the reactor thread (`run_cpu`)."""
        resolved = resolve_variables(body, final_url, imported, self._config.max_playlist_bytes)
        body = resolved.body
        plan = self._heal_plan(stream, target, url, body, final_url)
        proxy_url = self.child_urls(
            stream,
            url,
            resolved.carried,
            final_url,
            target.child,
            plan,
            tokens=_children_carry(stream, target),
            segment_ext=segment_extension(body),
        )
        rewritten = rewrite_playlist(body, final_url, proxy_url, proxy_url.media)
        return rewritten, plan.info or playlist_info(body, final_url, live_segments_only=True)

    async def fetch(self, stream: Stream, url: str) -> tuple[str, bytes]:
        """One upstream playlist as it is (heal.py): its final URL and decoded body."""
        url, _ = split_carried(url)  # carried definitions never go upstream
        gzip = {b"accept-encoding": b"gzip"}
        answer = await open_upstream(
            stream, url, b"GET", gzip, self._clock, self._config.body_idle_timeout_s
        )
        body = await self._collect(answer)
        return answer.response.request.absoluteURI.decode("ascii"), body

    async def _collect(self, answer: Answer) -> bytes:
        """The whole playlist body, decoded, within the size cap."""
        max_bytes = self._config.max_playlist_bytes
        collector = CappedBody(self._clock, max_bytes, self._config.body_idle_timeout_s)
        answer.body.hand_over(collector)
        body = await collector.done
        encoding = header_text(answer.response.headers, b"content-encoding")
        body = decode_content(body, encoding, max_bytes)
        if not looks_like_playlist(body[:64]):
            raise bad_gateway("upstream did not return an HLS playlist (#EXTM3U missing)")
        return body

    def _sealed_home(self, stream: Stream, target: Target, url: str) -> tuple[Target, bytes]:
        """The target of the playlist's own sealed URL, and that URL (for the redirect)."""
        path = self._signer.path(stream.spec, url, UriKind.PLAYLIST)
        child = self._signer.verify(path.removeprefix("/p/").split("/"))
        home = attrs.evolve(target, kind=UriKind.PLAYLIST, strict=False, child=child)
        return home, path.encode("ascii")

    def _heal_plan(
        self, stream: Stream, target: Target, url: str, body: bytes, final_url: str
    ) -> HealPlan:
        """What children must carry for self-healing (heal.py): an entry master's variants
        their entry URL and rendition, a healable live playlist's segments their sequence
        number. Decided by a byte search first: parsing comes after the bounds for others."""
        heal = self._config.heal and stream.spec.option("heal", "1") != "0"
        entry_url = without_ll_hls(url) if heal and target.child is None else None
        lineage = target.child is not None and target.child.lineage is not None
        is_master, ended = playlist_shape(body) if heal else (False, True)
        is_live = not is_master and not ended
        renditions = rendition_ids(body, final_url) if entry_url and is_master else {}
        numbered = is_live and (entry_url is not None or lineage)
        numbered = numbered and body.count(b"\n") <= 2 * self._config.max_playlist_uris + 64
        info = playlist_info(body, final_url) if numbered else None
        sequences = sequence_numbers(body, info) if info is not None else {}
        return HealPlan(entry_url, renditions, sequences, info)

    def child_urls(
        self,
        stream: Stream,
        url: str,
        carried: Mapping[str, str] | None = None,
        final_url: str | None = None,
        parent: ChildTarget | None = None,
        plan: HealPlan | None = None,
        tokens: str = "",
        segment_ext: str = "",
    ) -> _ChildUrls:
        """How the children of the document at `url` (fetched from `final_url`) are proxied:
        sealed child references, relative to `parent`'s proxy URL when there is one, with
        the stream's tokens, for child playlists the `carried` definitions, and what
        self-healing needs (`plan`).

        Bounded: a 502 rather than an answer beyond the output bounds. May run off the
        reactor thread (`run_cpu`): it only reads its arguments.
        """
        minter = self._signer.minter(
            stream.spec,
            without_ll_hls(final_url or url),  # an entry's children keep their URLs on reload
            parent,
            plan.entry_url if plan else None,
            anchor_carry=tokens,
            segment_extension=segment_ext,
        )
        return _ChildUrls(
            minter,
            url if carries_tokens(stream.spec, url) else None,
            Carrier(tokens, url) if tokens else None,
            carried,
            plan or HealPlan(None, {}, {}, None),
            self._config,
        )


class _ChildUrls:
    """The children of one playlist as proxied (a `ProxyUrl`; `media` does many at once),
    within the rewrite's bounds: URIs, output bytes, one child path's length."""

    def __init__(
        self,
        minter: Minter,
        tokens_from: str | None,
        carry: Carrier | None,
        carried: Mapping[str, str] | None,
        plan: HealPlan,
        config: Config,
    ) -> None:
        self._minter = minter
        self._tokens_from = tokens_from  # carried into every child's URL (inherit_query=1)
        self._carry = carry  # a child's candidate tokens (inherit_query auto)
        self._carried = carried
        self._plan = plan
        self._max_uris = config.max_playlist_uris
        self._max_output = config.max_rewritten_bytes
        self._minted = 0
        self._output = 0

    def __call__(self, resolved: str, kind: UriKind) -> str:
        if kind is UriKind.MEDIA:
            return self.media([resolved])[0]
        upstream_url = child_upstream_url(self._tokens_from, resolved)
        if self._carried and kind is UriKind.PLAYLIST:
            upstream_url = carry_definitions(upstream_url, self._carried)
        carry = self._carry(upstream_url) if self._carry else ""
        rendition = self._plan.renditions.get(resolved)
        path = self._minter.ref(upstream_url, kind, carry, rendition=rendition)
        self._count([path])
        return path

    def media(self, resolved: list[str]) -> list[str]:
        """The references of many media URIs (absolute, resolved), in order."""
        if self._tokens_from is None:
            upstream_urls = quote_unsafe_many(resolved)
        else:
            upstream_urls = [child_upstream_url(self._tokens_from, url) for url in resolved]
        carry = self._carry
        carries = carry.many(upstream_urls) if carry else []
        sequences = self._plan.sequences
        numbers = [sequences.get(url) for url in resolved] if sequences else []
        paths = self._minter.media_refs(upstream_urls, carries, numbers)
        self._count(paths)
        return paths

    def _count(self, paths: list[str]) -> None:
        self._minted += len(paths)
        self._output += sum(map(len, paths))
        if max(map(len, paths)) > _MAX_CHILD_PATH_CHARS:
            raise bad_gateway(
                f"a playlist URI would make a proxy URL longer than the "
                f"{MAX_REQUEST_LINE_BYTES}-byte request line limit"
            )
        if self._minted > self._max_uris:
            raise bad_gateway(f"playlist has more than {self._max_uris} URIs (--max-playlist-uris)")
        if self._output > self._max_output:
            raise bad_gateway(f"rewritten playlist larger than {self._max_output} bytes")


def _uri_lines_estimate(body: bytes) -> int:
    """About how many URI lines a playlist has, counted in C (lines that are not tags,
    comments or empty; off by a few for lines of spaces or a lone-CR playlist). Only used
    to refuse a hostile playlist well past the bound at once; the rewrite counts exactly."""
    body = body.removeprefix(b"\xef\xbb\xbf")
    lines_ = body.count(b"\n") + 1 - body.endswith(b"\n")
    tags = body.count(b"\n#") + body.startswith(b"#")
    empty = body.count(b"\n\n") + body.count(b"\n\r\n")
    return max(0, lines_ - tags - empty)


def _children_carry(stream: Stream, target: Target) -> str:
    """The candidate tokens for this playlist's children; "" unless inherit_query is auto
    (with `inherit_query=1` they are in the children's URLs already)."""
    if stream_carry_mode(stream.spec) is not CarryMode.RETRY:
        return ""
    return children_tokens(target.url, target.carry)


def without_ll_hls(url: str) -> str:
    """`url` without the LL-HLS delivery directives (which change at every reload)."""
    base, hash_sign, fragment = url.partition("#")
    path, question, query = base.partition("?")
    if "_HLS_" not in query:
        return url
    kept = [part for part in query.split("&") if part.partition("=")[0] not in LL_HLS_PARAMS]
    return path + (question if kept else "") + "&".join(kept) + hash_sign + fragment


def _write(request: Request, entry: PlaylistEntry) -> None:
    """The one writer of playlist answers, for GET and HEAD, cached or not."""
    if entry.max_age_s >= 1:
        request.setHeader(b"cache-control", b"max-age=%d" % int(entry.max_age_s))
    else:
        request.setHeader(b"cache-control", b"no-cache")
    if entry.location is not None:
        request.setResponseCode(302)
        request.setHeader(b"location", entry.location)
        request.setHeader(b"content-length", b"0")
        request.finish()
        return
    request.setHeader(b"etag", entry.etag)
    if_none_match = request.getHeader(b"if-none-match")
    if if_none_match and etag_matches(as_bytes(if_none_match), entry.etag):
        request.setResponseCode(304)
        request.finish()
        return
    request.setResponseCode(200)
    request.setHeader(b"content-type", PLAYLIST_TYPE)
    request.setHeader(b"content-length", b"%d" % len(entry.body))
    if request.method != b"HEAD":
        request.write(entry.body)
    request.finish()
