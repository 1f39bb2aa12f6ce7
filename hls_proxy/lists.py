"""IPTV channel lists through the proxy: `/list.m3u?url=` (alias `/list`) and `/c/…`.

`/list.m3u` fetches the list with the `h_*` headers it is given, and streams it back
rewritten (`channel_list`, `list_stream`): every http(s) channel becomes an absolute,
signed proxy URL that plays it with its own headers (the `h_*` ones when it declares
none). The URLs are as stateless as every child URL: a saved list keeps playing on any
instance with the same secret. Loading a list opens no channel.

`/c/…` serves the catch-up children (`catchup.py`); `/p/…` serves everything else.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote_plus, urlsplit

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource
from twisted.web.server import Request

from . import catchup
from ._http import header_text
from .access import require_api_key
from .bodies import open_upstream
from .bypass import entry_stream
from .channel_list import APPEND_MODES, Channel, GroupFilter, ListRewriter
from .config import Config
from .endpoints import Endpoint, SignedChild, query_of, run
from .errors import ProxyError
from .exposure import PROXIED_HEADERS
from .forwarded import Forwarding
from .list_stream import ListBody
from .playlist import UriKind
from .serving import Dispatcher
from .signing import Signer, StreamSpec
from .streams import StreamRegistry
from .target import Target
from .urls import EntryRequest, normalize_upstream_url, parse_entry_query

__all__ = ["LIST_TYPE", "ChannelMinter", "list_routes", "public_base"]

LIST_TYPE = b"audio/x-mpegurl"
_FILTER_PARAMS = ("group", "exclude_group")
_HLS_EXTENSIONS = (".m3u8", ".m3u")


def public_base(forwarding: Forwarding, request: Request) -> str:
    """`scheme://host[:port]` for absolute URLs: --public-url, trusted X-Forwarded-*,
    else the Host the client used (else the address it reached)."""
    base = forwarding.request_base(request)
    if base:
        return base
    scheme = "https" if request.isSecure() else "http"
    address = request.getHost()
    name = getattr(address, "host", "127.0.0.1")
    name = f"[{name}]" if ":" in name else name
    return f"{scheme}://{name}:{getattr(address, 'port', 80)}"


def _split_filters(query: str) -> tuple[dict[str, str], str]:
    """(`group`/`exclude_group` values, the rest of the query for `parse_entry_query`).

    Taken out first: `parse_entry_query` gives unknown parameters after a literal
    `url=` back to the upstream URL.
    """
    filters: dict[str, str] = {}
    rest: list[str] = []
    for segment in query.split("&"):
        name = unquote_plus(segment.partition("=")[0])
        if name in _FILTER_PARAMS:
            filters.update(parse_qsl(segment, keep_blank_values=True))
        elif segment:
            rest.append(segment)
    return filters, "&".join(rest)


class ChannelMinter:
    """Mints the absolute proxy URLs of one list answer (a `channel_list.Minter`)."""

    def __init__(
        self, signer: Signer, base: str, entry: EntryRequest, bypass_by_default: bool
    ) -> None:
        self._signer = signer
        self._base = base
        self._defaults = entry.headers
        self._switches = entry.switches
        self._bypass = bypass_by_default

    def _stream(self, url: str, headers: dict[str, str]) -> StreamSpec:
        return entry_stream(EntryRequest(url, headers, self._switches), self._bypass)

    def _channel_stream(self, channel: Channel) -> tuple[str, StreamSpec]:
        url = _normalized(channel.url)
        headers = dict(channel.headers) if channel.headers else dict(self._defaults)
        return url, self._stream(url, headers)

    def channel(self, channel: Channel) -> str:
        url, spec = self._channel_stream(channel)
        kind = UriKind.PLAYLIST if channel.hls else UriKind.MEDIA
        if channel.catchup in APPEND_MODES:
            return self._base + catchup.append_path(self._signer, spec, url, kind)
        return self._base + self._signer.path(spec, url, kind)

    def catchup_source(self, channel: Channel, template: str) -> str:
        parts = urlsplit(template)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) template")
        _, spec = self._channel_stream(channel)
        hls = channel.hls or parts.path.lower().endswith(_HLS_EXTENSIONS)
        kind = UriKind.PLAYLIST if hls else UriKind.MEDIA
        return self._base + catchup.template_url(self._signer, spec, template, kind)

    def epg(self, url: str) -> str:
        url = _normalized(url)
        spec = self._stream(url, dict(self._defaults))
        return self._base + self._signer.path(spec, url, UriKind.MEDIA)


def _normalized(url: str) -> str:
    try:
        return normalize_upstream_url(url)
    except ProxyError as error:
        raise ValueError(error.message) from None


class ListEndpoint(Endpoint):
    """`/list.m3u?url=…`: the list, streamed, each channel with its own headers."""

    def __init__(
        self,
        config: Config,
        signer: Signer,
        registry: StreamRegistry,
        clock: IReactorTime,
        forwarding: Forwarding,
    ) -> None:
        super().__init__()
        self._config = config
        self._signer = signer
        self._registry = registry
        self._clock = clock
        self._forwarding = forwarding

    def render_GET(self, request: Request) -> int:
        for name, value in PROXIED_HEADERS:
            request.setHeader(name, value)
        return run(request, lambda: self._answer(request))

    async def _answer(self, request: Request) -> None:
        config = self._config
        require_api_key(request, config.api_key)
        filters, query = _split_filters(query_of(request))
        entry = parse_entry_query(query)
        groups = GroupFilter.parse(filters.get("group", ""), filters.get("exclude_group", ""))
        bypass = config.bypass == "auto"
        minter = ChannelMinter(self._signer, public_base(self._forwarding, request), entry, bypass)
        with self._registry.using(entry_stream(entry, bypass)) as stream:
            answer = await open_upstream(
                stream,
                entry.url,
                b"GET",
                {b"accept-encoding": b"gzip"},
                self._clock,
                config.body_idle_timeout_s,
            )
            final_url = answer.response.request.absoluteURI.decode("ascii")  # after redirects
            encoding = header_text(answer.response.headers, b"content-encoding")
            try:
                body = ListBody(
                    request,
                    ListRewriter(minter, groups, final_url),
                    self._clock,
                    config.body_idle_timeout_s,
                    encoding,
                    lambda header_added: _start(request, header_added),
                )
            except ProxyError:
                answer.body.discard()
                raise
            done = body.done
            answer.body.hand_over(body)
            await done


def _start(request: Request, header_added: bool) -> None:
    request.setResponseCode(200)
    request.setHeader(b"content-type", LIST_TYPE)
    # Per request: its URLs carry this request's host, and may carry credentials.
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-disposition", b'inline; filename="list.m3u"')
    if header_added:
        request.setHeader(b"x-hlsproxy-note", b"the upstream list had no #EXTM3U line; added")


class CatchupChild(SignedChild):
    """`/c/…`: a catch-up child; the player's query fills its open parts."""

    def target(self, request: Request) -> Target:
        child = self.verified(request)
        return Target(child.stream, catchup.resolve(child, query_of(request)), child.kind)


def list_routes(
    config: Config,
    dispatcher: Dispatcher,
    signer: Signer,
    registry: StreamRegistry,
    clock: IReactorTime,
    forwarding: Forwarding,
    instance_id: str,
) -> dict[bytes, IResource]:
    """The resources to add at the root: `/list.m3u`, `/list`, `/c/`."""
    lists = ListEndpoint(config, signer, registry, clock, forwarding)
    return {
        b"list.m3u": lists,
        b"list": lists,
        b"c": CatchupChild(dispatcher, instance_id, signer),
    }
