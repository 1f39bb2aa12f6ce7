"""JSON documents a playlist points at, rewritten so the player stays on the proxy. Pure.

- An interstitial asset list (Apple, "HLS Interstitials", X-ASSET-LIST):
  `{"ASSETS": [{"URI": ..., "DURATION": ...}, ...], ...}`: each `ASSETS[].URI` is a
  (multivariant) playlist, resolved against the asset list's URL and proxied.
- A content-steering manifest (rfc8216bis section 7.2, EXT-X-CONTENT-STEERING):
  `RELOAD-URI` is proxied (as a steering manifest again, so the next one is rewritten
  too). A pathway clone whose `URI-REPLACEMENT` has a `HOST` is removed (and its ID
  taken out of `PATHWAY-PRIORITY`): the player would apply that host to the *proxied*
  URLs and leave the proxy for a path the other host has never heard of. In the clones
  kept, `PER-VARIANT-URIS` / `PER-RENDITION-URIS` are proxied, and `PARAMS` are dropped
  (the player would add them to the proxy's URL, where no origin sees them).

Everything else in the document is kept as it was (keys, order, unknown fields).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import bad_gateway
from .playlist import ProxyUrl, UriKind, resolve_uri

__all__ = ["rewrite_asset_list", "rewrite_steering_manifest"]


def _load(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise bad_gateway(f"upstream {what} is not JSON") from None
    if not isinstance(document, dict):
        raise bad_gateway(f"upstream {what} is not a JSON object")
    return document


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _proxied(value: object, base_url: str, kind: UriKind, proxy_url: ProxyUrl) -> object:
    """The proxied form of a URI value; anything that is not an http(s) URI as it was."""
    if not isinstance(value, str):
        return value
    resolved = resolve_uri(base_url, value)
    return value if resolved is None else proxy_url(resolved, kind)


def rewrite_asset_list(body: bytes, base_url: str, proxy_url: ProxyUrl) -> bytes:
    """The asset list with every `ASSETS[].URI` proxied as a playlist."""
    document = _load(body, "asset list")
    assets = document.get("ASSETS")
    if isinstance(assets, list):
        for asset in assets:
            if isinstance(asset, dict) and "URI" in asset:
                asset["URI"] = _proxied(asset["URI"], base_url, UriKind.PLAYLIST, proxy_url)
    return _dump(document)


def _rewrite_clone(clone: dict[str, Any], base_url: str, proxy_url: ProxyUrl) -> None:
    replacement = clone.get("URI-REPLACEMENT")
    if not isinstance(replacement, dict):
        return
    replacement.pop("PARAMS", None)
    for key in ("PER-VARIANT-URIS", "PER-RENDITION-URIS"):
        uris = replacement.get(key)
        if isinstance(uris, dict):
            for stable_id, uri in uris.items():
                uris[stable_id] = _proxied(uri, base_url, UriKind.PLAYLIST, proxy_url)


def _sends_elsewhere(clone: object) -> bool:
    replacement = clone.get("URI-REPLACEMENT") if isinstance(clone, dict) else None
    return isinstance(replacement, dict) and bool(replacement.get("HOST"))


def rewrite_steering_manifest(body: bytes, base_url: str, proxy_url: ProxyUrl) -> bytes:
    """The steering manifest with RELOAD-URI and per-variant clone URIs proxied, and
    clones that replace the host removed."""
    document = _load(body, "steering manifest")
    if "RELOAD-URI" in document:
        document["RELOAD-URI"] = _proxied(
            document["RELOAD-URI"], base_url, UriKind.STEERING, proxy_url
        )
    clones = document.get("PATHWAY-CLONES")
    if isinstance(clones, list):
        removed = {
            clone["ID"]
            for clone in clones
            if _sends_elsewhere(clone) and isinstance(clone.get("ID"), str)
        }
        kept = [clone for clone in clones if not _sends_elsewhere(clone)]
        for clone in kept:
            if isinstance(clone, dict):
                _rewrite_clone(clone, base_url, proxy_url)
        document["PATHWAY-CLONES"] = kept
        priority = document.get("PATHWAY-PRIORITY")
        if removed and isinstance(priority, list):
            document["PATHWAY-PRIORITY"] = [item for item in priority if item not in removed]
    return _dump(document)
