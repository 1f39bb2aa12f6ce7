"""What the proxy lets a browser do with what it serves: CORS, and never running
upstream bytes as the proxy's own page.

Proxied answers come from the same origin as the web page (where an API key may sit
in sessionStorage), so upstream HTML, script or SVG must never execute there: every
proxied answer is `nosniff` and `sandbox`, a service-worker registration through the
proxy is refused, and only the types a player needs are passed on.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs
from twisted.web.server import Request

from ._http import request_header

__all__ = ["PROXIED_HEADERS", "CorsPolicy", "page_policy", "safe_type"]

# Types a player (or hls.js) needs; anything else is sent as application/octet-stream.
_SAFE_PREFIXES = ("video/", "audio/")
_SAFE_TYPES = frozenset(
    {
        "application/vnd.apple.mpegurl", "application/x-mpegurl", "application/mpegurl",
        "application/octet-stream", "binary/octet-stream", "application/mp4",
        "application/mp2t", "application/dash+xml", "application/json",
        "application/x-subrip", "application/ttml+xml", "text/vtt", "text/plain",
        "image/jpeg", "image/png", "image/webp", "image/gif", "image/avif",
        "application/pgp-keys", "application/binary",
    }
)  # fmt: skip
_UNSAFE_IN_MEDIA = ("video/vnd.", "audio/vnd.")

PROXIED_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"sandbox"),
)


def safe_type(content_type: str) -> str:
    """`content_type` if a player needs it, else application/octet-stream."""
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence in _SAFE_TYPES:
        return content_type
    if essence.startswith(_SAFE_PREFIXES) and not essence.startswith(_UNSAFE_IN_MEDIA):
        return content_type
    return "application/octet-stream"


@attrs.frozen
class CorsPolicy:
    """Which web origins may read the proxy's answers (`--cors-origin`, default any)."""

    origins: tuple[str, ...] = ("*",)

    def allowed_origin(self, request: Request) -> bytes | None:
        """The Access-Control-Allow-Origin value for this request, or None (not allowed)."""
        if "*" in self.origins:
            return b"*"
        origin = request_header(request, b"origin")
        return origin.encode("latin-1") if origin in self.origins else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return ""


def page_policy(hlsjs_url: str, public_url: str) -> bytes:
    """The web page's Content-Security-Policy: scripts from itself and hls.js only."""
    scripts = " ".join(filter(None, ["'self'", _origin(hlsjs_url)]))
    connect = " ".join(filter(None, ["'self'", _origin(public_url)]))
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
        f"media-src {connect} blob:; connect-src {connect}; worker-src blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ).encode("ascii")
