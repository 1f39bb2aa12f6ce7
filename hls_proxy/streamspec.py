"""What identifies a stream: its entry URL, canonical headers and switches. Pure."""

from __future__ import annotations

import base64
import hashlib

from .childurls import StreamSpec

__all__ = ["stream_spec"]


def stream_spec(
    entry_url: str, headers: dict[str, str], options: dict[str, str] | None = None
) -> StreamSpec:
    """The stream for an entry request: canonical headers and options, and a stable id."""
    canonical = tuple(sorted((name.lower(), value) for name, value in headers.items()))
    switches = tuple(sorted((options or {}).items()))
    identity = (entry_url, canonical, switches) if switches else (entry_url, canonical)
    digest = hashlib.sha256(repr(identity).encode("utf-8")).digest()
    return StreamSpec(base64.urlsafe_b64encode(digest[:9]).decode("ascii"), canonical, switches)
