"""IPTV channel lists (`#EXTM3U` with `#EXTINF` entries) rewritten line by line. Pure.

`ListRewriter` is fed the list one line at a time, as it arrives, and returns what to
send on. It holds back only the lines of the entry being read (from after the previous
channel URL to the next one), so memory does not grow with the list. For each entry it:

- drops the entry if its groups do not pass the `group=`/`exclude_group=` filter;
- reads the channel's headers from every dialect (`list_dialects`), removes the header
  lines it applied and the URL's `|…` suffix, and hands the channel to a `Minter` for
  the proxy URL that plays it with those headers;
- rewrites `catchup-source` when it is an absolute URL template.

On `#EXTM3U` lines the EPG URLs (`url-tvg`, `x-tvg-url`, `tvg-url`) are rewritten. Every
other byte (attributes, titles, comments, blank lines, line endings) is kept, in order.
Lines are decoded as UTF-8 with `surrogateescape`, so any byte survives.
"""

from __future__ import annotations

import re
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import attrs

from .list_dialects import (
    Attribute,
    Malformed,
    attributes,
    exthttp_headers,
    extinf_headers,
    extvlcopt_header,
    kodiprop_headers,
    split_pipe,
)

__all__ = ["Channel", "GroupFilter", "ListRewriter", "Minter", "looks_like_list"]

Headers = tuple[tuple[str, str], ...]

_BOM = b"\xef\xbb\xbf"
_EPG_ATTRIBUTES = frozenset({"url-tvg", "x-tvg-url", "tvg-url"})
_HLS_TYPES = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl",
              "audio/x-mpegurl", "hls")  # fmt: skip
_HLS_EXTENSIONS = (".m3u8", ".m3u")
# Modes where the player adds its query to the channel URL itself.
APPEND_MODES = frozenset({"append", "shift"})
# An entry with no URL line after this many lines is passed on as it is (bounded memory).
_MAX_ENTRY_LINES = 512
_MAX_ENTRY_CHARS = 1024 * 1024
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_NOT_COMMA = re.compile(r"[^,]+")
_HTTP = ("http://", "https://")


def looks_like_list(head: bytes) -> str | None:
    """ "m3u" for `#EXTM3U`, "extinf" for a list that starts with an entry, None otherwise."""
    head = head.removeprefix(_BOM).lstrip()
    if head.startswith(b"#EXTM3U"):
        return "m3u"
    if head.startswith(b"#EXTINF"):
        return "extinf"
    return None


@attrs.frozen
class Channel:
    """One channel as the list declares it: what a proxy URL for it must carry."""

    url: str  # absolute http(s), the `|…` suffix removed
    headers: Headers  # declared by the entry itself (empty: none)
    hls: bool  # the URL or a KODIPROP says it is an HLS playlist
    catchup: str  # catch-up mode, lower case ("" when none)


class Minter(Protocol):
    """Makes the absolute proxy URLs; raises ValueError for a URL it cannot proxy."""

    def channel(self, channel: Channel) -> str: ...

    def catchup_source(self, channel: Channel, template: str) -> str: ...

    def epg(self, url: str) -> str: ...


def _glob(pattern: str) -> re.Pattern[str]:
    """`*` matches anything; everything else literally; case-insensitive."""
    parts = (re.escape(part) for part in pattern.strip().split("*"))
    return re.compile(".*".join(parts), re.IGNORECASE | re.DOTALL)


@attrs.frozen
class GroupFilter:
    """`group=` (keep only) and `exclude_group=` (drop) as comma-separated globs."""

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def parse(cls, include: str, exclude: str) -> GroupFilter:
        def globs(text: str) -> tuple[re.Pattern[str], ...]:
            return tuple(_glob(item) for item in text.split(",") if item.strip())

        return cls(globs(include), globs(exclude))

    def keeps(self, groups: list[str]) -> bool:
        names = [group.strip() for group in groups] or [""]

        def any_matches(patterns: tuple[re.Pattern[str], ...]) -> bool:
            return any(p.fullmatch(name) for p in patterns for name in names)

        if self.include and not any_matches(self.include):
            return False
        return not any_matches(self.exclude)


def _replace(line: str, spans: list[tuple[int, int, str]]) -> str:
    for start, end, text in sorted(spans, reverse=True):
        line = line[:start] + text + line[end:]
    return line


def _split_ending(line: str) -> tuple[str, str]:
    body = line.rstrip("\r\n")
    return body, line[len(body) :]


def _is_hls(url: str, declared_types: list[str]) -> bool:
    path = urlsplit(url).path.lower()
    return path.endswith(_HLS_EXTENSIONS) or any(t in _HLS_TYPES for t in declared_types)


