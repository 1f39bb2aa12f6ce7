"""The one frozen configuration object the rest of the proxy reads."""

from __future__ import annotations

import attrs

__all__ = [
    "DEFAULT_HLSJS_URL",
    "DEFAULT_USER_AGENT",
    "MAX_REQUEST_LINE_BYTES",
    "Config",
    "port_description",
]

# The longest request line the proxy accepts (channel.py: 414 beyond). The playlist
# rewrite never mints a child URL that would not fit (playlists.py).
MAX_REQUEST_LINE_BYTES = 64 * 1024

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


DEFAULT_HLSJS_URL = "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js"


def port_description(port: str) -> str:
    """A Twisted endpoint string for `--port`: bare digits become `tcp:N`.

    `serverFromString` rejects a bare number, and users (and $PORT) give one.
    """
    port = port.strip()
    return f"tcp:{port}" if port.isdigit() else port


@attrs.frozen
class Config:
    """Everything the service needs, already validated by the command line layer."""

    port: str = "tcp:8080"
    secret: bytes = b""
    secret_is_random: bool = False
    allow_private: bool = False
    upstream_timeout_s: float = 20.0
    max_playlist_bytes: int = 8 * 1024 * 1024
    # Output bounds of one rewrite (playlists.py): far above a 50,000-segment VOD.
    max_playlist_uris: int = 200_000
    max_rewritten_bytes: int = 256 * 1024 * 1024
    # A VOD entry playlist with at least this many URIs is answered with a redirect to its
    # own sealed URL, so its segments can be written relative to it (playlists.py).
    redirect_playlist_uris: int = 2000
    pool_size: int = 8
    stream_idle_timeout_s: float = 300.0
    max_redirects: int = 20  # the Fetch standard's limit
    user_agent: str = DEFAULT_USER_AGENT
    # Many viewers, one upstream (cache.py, fanout.py, workers.py).
    cache_size_bytes: int = 256 * 1024 * 1024
    cache_object_max_bytes: int = 32 * 1024 * 1024
    playlist_cache_ttl_s: float = 30.0
    playlist_cache_bytes: int = 32 * 1024 * 1024
    prefetch: int = 0
    workers: int = 1
    # Domain-locked and token streams (bypass.py): "auto" derives Referer/Origin.
    bypass: str = "auto"
    # Production (observe.py, metrics.py): turn off upstream certificate checks (loudly).
    insecure_upstream: bool = False
    # The web page (webpage.py): where the page loads hls.js from.
    hlsjs_url: str = DEFAULT_HLSJS_URL
    # Hardening (access.py, limits.py, guard.py host rules, signing.py expiry/rotation).
    api_key: str = ""
    old_secrets: tuple[bytes, ...] = ()
    url_ttl_s: float | None = None
    allow_hosts: tuple[str, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    connect_timeout_s: float = 10.0
    body_idle_timeout_s: float = 20.0
    max_clients: int = 10_000
    client_header_timeout_s: float = 15.0
    client_idle_timeout_s: float = 60.0
    shutdown_timeout_s: float = 30.0
    # Behind a reverse proxy (forwarded.py).
    trusted_proxies: tuple[str, ...] = ()
    public_url: str = ""
    max_upstream_per_stream: int = 32
    # Which web origins may read answers (exposure.py); "*": any.
    cors_origins: tuple[str, ...] = ("*",)
    # Bounds across streams (pools.py): idle upstream sockets, live streams.
    max_idle_upstream: int = 256
    max_streams: int = 1000
    # Live MPEG-TS channels (channels.py): upstream closed this long after the last viewer
    # leaves; the ring of recent packets a late joiner starts from.
    live_linger_s: float = 5.0
    live_ring_bytes: int = 4 * 1024 * 1024
    # Self-healing live streams (heal.py): re-resolve the entry URL when tokens expire.
    heal: bool = True
