"""The credentials a stream's upstream request carries, as a cache-key component.

A shared cache or an in-flight fetch may serve an object only to requests that would
have sent exactly the same credentials upstream; the stream's h_* headers are already
in the key, the cookies its upstream has set since (in the stream's jar) are added here.
"""

from __future__ import annotations

import urllib.request
from http.cookiejar import CookieJar

__all__ = ["jar_cookie_header"]


def jar_cookie_header(jar: CookieJar, url: str) -> str:
    """The Cookie header `jar` would send with a request for `url` ("" if none)."""
    if not len(jar):
        return ""
    request = urllib.request.Request(url)
    jar.add_cookie_header(request)
    return request.get_header("Cookie") or ""