class ListRewriter:
    """Feeds on lines (bytes, ending included); returns the bytes to send for them."""

    def __init__(self, minter: Minter, groups: GroupFilter, list_url: str) -> None:
        self._minter = minter
        self._groups = groups
        self._list_url = list_url
        self._entry: list[str] = []
        self._entry_chars = 0
        self._catchup = ""  # defaults from the #EXTM3U line
        self._catchup_source = ""
        self.channels = 0  # entries passed on with a proxy URL

    def feed(self, raw: bytes) -> bytes:
        line = raw.decode("utf-8", "surrogateescape")
        text = line.strip()
        if text.lstrip("\ufeff").startswith("#EXTM3U"):
            return self._flush() + self._header(line)
        if text.startswith("#EXTINF") and any(held.startswith("#EXTINF") for held in self._entry):
            out = self._flush()  # an entry without a URL: passed on as it was
            self._hold(line)
            return out
        if text and not text.startswith("#"):
            self._entry.append(line)
            entry, self._entry, self._entry_chars = self._entry, [], 0
            return self._channel(entry).encode("utf-8", "surrogateescape")
        self._hold(line)
        if len(self._entry) > _MAX_ENTRY_LINES or self._entry_chars > _MAX_ENTRY_CHARS:
            return self._flush()
        return b""

    def finish(self) -> bytes:
        """What is still held at the end of the list (comments after the last URL)."""
        return self._flush()

    def _hold(self, line: str) -> None:
        self._entry.append(line)
        self._entry_chars += len(line)

    def _flush(self) -> bytes:
        entry, self._entry, self._entry_chars = self._entry, [], 0
        return "".join(entry).encode("utf-8", "surrogateescape")

    def _header(self, line: str) -> bytes:
        """An `#EXTM3U` line: EPG URLs proxied; catch-up defaults noted for the entries."""
        body, ending = _split_ending(line)
        found, _ = attributes(body, title_follows=False)
        spans: list[tuple[int, int, str]] = []
        for attribute in found:
            if attribute.name in ("catchup", "catchup-type"):
                self._catchup = attribute.value.strip().lower()
            elif attribute.name == "catchup-source":
                self._catchup_source = attribute.value
            elif attribute.name in _EPG_ATTRIBUTES:
                rewritten = _NOT_COMMA.sub(lambda m: self._epg(m.group(0)), attribute.value)
                spans.append((attribute.start, attribute.end, rewritten))
        return (_replace(body, spans) + ending).encode("utf-8", "surrogateescape")

    def _epg(self, text: str) -> str:
        url = text.strip()
        if not url.lower().startswith(_HTTP):
            return text
        try:
            return text.replace(url, self._minter.epg(url))
        except ValueError:
            return text

    def _channel(self, entry: list[str]) -> str:
        """One entry, its URL line last: filtered, or passed on with the URL proxied."""
        extinf = next((i for i, line in enumerate(entry) if line.startswith("#EXTINF")), None)
        found = attributes(_split_ending(entry[extinf])[0], True)[0] if extinf is not None else []
        by_name = {attribute.name: attribute for attribute in found}
        groups = by_name["group-title"].value.split(";") if "group-title" in by_name else []
        groups += [line[len("#EXTGRP:") :].strip() for line in entry if line.startswith("#EXTGRP:")]
        if not self._groups.keeps(groups):
            return ""
        try:
            return self._proxied(entry, extinf, found, by_name)
        except (Malformed, ValueError):
            return "".join(entry)  # a URL the proxy cannot take: the entry as it was

    def _proxied(
        self,
        entry: list[str],
        extinf: int | None,
        found: list[Attribute],
        by_name: dict[str, Attribute],
    ) -> str:
        url_line, ending = _split_ending(entry[-1])
        url, pipe_headers = split_pipe(url_line.strip())  # Malformed: entry kept
        if not _SCHEME.match(url):
            url = urljoin(self._list_url, url)  # relative to the list
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            return "".join(entry)  # rtmp://, udp://, rtp://: not for an HTTP proxy
        headers = list(extinf_headers(found))
        applied: set[int] = set()
        declared_types: list[str] = []
        for index, line in enumerate(entry[:-1]):
            text = _split_ending(line)[0]
            declared_types += _declared_types(text)
            try:
                from_line = _line_headers(text)
            except Malformed:
                continue  # kept as it is, the channel still proxied
            if from_line is not None:
                headers.extend(from_line)
                applied.add(index)
        headers.extend(pipe_headers or ())
        catchup = self._catchup
        if "catchup" in by_name or "catchup-type" in by_name:
            catchup = (by_name.get("catchup") or by_name["catchup-type"]).value.strip().lower()
        channel = Channel(url, tuple(headers), _is_hls(url, declared_types), catchup)
        out = [line for index, line in enumerate(entry[:-1]) if index not in applied]
        source = by_name.get("catchup-source")
        if extinf is not None and source and source.value.lower().startswith(_HTTP):
            rewritten = self._minter.catchup_source(channel, source.value)
            line, line_ending = _split_ending(entry[extinf])
            line = _replace(line, [(source.start, source.end, rewritten)])
            out[extinf - sum(1 for index in applied if index < extinf)] = line + line_ending
        out.append(self._minter.channel(channel) + ending)
        self.channels += 1
        return "".join(out)


def _line_headers(text: str) -> tuple[tuple[str, str], ...] | None:
    for reader in (extvlcopt_header, exthttp_headers, kodiprop_headers):
        headers = reader(text)
        if headers is not None:
            return headers
    return None


def _declared_types(text: str) -> list[str]:
    """`#KODIPROP:mimetype=…` / `…manifest_type=hls`: what the entry says its URL is."""
    if not text.startswith("#KODIPROP:"):
        return []
    name, _, value = text[len("#KODIPROP:") :].partition("=")
    if name.strip().lower() in ("mimetype", "inputstream.adaptive.manifest_type"):
        return [value.strip().lower()]
    return []
