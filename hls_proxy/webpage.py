"""The web page at `/`: paste a link, get a proxied URL, play it. Static files, no build.

The only thing filled in at serve time is where hls.js comes from (`--hlsjs-url`), so
the page also works offline or on a closed network.
"""

from __future__ import annotations

import html
from importlib import resources

from twisted.web.resource import Resource
from twisted.web.server import Request

from .forwarded import Forwarding

__all__ = ["Assets", "Page"]
_TYPES = {"app.js": b"text/javascript; charset=utf-8", "style.css": b"text/css; charset=utf-8"}


def _read(name: str) -> bytes:
    return resources.files("hls_proxy").joinpath("page", name).read_bytes()


class Page(Resource):
    """`GET /`: the page, with the hls.js URL put in."""

    isLeaf = True

    def __init__(
        self, hlsjs_url: str, forwarding: Forwarding | None = None, policy: bytes = b""
    ) -> None:
        super().__init__()
        self._forwarding = forwarding or Forwarding()
        self._policy = policy
        escaped = html.escape(hlsjs_url, quote=True)  # an attribute value: no script context
        self._body = _read("index.html").replace(b"{{HLSJS_URL}}", escaped.encode("utf-8"))

    def render_GET(self, request: Request) -> bytes:
        base = html.escape(self._forwarding.public_base(request), quote=True)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"x-frame-options", b"DENY")
        request.setHeader(b"referrer-policy", b"no-referrer")
        if self._policy:
            request.setHeader(b"content-security-policy", self._policy)
        return self._body.replace(b"{{PUBLIC_URL}}", base.encode("utf-8"))


class Assets(Resource):
    """`GET /assets/<name>`: the page's script and style sheet."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._files = {name: _read(name) for name in _TYPES}

    def render_GET(self, request: Request) -> bytes:
        name = (request.postpath or [b""])[0].decode("latin-1")
        if name not in self._files or len(request.postpath or []) != 1:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found\n"
        request.setHeader(b"content-type", _TYPES[name])
        request.setHeader(b"cache-control", b"public, max-age=300")
        return self._files[name]
