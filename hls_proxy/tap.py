"""Command line for `twistd hlsproxy`: options (each also from $HLSPROXY_*) -> Config."""

from __future__ import annotations

import ipaddress
import os
import secrets
from typing import Any

from twisted.application.service import IService
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.python import usage

from .config import DEFAULT_HLSJS_URL, Config, port_description
from .service import ProxyService
from .workers import WorkersService

__all__ = ["Options", "build", "makeService"]

_ENV_PREFIX = "HLSPROXY_"


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be greater than 0")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("must be 0 or more")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _cache_size(value: str) -> int:
    return 0 if value.strip() in ("0", "0B", "0MB") else _byte_size(value)


def _workers(value: str) -> int:
    if value.strip().lower() == "auto":
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1
    return _positive_int(value)


def _byte_size(value: str) -> int:
    """`8388608`, `512KB`, `8MB`, `1GB` (binary multiples)."""
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    multiplier = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
    number = int(float(text.rstrip("KMG")) * multiplier)
    if number < 1:
        raise ValueError("must be at least 1 byte")
    return number


def _live_linger(value: str) -> float:
    number = _positive_float(value)
    if number > 5:
        raise ValueError("must be at most 5 seconds (a channel zap must find the slot free)")
    return number


def _log_format(value: str) -> str:
    if value not in ("text", "json"):
        raise ValueError("must be text or json")
    return value


def _on_off(value: str) -> str:
    if value not in ("on", "off"):
        raise ValueError("must be on or off")
    return value


def _bypass_mode(value: str) -> str:
    if value not in ("auto", "off"):
        raise ValueError("must be auto or off")
    return value


