"""EXT-X-DEFINE (rfc8216bis section 4.4.2.3): variables resolved by the proxy. Pure, no I/O.

The player gets a fully resolved playlist: every `{$name}` in a URI line or an attribute
value replaced, and the EXT-X-DEFINE lines dropped. The proxy has to do it: a URI still
holding `{$name}` could not be proxied, and a QUERYPARAM names a parameter of the
playlist's *upstream* URL, which the proxied URL the player sees does not carry.

Definitions come from three places, as hls.js reads them:
- `NAME`/`VALUE`: the playlist itself (a VALUE may use earlier definitions);
- `QUERYPARAM`: the query of the playlist's own upstream URL (after redirects), decoded
  as URLSearchParams decodes it;
- `IMPORT`: the multivariant playlist that led to this media playlist. A multivariant
  playlist's definitions travel with each child playlist URL, in the upstream URL's
  *fragment* (`#hlsproxy-define=<base64url JSON>`): the child URL is signed whole, so
  they cannot be changed, and a fragment never reaches the origin (it is split off
  before the fetch). Nothing is kept on the server: any instance can serve the child.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

import attrs

from .errors import bad_gateway
from .playlist import ATTRIBUTE, decode, lines, playlist_shape

__all__ = [
    "MAX_CARRIED_CHARS",
    "Resolved",
    "carry_definitions",
    "resolve_variables",
    "split_carried",
]

_FRAGMENT = "hlsproxy-define="
# Definitions larger than this are not carried (each variant URL repeats them); a child
# that IMPORTs one then fails with a 502 that says so.
MAX_CARRIED_CHARS = 4096
_REFERENCE = re.compile(r"\{\$([A-Za-z0-9_-]+)\}")
_SPACE = " \t\f\v"


@attrs.frozen
class Resolved:
    """A playlist with its variables resolved, and the definitions its child playlists get."""

    body: bytes
    carried: Mapping[str, str]


def split_carried(url: str) -> tuple[str, dict[str, str] | None]:
    """The upstream URL without our fragment, and the definitions it carried (or None)."""
    base, hash_, fragment = url.partition("#")
    if not hash_ or not fragment.startswith(_FRAGMENT):
        return url, None
    encoded = fragment[len(_FRAGMENT) :]
    try:
        pairs = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error):
        return base, None  # only reachable with our own secret: a bug, not an attack
    if not isinstance(pairs, dict):
        return base, None
    return base, {str(name): str(value) for name, value in pairs.items()}


def carry_definitions(url: str, definitions: Mapping[str, str]) -> str:
    """`url` with `definitions` in its fragment (unless none, or too large to carry)."""
    if not definitions:
        return url
    document = json.dumps(dict(definitions), separators=(",", ":"), sort_keys=True)
    encoded = base64.urlsafe_b64encode(document.encode("utf-8")).rstrip(b"=").decode("ascii")
    if len(encoded) > MAX_CARRIED_CHARS:
        return url
    return url.partition("#")[0] + "#" + _FRAGMENT + encoded


class _Variables:
    """The definitions seen so far, and substitution bounded by `max_chars` of output."""

    def __init__(self, max_chars: int) -> None:
        self.defined: dict[str, str] = {}
        self.size = 0
        self._max_chars = max_chars

    def substitute(self, text: str) -> str:
        if "{$" not in text:
            return text

        def value(reference: re.Match[str]) -> str:
            found = self.defined.get(reference[1])
            if found is None:
                raise bad_gateway(f"playlist uses variable {_shown(reference[1])}, never defined")
            # Bounded as it grows: one short line may use a long value a million times.
            self.size += len(found)
            if self.size > self._max_chars:
                raise bad_gateway(f"playlist variables expand past {self._max_chars} bytes")
            return found

        return _REFERENCE.sub(value, text)

    def define(
        self, attribute_list: str, playlist_url: str, imported: Mapping[str, str] | None
    ) -> None:
        fields = {name: (quoted, unquoted) for name, quoted, unquoted in _fields(attribute_list)}
        if "QUERYPARAM" in fields:
            name = _value(fields["QUERYPARAM"])
            query = parse_qsl(urlsplit(playlist_url).query, keep_blank_values=True)
            found = [value for key, value in query if key == name]
            if not found:
                raise bad_gateway(f"EXT-X-DEFINE QUERYPARAM {_shown(name)} not in the playlist URL")
            value = found[0]  # the first, as URLSearchParams.get gives it
        elif "IMPORT" in fields:
            name = _value(fields["IMPORT"])
            if imported is None or name not in imported:
                raise bad_gateway(
                    f"EXT-X-DEFINE IMPORT {_shown(name)} not defined by the multivariant"
                    f" playlist (or its definitions were over {MAX_CARRIED_CHARS} characters)"
                )
            value = imported[name]
        elif "NAME" in fields:
            name = _value(fields["NAME"])
            value = self.substitute(_value(fields.get("VALUE", ("", None))))
        else:
            raise bad_gateway("EXT-X-DEFINE without NAME, IMPORT or QUERYPARAM")
        if name in self.defined:
            raise bad_gateway(f"EXT-X-DEFINE defines {_shown(name)} twice")
        self.defined[name] = value


def _shown(name: str) -> str:
    """A name for an error message: quoted, escaped, and short (it comes from upstream)."""
    return repr(name[:64])


def _fields(attribute_list: str) -> list[tuple[str, str | None, str | None]]:
    return [
        (token[1], token[2], token[3])
        for token in ATTRIBUTE.finditer(attribute_list)
        if token[1] is not None
    ]


def _value(field: tuple[str | None, str | None]) -> str:
    quoted, unquoted = field
    return quoted if quoted is not None else (unquoted or "").strip(_SPACE)


def _substitute_attributes(content: str, variables: _Variables) -> str:
    """A tag line with references replaced in its attribute values (quoted or not: a
    hexadecimal-sequence like IV may use them too, as hls.js allows)."""
    colon = content.find(":")
    if colon < 0:
        return content
    attribute_list = content[colon + 1 :]
    pieces: list[str] = []
    done = 0
    for token in ATTRIBUTE.finditer(attribute_list):
        if token[1] is None:
            continue
        group = 2 if token[2] is not None else 3
        if "{$" not in token[group]:
            continue
        pieces.append(attribute_list[done : token.start(group)])
        pieces.append(variables.substitute(token[group]))
        done = token.end(group)
    if not pieces:
        return content
    return content[: colon + 1] + "".join(pieces) + attribute_list[done:]


def resolve_variables(
    body: bytes, playlist_url: str, imported: Mapping[str, str] | None, max_bytes: int
) -> Resolved:
    """`body` with its variables resolved and its EXT-X-DEFINE lines dropped.

    `playlist_url`: the playlist's upstream URL after redirects (for QUERYPARAM);
    `imported`: what the multivariant playlist that led here defined (for IMPORT).
    Raises a 502 ProxyError for an undefined reference or a playlist that would grow
    past `max_bytes`. A multivariant playlist's children get its definitions; a media
    playlist's (rendition reports) get what it imported itself.
    """
    multivariant = playlist_shape(body)[0]
    if b"{$" not in body and b"#EXT-X-DEFINE" not in body:
        return Resolved(body, {} if multivariant or imported is None else imported)
    variables = _Variables(max(0, max_bytes - len(body)))
    out: list[str] = []
    for content, ending in lines(decode(body)):
        stripped = content.strip(_SPACE)
        if stripped.startswith("#EXT-X-DEFINE:"):
            variables.define(stripped.partition(":")[2], playlist_url, imported)
            continue  # dropped with its line ending: the player never sees a definition
        if stripped.startswith("#EXT"):
            content = _substitute_attributes(content, variables)
        elif stripped and stripped[0] != "#":
            content = variables.substitute(content)
        out.append(content)
        out.append(ending)
    resolved = "".join(out).encode("utf-8", "surrogateescape")
    carried = variables.defined if multivariant else (imported or {})
    return Resolved(resolved, carried)
