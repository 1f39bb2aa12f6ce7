"""`--api-key`: who may open a stream.

Entry points (`/playlist.m3u8`, `/stream`, `/mx`) need the key, as `api_key=` or an
`X-API-Key` header. Signed child URLs do not: the signature already says this proxy
minted them, so the key never has to be copied into a playlist.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from twisted.web.server import Request

from .errors import ProxyError

__all__ = ["require_api_key"]


def _given_key(request: Request) -> str:
    header = request.getHeader(b"x-api-key")
    if header:
        return header.decode("utf-8", "replace") if isinstance(header, bytes) else header
    query = request.uri.decode("latin-1").partition("?")[2]
    return next((value for key, value in parse_qsl(query) if key == "api_key"), "")


def require_api_key(request: Request, expected: str) -> None:
    """Raise 401 unless the request carries `expected` (no-op when no key is set)."""
    if not expected:
        return
    given = _given_key(request).encode("utf-8")
    if not hmac.compare_digest(given, expected.encode("utf-8")):
        raise ProxyError(401, "missing or wrong api key (api_key= or X-API-Key)")
