"""Behind a reverse proxy: who the client is, and which public URL it used.

X-Forwarded-For/-Proto/-Host are believed only from `--trusted-proxy` peers (addresses or
networks); from anyone else they are ignored, since any client can send them.
`--public-url` overrides what the headers say. Child URLs are path-absolute, so they never
need this; the web page uses it to show links with the right scheme and host.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from twisted.web.server import Request

from ._http import request_header

__all__ = ["Forwarding"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# A Host header fit to build URLs from: a name or an address, and a port.
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


class Forwarding:
    """Reads X-Forwarded-* from trusted peers only."""

    def __init__(self, trusted: Sequence[str] = (), public_url: str = "") -> None:
        self._trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in trusted
        )
        self._public_url = public_url.rstrip("/")

    def _peer_is_trusted(self, request: Request) -> bool:
        host = getattr(request.getClientAddress(), "host", None)
        if host is None or not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def client_ip(self, request: Request) -> str:
        """The client's address: the peer, or the last untrusted hop of X-Forwarded-For."""
        peer = str(getattr(request.getClientAddress(), "host", "-"))
        if not self._peer_is_trusted(request):
            return peer
        hops = [
            hop.strip()
            for hop in request_header(request, b"x-forwarded-for").split(",")
            if hop.strip()
        ]
        for hop in reversed(hops):
            try:
                address = ipaddress.ip_address(hop)
            except ValueError:
                return peer
            if not any(address in network for network in self._trusted):
                return hop
        return hops[0] if hops else peer

    def public_base(self, request: Request) -> str:
        """`scheme://host[:port]` the client used, or "" to let the page use its own."""
        if self._public_url:
            return self._public_url
        if not self._peer_is_trusted(request):
            return ""
        proto = request_header(request, b"x-forwarded-proto").split(",")[0].strip().lower()
        host = request_header(request, b"x-forwarded-host").split(",")[0].strip()
        if proto not in ("http", "https") or not host or any(c in host for c in "/\\ \"'<>"):
            return ""
        return f"{proto}://{host}"

    def request_base(self, request: Request) -> str:
        """`scheme://host[:port]` for absolute URLs: `public_base`, else the Host the client
        used when it is a plain name or address; "" when there is neither."""
        public = self.public_base(request)
        if public:
            return public
        host = request_header(request, b"host")
        if not _HOST.fullmatch(host):
            return ""
        return ("https://" if request.isSecure() else "http://") + host