class Options(usage.Options):
    """Options for `twistd hlsproxy`; each can also be set as HLSPROXY_<NAME> in the environment."""

    synopsis = "[options]"
    longdesc = (
        "Serves an HLS proxy: GET /playlist.m3u8?url=<upstream m3u8>&h_referer=... rewrites "
        "every URI to signed proxy URLs and streams segments with backpressure. Every option "
        "can also be set as an environment variable HLSPROXY_<OPTION> (dashes as underscores)."
    )
    optFlags = [
        ["insecure-upstream", None, "Do not verify upstream TLS certificates (logged loudly)."],
        ["allow-private", None, "Allow upstreams on loopback/private/link-local addresses."],
    ]
    optParameters = [
        ["port", "p", None, "Port number or endpoint string (tcp:8080:interface=127.0.0.1). "
         "Default: $PORT, else 8080."],
        ["secret", None, None, "HMAC key for proxied URLs. Default: random (URLs die on restart)."],
        ["upstream-timeout", None, 20.0, "Seconds to receive an upstream's response headers.",
         _positive_float],
        ["max-playlist-bytes", None, 8 * 1024 * 1024, "Largest playlist accepted (e.g. 8MB).",
         _byte_size],
        ["max-playlist-uris", None, 200_000, "URIs one playlist may have; beyond, 502 (its "
         "rewrite is also capped at 256 MB).", _positive_int],
        ["pool-size", None, 8, "Persistent upstream connections per host per stream.",
         _positive_int],
        ["stream-idle-timeout", None, 300.0, "Seconds after which an unused stream is dropped.",
         _positive_float],
        ["cache-size", None, 256 * 1024 * 1024, "Segment cache budget per worker (e.g. 256MB; "
         "0 disables caching).", _cache_size],
        ["playlist-cache-ttl", None, 30.0, "Seconds a VOD or master playlist is reused "
         "(live: at most half the target duration).", _non_negative_float],
        ["prefetch", None, 0, "After a live playlist is served, fetch its newest N segments "
         "into the cache (0: off).", _non_negative_int],
        ["workers", None, 1, "Worker processes sharing the port: a number or 'auto' (one per "
         "CPU).", _workers],
        ["hlsjs-url", None, DEFAULT_HLSJS_URL,
         "Where the web page loads hls.js from (serve it yourself to work offline)."],
        ["log-format", None, "text", "text, or json: one JSON object per line on stdout.",
         _log_format],
        ["bypass", None, "auto", "auto: without h_referer/h_origin send the entry URL's origin as "
         "Referer/Origin (per stream: bypass=0/1); off: send only what is given.", _bypass_mode],
        ["api-key", None, None, "Require api_key=K or X-API-Key: K on entry points (/, /playlist, "
         "/stream, /mx). Signed child URLs never carry it."],
        ["url-ttl", None, None, "Seconds proxied child URLs stay valid (default: forever).",
         _positive_float],
        ["connect-timeout", None, 10.0, "Seconds to connect to an upstream.", _positive_float],
        ["idle-timeout", None, 20.0, "Seconds an upstream body may stay silent.", _positive_float],
        ["max-upstream-per-stream", None, 32, "Upstream requests one stream may have open at "
         "once (bodies included); beyond, requests wait up to --upstream-timeout, then 503.",
         _positive_int],
        ["max-clients", None, 10_000, "Client connections at once; beyond: 503 + Retry-After.",
         _positive_int],
        ["client-header-timeout", None, 15.0, "Seconds a new client has to send its request "
         "headers (slowloris).", _positive_float],
        ["client-idle-timeout", None, 60.0, "Seconds an idle client connection is kept.",
         _positive_float],
        ["public-url", None, "", "The proxy's public base URL (https://proxy.example) for the "
         "links the web page shows; default: from a trusted proxy's X-Forwarded-*, else the "
         "page's own."],
        ["shutdown-timeout", None, 30.0, "On SIGTERM, seconds in-flight responses get to finish.",
         _positive_float],
        # Bounds across streams (pools.py, streams.py).
        ["max-idle-upstream", None, 256, "Idle upstream keep-alive connections kept across all "
         "streams (least recently used closed first; lowered to a quarter of the open-file "
         "limit).", _positive_int],
        ["max-streams", None, 1000, "Live streams (one per entry URL + h_* set); when full the "
         "least recently used idle one is dropped, else 503.", _positive_int],
        # Live MPEG-TS channels (channels.py).
        ["live-linger", None, 5.0, "Seconds a live TS channel's upstream stays open after its "
         "last viewer leaves (more than 0, at most 5).", _live_linger],
        ["live-ring", None, 4 * 1024 * 1024, "Recent bytes a live TS channel keeps for late "
         "joiners; a viewer that falls further behind is detached (e.g. 4MB).", _byte_size],
        # Self-healing live streams (heal.py).
        ["heal", None, "on", "on: when a live stream's upstream refuses a playlist or segment "
         "(401/403/404/410: an expired token), re-resolve its entry URL and continue with the "
         "same rendition (per stream: heal=0); off: pass the refusal on.", _on_off],
    ]  # fmt: skip

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        super().__init__()
        self._environ = os.environ if environ is None else environ
        self["old-secret"] = []
        self["allow-host"] = []
        self["deny-host"] = []
        self["trusted-proxy"] = []
        self["cors-origin"] = []

    def opt_old_secret(self, value: str) -> None:
        """A previous --secret whose URLs are still accepted (repeatable; for key rotation)."""
        self["old-secret"].append(value)

    def opt_allow_host(self, value: str) -> None:
        """Only these upstream hosts (repeatable; wildcards: *.cdn.example)."""
        self["allow-host"].append(value)

    def opt_trusted_proxy(self, value: str) -> None:
        """A reverse proxy (address or network) whose X-Forwarded-* headers are believed
        (repeatable)."""
        self["trusted-proxy"].append(value)

    def opt_cors_origin(self, value: str) -> None:
        """A web origin (https://app.example) allowed to read the proxy's answers
        (repeatable; default: any, '*')."""
        self["cors-origin"].append(value.rstrip("/"))

    def opt_deny_host(self, value: str) -> None:
        """Never these upstream hosts (repeatable; wildcards: *.internal.example)."""
        self["deny-host"].append(value)

    def postOptions(self) -> None:
        # Flags and parameters given on the command line win over the environment.
        parameters: list[list[Any]] = self.optParameters  # type: ignore[assignment]  # declared list[object]
        for name, _, default, *rest in parameters:
            key = _ENV_PREFIX + name.upper().replace("-", "_")
            if self[name] == default and key in self._environ:
                coerce = rest[1] if len(rest) > 1 else None
                try:
                    self[name] = coerce(self._environ[key]) if coerce else self._environ[key]
                except ValueError as error:
                    raise usage.UsageError(f"{key}: {error}") from None
        flags: list[list[Any]] = self.optFlags
        for name, *_ in flags:
            key = _ENV_PREFIX + name.upper().replace("-", "_")
            if not self[name] and self._environ.get(key, "").lower() in ("1", "true", "yes", "on"):
                self[name] = 1
        # Repeatable options: comma-separated in the environment.
        for name in ("old-secret", "allow-host", "deny-host", "trusted-proxy", "cors-origin"):
            key = _ENV_PREFIX + name.upper().replace("-", "_")
            if not self[name] and self._environ.get(key):
                self[name] = [
                    item.strip() for item in self._environ[key].split(",") if item.strip()
                ]
        for entry in self["trusted-proxy"]:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise usage.UsageError(f"--trusted-proxy: {entry!r} is not an address") from None
        parent = getattr(self, "parent", None)
        if self["log-format"] == "json" and parent is not None and parent.get("logger") is None:
            # twistd resolves this name and starts logging with it after makeService.
            parent["logger"] = "hls_proxy.logs.json_observer"
        if self["port"] is None:
            self["port"] = self._environ.get("PORT", "8080")
        try:
            # Parsing only; nothing listens until the service starts.
            from twisted.internet import reactor

            endpoint = serverFromString(reactor, port_description(self["port"]))
        except (ValueError, KeyError, TypeError) as error:
            raise usage.UsageError(f"--port: {error}") from None
        if self["workers"] > 1 and not isinstance(
            endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)
        ):
            # The workers share one listening TCP socket (workers.py).
            raise usage.UsageError(
                f"--workers {self['workers']} needs a tcp: or tcp6: --port, not {self['port']!r}"
            )

    def config(self) -> Config:
        secret = self["secret"]
        return Config(
            port=port_description(self["port"]),
            secret=(secret or secrets.token_urlsafe(32)).encode("utf-8"),
            secret_is_random=not secret,
            allow_private=bool(self["allow-private"]),
            upstream_timeout_s=self["upstream-timeout"],
            max_playlist_bytes=self["max-playlist-bytes"],
            max_playlist_uris=self["max-playlist-uris"],
            pool_size=self["pool-size"],
            stream_idle_timeout_s=self["stream-idle-timeout"],
            cache_size_bytes=self["cache-size"],
            playlist_cache_ttl_s=self["playlist-cache-ttl"],
            prefetch=self["prefetch"],
            workers=self["workers"],
            bypass=self["bypass"],
            hlsjs_url=self["hlsjs-url"],
            api_key=self["api-key"] or "",
            old_secrets=tuple(old.encode("utf-8") for old in self["old-secret"]),
            url_ttl_s=self["url-ttl"],
            allow_hosts=tuple(self["allow-host"]),
            deny_hosts=tuple(self["deny-host"]),
            connect_timeout_s=self["connect-timeout"],
            body_idle_timeout_s=self["idle-timeout"],
            max_clients=self["max-clients"],
            max_upstream_per_stream=self["max-upstream-per-stream"],
            client_header_timeout_s=self["client-header-timeout"],
            client_idle_timeout_s=self["client-idle-timeout"],
            shutdown_timeout_s=self["shutdown-timeout"],
            trusted_proxies=tuple(self["trusted-proxy"]),
            public_url=self["public-url"],
            max_idle_upstream=self["max-idle-upstream"],
            max_streams=self["max-streams"],
            live_linger_s=self["live-linger"],
            live_ring_bytes=self["live-ring"],
            insecure_upstream=bool(self["insecure-upstream"]),
            cors_origins=tuple(self["cors-origin"]) or ("*",),
            heal=self["heal"] == "on",
        )


def build(config: Config, reactor: Any, log_format: str = "text") -> IService:
    """One process serving the port, or (--workers N) it and N-1 children sharing it."""
    if config.workers > 1:
        return WorkersService(config, reactor, log_format=log_format)
    return ProxyService(config, reactor)


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    reactor_: Any = reactor
    return build(options.config(), reactor_, options["log-format"])
