"""A stream's cookie jar, bounded like curl's since CVE-2022-32205.

An origin that sets thousands of cookies must not make every later request carry a
Cookie header no server accepts (denial of service for the stream) nor grow the
proxy's memory without end. So: at most `per_domain` cookies per domain (oldest
dropped), none larger than 4 KiB, and a Cookie header of at most 8 KiB.

Each cookie remembers the origin (scheme, host, port) that set it, so a redirect to
another origin is sent only the cookies that origin set itself (redirects.py).
"""

from __future__ import annotations

import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from email.message import Message
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from urllib.parse import urlsplit

__all__ = ["MAX_COOKIE_HEADER_BYTES", "StreamCookies", "merge_cookie_headers", "origin_of"]

MAX_COOKIE_HEADER_BYTES = 8 * 1024
_MAX_COOKIE_BYTES = 4 * 1024  # curl: MAX_NAME + MAX_COOKIE_LINE are of this order
_ORIGIN_ATTR = "x-hlsproxy-origin"  # kept in the cookie's nonstandard attributes

Origin = tuple[str, str, int]


# Set-Cookie headers read from one response (the last ones): at most `per_domain` are kept
# anyway, and parsing thousands (a hostile origin) would hold the reactor for tens of ms.
_MAX_SET_COOKIES = 100


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of an http(s) URL, the default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _origin_text(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


def merge_cookie_headers(fixed: str, from_jar: str) -> str:
    """The user's h_cookie pairs, overridden by what the upstream has set since."""
    pairs: dict[str, str] = {}
    for header in (fixed, from_jar):
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if name:
                pairs[name] = value if sep else ""
    return "; ".join(f"{name}={value}" for name, value in pairs.items())


class _Headers(Message):
    """What http.cookiejar reads of a response: `info().get_all(name)`."""


class _Response:
    def __init__(self, set_cookies: Sequence[str]) -> None:
        self._headers = _Headers()
        for value in set_cookies:
            self._headers["Set-Cookie"] = value

    def info(self) -> Message:
        return self._headers


class _OriginPolicy(DefaultCookiePolicy):
    """Sends a cookie only to the origin that set it while `only_setter` is on."""

    only_setter: str | None = None

    def return_ok(self, cookie: Cookie, request: urllib.request.Request) -> bool:
        if self.only_setter is not None and cookie.get_nonstandard_attr(_ORIGIN_ATTR) != (
            self.only_setter
        ):
            return False
        return super().return_ok(cookie, request)


class StreamCookies:
    """The jar of one stream: what upstreams set, bounded, sent back by cookie rules."""

    def __init__(self, per_domain: int = 50) -> None:
        self._policy = _OriginPolicy()
        self.jar = CookieJar(self._policy)
        self._per_domain = per_domain
        # Insertion order per domain, so the oldest cookie is the one dropped.
        self._order: dict[str, OrderedDict[tuple[str, str], None]] = {}

    def __len__(self) -> int:
        return len(self.jar)

    def store(self, url: str, set_cookies: Iterable[bytes]) -> None:
        """Keep the cookies a response from `url` set (already-expired ones delete)."""
        values = [
            value.decode("latin-1") for value in set_cookies if len(value) <= _MAX_COOKIE_BYTES
        ][-_MAX_SET_COOKIES:]  # the last set are the newest: those would be kept
        if not values:
            return
        request = urllib.request.Request(url)
        setter = _origin_text(origin_of(url))
        for cookie in self.jar.make_cookies(_Response(values), request):  # type: ignore[arg-type]  # duck-typed response
            if not self._policy.set_ok(cookie, request):
                continue
            cookie._rest[_ORIGIN_ATTR] = setter  # type: ignore[attr-defined]  # http.cookiejar keeps extra attributes here
            self.jar.set_cookie(cookie)
            self._remember(cookie)

    def _remember(self, cookie: Cookie) -> None:
        order = self._order.setdefault(cookie.domain, OrderedDict())
        key = (cookie.path, cookie.name)
        order[key] = None
        order.move_to_end(key)
        while len(order) > self._per_domain:
            (path, name), _ = order.popitem(last=False)
            try:
                self.jar.clear(cookie.domain, path, name)
            except KeyError:
                pass  # already expired and cleared by the jar

    def header(self, url: str, fixed: str = "", only_setter: bool = False) -> str:
        """The Cookie header for `url`: `fixed` (h_cookie) merged with the jar's, at most
        8 KiB (cookies that would pass it are left out). `only_setter`: only cookies that
        `url`'s origin set itself."""
        request = urllib.request.Request(url)
        self._policy.only_setter = _origin_text(origin_of(url)) if only_setter else None
        try:
            self.jar.add_cookie_header(request)
        finally:
            self._policy.only_setter = None
        from_jar = request.get_header("Cookie") or ""
        merged = merge_cookie_headers(fixed, from_jar)
        if len(merged.encode("latin-1", "replace")) <= MAX_COOKIE_HEADER_BYTES:
            return merged
        kept: list[str] = []
        size = 0
        for pair in merged.split("; "):
            grown = size + len(pair.encode("latin-1", "replace")) + (2 if kept else 0)
            if grown <= MAX_COOKIE_HEADER_BYTES:
                kept.append(pair)
                size = grown
        return "; ".join(kept)
