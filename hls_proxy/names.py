"""Child file names: the last path segment of a proxy URL, from the upstream URL. Pure.

ffmpeg's HLS demuxer and ExoPlayer choose how to read a URI by its extension, so the name
keeps the upstream one when players know it and otherwise gets the kind's usual one.
Some hosts name MPEG-TS segments as pictures, style sheets, scripts or pages (`seg1.jpg`,
`seg1.css`); ffmpeg refuses those ("not in allowed_segment_extensions"). In a media
playlist that is not an image playlist such a segment gets the playlist's segment
extension (`seg1.jpg.ts`, `seg1.jpg.m4s` with an EXT-X-MAP); in an image playlist (and
for I-frame thumbnails there) a picture keeps its name.
"""

from __future__ import annotations

import os
import re

from .playlist import UriKind

__all__ = [
    "PLAIN_MEDIA_EXTENSIONS",
    "base_name",
    "base_names",
    "child_file_name",
    "name_suffix",
    "segment_extension",
]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_SAFE_NAME_FULL = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}")
_DEFAULT_EXTENSION = {
    UriKind.PLAYLIST: "m3u8",
    UriKind.MEDIA: "ts",
    UriKind.KEY: "key",
    UriKind.ASSET_LIST: "json",
    UriKind.STEERING: "json",
}
# Extensions players recognise; anything else (.php) gets the kind's own. Pictures are
# recognised (image playlists, thumbnails) except where `segment_extension` says the
# playlist's segments are video: see `_DISGUISES`.
_MEDIA_EXTENSIONS = frozenset(
    "ts m2ts mts m4s mp4 m4a m4v mov cmfv cmfa cmft aac ac3 ec3 eac3 mp3 mp2 flac ogg oga "
    "ogv opus webm mkv vtt webvtt srt ttml dfxp xml json key bin m3u8 m3u mpd jpg jpeg png "
    "gif webp gz".split()
)
_PLAYLIST_EXTENSIONS = frozenset({"m3u8", "m3u"})
# What some hosts name MPEG-TS segments, to pass as static files; ffmpeg refuses them
# ("not in allowed_segment_extensions").
_DISGUISES = frozenset("jpg jpeg png gif webp bmp css js ico txt html htm".split())
PLAIN_MEDIA_EXTENSIONS = _MEDIA_EXTENSIONS - _DISGUISES
_PICTURES_ONLY = re.compile(rb"^#EXT-X-(?:IMAGES|I-FRAMES)-ONLY", re.MULTILINE)


def segment_extension(body: bytes) -> str:
    """The extension a disguised segment of this playlist is named with: "ts", "m4s"
    with an EXT-X-MAP; "" in a multivariant playlist, an image playlist or an I-frame
    one (pictures there are thumbnails: they stay pictures)."""
    if b"#EXTINF" not in body or (b"-ONLY" in body and _PICTURES_ONLY.search(body)):
        return ""
    return "m4s" if b"#EXT-X-MAP" in body else "ts"


def base_name(url: str) -> tuple[str, str]:
    """The upstream file name made safe, and its extension in lower case."""
    path = url.partition("#")[0].partition("?")[0]
    if path.count("/") < 3:  # http://host with no path
        path = ""
    name = path.rpartition("/")[2]
    if not _SAFE_NAME_FULL.fullmatch(name):
        name = _SAFE_NAME.sub("_", name)[-80:].lstrip(".") or "index"
    stem, dot, extension = name.rpartition(".")
    return name, extension.lower() if dot and stem else ""


# What a name `base_name` keeps as it is may be made of (`_SAFE_NAME_FULL`), and the
# separator of joined names (see `base_names`).
_SAFE_NAME_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-\n"


def base_names(urls: list[str]) -> list[tuple[str, str]]:
    """`base_name` of each: for a playlist's segments, whose names are usually safe as
    they are and share an extension, told by a few C-level passes over them all."""
    if not urls:
        return []
    paths = [url.partition("?")[0] for url in urls]
    names = [path.rpartition("/")[2] for path in paths]
    joined = "\n".join(names)
    extension = names[0].rpartition(".")[2]
    ending = "." + extension
    if (
        "#" in "".join(paths)
        or not joined.isascii()
        or joined.encode("ascii").translate(None, _SAFE_NAME_BYTES)
        or max(map(len, names)) > 80
        or joined[:1] in ".\n"
        or "\n." in joined
        or "\n\n" in joined
        or not joined.endswith(ending)
        or joined.count(ending + "\n") != len(names) - 1
        or "." not in names[0][1:]
        # A path of each (a third `/`): in the prefix they share (of characters, not path
        # components: a few C-level passes), or counted one by one.
        or (
            os.path.commonprefix(paths).count("/") < 3  # noqa: RUF071
            and min(path.count("/") for path in paths) < 3
        )
    ):
        return [base_name(url) for url in urls]
    extension = extension.lower()  # every name ends with it, after a non-empty stem
    return [(name, extension) for name in names]


def name_suffix(kind: UriKind, extension: str, segment_extension: str) -> str:
    """What `child_file_name` appends to the base name ("" to keep it as it is)."""
    if kind is UriKind.MEDIA and segment_extension:
        if extension in _DISGUISES or extension not in _MEDIA_EXTENSIONS:
            return "." + segment_extension
    known = _PLAYLIST_EXTENSIONS if kind is UriKind.PLAYLIST else _MEDIA_EXTENSIONS
    return "" if extension in known else "." + _DEFAULT_EXTENSION[kind]


def child_file_name(url: str, kind: UriKind, segment_extension: str = "") -> str:
    """The last path segment of a child URL: the upstream file name, made safe.

    The extension is kept when players know it; otherwise the kind's usual one is
    appended (a variant at `index.php` becomes `index.php.m3u8`). With a
    `segment_extension` (a media URI of a video media playlist), a disguised or unknown
    extension gets that one instead (`seg1.jpg.ts`, `seg1.php.m4s`).
    """
    name, extension = base_name(url)
    return name + name_suffix(kind, extension, segment_extension)
