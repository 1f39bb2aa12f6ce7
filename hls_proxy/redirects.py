"""Upstream redirects and URL credentials: where a redirect may lead, and what follows it.

Rules (Fetch standard, and curl since CVE-2018-1000007 / CVE-2022-27776):
- at most 20 hops by default, then 502;
- only to http and https: a Location of gopher:, file:, ftp:, data: ... is refused
  before any connection is made (Agent would speak HTTP to a gopher port);
- credentials (h_authorization, h_cookie, user:pass@ in the URL) stay with the origin
  they were given for, and are dropped for good once a redirect leaves it.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, unquote_to_bytes, urljoin, urlsplit, urlunsplit

from twisted.web.iweb import IResponse

from .errors import ProxyError, bad_gateway

__all__ = ["REDIRECT_CODES", "redirect_target", "split_userinfo"]

REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))

# Characters left as they are when a Location carries raw non-ASCII text.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


def split_userinfo(url: str) -> tuple[str, str | None]:
    """`http://user:pass@host/x` -> (`http://host/x`, `Basic dXNlcjpwYXNz`).

    The userinfo is percent-decoded (RFC 3986) and sent as UTF-8 (RFC 7617). A URL
    without userinfo comes back unchanged, with None.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(unquote_to_bytes(user) + b":" + unquote_to_bytes(password))
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return bare, "Basic " + token.decode("ascii")


def redirect_target(url: str, response: IResponse) -> str | None:
    """The URL a redirect response leads to, or None when it is no redirect.

    Raises the 502 the client gets for a redirect that must not be followed.
    """
    if response.code not in REDIRECT_CODES:
        return None
    locations = response.headers.getRawHeaders(b"location")
    if not locations:
        raise bad_gateway("upstream redirect without Location")
    location = locations[0].decode("latin-1").strip()
    if not location.isascii():
        location = quote(location, safe=_URL_SAFE)
    try:
        target = urljoin(url, location)
        parts = urlsplit(target)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        raise bad_gateway("upstream redirect to an invalid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise bad_gateway("upstream redirect to a non-HTTP URL refused")
    if not parts.hostname:
        raise bad_gateway("upstream redirect to an invalid URL")
    if parts.username is not None or parts.password is not None:
        # Credentials a redirect hands out are not followed (Fetch refuses them
        # cross-origin); drop them rather than log or send them anywhere.
        host = parts.netloc.rpartition("@")[2]
        target = urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    bare: str = urlunsplit(urlsplit(target)._replace(fragment=""))
    return bare


def too_many_redirects() -> ProxyError:
    return bad_gateway("too many upstream redirects")
