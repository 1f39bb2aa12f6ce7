"""Small HLS streams made by ffmpeg at test time, once per test run.

Deterministic sources (testsrc2 + sine) so the framemd5 of a direct and a proxied read
can be compared. Each stream is about 4 s of 1 s segments.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.tools import require_tool

__all__ = ["aes_vod", "fmp4_alternate_audio", "fmp4_vod", "ts_segments", "ts_single_file", "ts_vod"]

_made: dict[str, Path] = {}
_root: Path | None = None


def _sources(seconds: int) -> list[str]:
    return [
        "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
    ]  # fmt: skip


_SOURCES = _sources(4)
_ENCODE = [
    "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25",
    "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-b:v", "300k",
    "-c:a", "aac", "-b:a", "64k", "-threads", "1",
    "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
]  # fmt: skip


def _directory(name: str) -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="hlsproxy-media-"))
        atexit.register(shutil.rmtree, _root, True)
    path = _root / name
    path.mkdir(parents=True)
    return path


def _ffmpeg(*arguments: str, cwd: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-y", *arguments],
        cwd=cwd,
        check=True,
        timeout=60,
    )


def ts_vod() -> Path:
    """MPEG-TS segments in `v0/`, with a master playlist at the top pointing there."""
    if "ts" not in _made:
        root = _directory("ts")
        variant = root / "v0"
        variant.mkdir()
        _ffmpeg(
            *_SOURCES, *_ENCODE, "-hls_segment_filename", "seg%03d.ts", "index.m3u8", cwd=variant
        )
        (root / "master.m3u8").write_text(
            "#EXTM3U\n"
            '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,CODECS="avc1.42c00d,mp4a.40.2"\n'
            "v0/index.m3u8\n"
        )
        _made["ts"] = root
    return _made["ts"]


def fmp4_vod() -> Path:
    """fMP4 segments with an EXT-X-MAP init section."""
    if "fmp4" not in _made:
        root = _directory("fmp4")
        _ffmpeg(
            *_SOURCES, *_ENCODE, "-hls_segment_type", "fmp4",
            "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", "seg%03d.m4s",
            "index.m3u8", cwd=root,
        )  # fmt: skip
        _made["fmp4"] = root
    return _made["fmp4"]


def aes_vod() -> Path:
    """AES-128 encrypted TS; the key is served next to the playlist at a relative URI."""
    if "aes" not in _made:
        root = _directory("aes")
        (root / "keys").mkdir()
        (root / "keys" / "k.key").write_bytes(bytes(range(16)))
        stream = root / "enc"
        stream.mkdir()
        (stream / "key_info").write_text(
            f"../keys/k.key\n{root / 'keys' / 'k.key'}\n" + "0" * 31 + "1\n"
        )
        _ffmpeg(
            *_SOURCES, *_ENCODE, "-hls_key_info_file", "key_info",
            "-hls_segment_filename", "seg%03d.ts", "index.m3u8", cwd=stream,
        )  # fmt: skip
        _made["aes"] = root
    return _made["aes"]


def fmp4_alternate_audio() -> Path:
    """fMP4 video with its audio as an EXT-X-MEDIA rendition, behind `master.m3u8`."""
    if "alt" not in _made:
        root = _directory("alt")
        _ffmpeg(
            *_SOURCES, "-map", "0:v", "-map", "1:a", *_ENCODE, "-hls_segment_type", "fmp4",
            "-var_stream_map", "v:0,agroup:aud a:0,agroup:aud,language:en,name:English",
            "-master_pl_name", "master.m3u8", "-hls_segment_filename", "s%v_%03d.m4s",
            "-hls_fmp4_init_filename", "init.mp4", "p%v.m3u8", cwd=root,
        )  # fmt: skip
        _made["alt"] = root
    return _made["alt"]


def ts_single_file() -> Path:
    """One .ts file addressed by EXT-X-BYTERANGE (`-hls_flags single_file`)."""
    if "single" not in _made:
        root = _directory("single")
        _ffmpeg(*_SOURCES, *_ENCODE, "-hls_flags", "single_file", "index.m3u8", cwd=root)
        _made["single"] = root
    return _made["single"]


def ts_segments(seconds: int = 12) -> Path:
    """`seconds` one-second TS segments seg000.ts... (for a live window served by a test)."""
    key = f"long{seconds}"
    if key not in _made:
        root = _directory(key)
        _ffmpeg(
            *_sources(seconds),
            *_ENCODE,
            "-hls_segment_filename",
            "seg%03d.ts",
            "index.m3u8",
            cwd=root,
        )
        _made[key] = root
    return _made[key]
