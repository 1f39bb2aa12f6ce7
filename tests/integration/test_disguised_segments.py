"""Disguised segments played by ffmpeg through the proxy: TS named `.jpg` (sent as
image/jpeg) and TS behind a PNG header named `.png` give the frames of the plain `.ts`."""

from __future__ import annotations

from urllib.parse import urljoin

from twisted.trial.unittest import TestCase
from twisted.web.resource import IResource

from . import hls_media
from .harness import client, proxied_url, start_origin, start_proxy
from .origin import Body, Tree
from .test_ffmpeg_playback import framemd5

# A whole 1x1 PNG: what such hosts put before the first TS packet.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def disguised_tree() -> tuple[Tree, dict[str, bytes]]:
    """The same stream three ways: `/ts/`, `/jpg/` and `/png/` (PNG-prefixed)."""
    media = hls_media.ts_vod() / "v0"
    playlist = (media / "index.m3u8").read_text()
    segments = sorted(path.name for path in media.glob("*.ts"))
    by_path: dict[str, IResource] = {}
    originals: dict[str, bytes] = {}
    for kind, extension, content_type, prefix in (
        ("ts", "ts", b"video/mp2t", b""),
        ("jpg", "jpg", b"image/jpeg", b""),
        ("png", "png", b"image/png", PNG),
    ):
        text = playlist.replace(".ts\n", f".{extension}\n")
        by_path[f"/{kind}/index.m3u8"] = Body(text.encode())
        for name in segments:
            data = (media / name).read_bytes()
            disguised = name.replace(".ts", f".{extension}")
            originals[f"/{kind}/{disguised}"] = data
            by_path[f"/{kind}/{disguised}"] = Body(prefix + data, content_type)
    return Tree(by_path), originals


class DisguisedSegmentTests(TestCase):
    timeout = 120

    async def test_ts_named_jpg_and_ts_behind_a_png_play_like_the_ts(self) -> None:
        tree, _ = disguised_tree()
        origin, recording = start_origin(self, tree)
        proxy = start_proxy(self)
        direct = await framemd5(f"{origin}/ts/index.m3u8")
        self.assertGreater(len(direct), 150)
        for kind in ("ts", "jpg", "png"):
            proxied = await framemd5(proxied_url(proxy, f"{origin}/{kind}/index.m3u8"))
            self.assertEqual(proxied, direct, kind)
        self.assertTrue(any(path.endswith(".png") for path in recording.paths()))

    async def test_a_stripped_segment_is_cached_stripped_with_its_length(self) -> None:
        tree, originals = disguised_tree()
        origin, recording = start_origin(self, tree)
        proxy = start_proxy(self)
        http = client(self)
        entry = proxied_url(proxy, f"{origin}/png/index.m3u8")
        playlist = (await (await http.get(entry)).content()).decode()
        ref = next(line for line in playlist.splitlines() if line.endswith(".png.ts"))
        url = urljoin(entry, ref)
        for _ in range(2):  # from the upstream, then from the segment cache
            response = await http.get(url)
            body = await response.content()
            self.assertEqual(body, originals["/png/seg000.png"])
            self.assertEqual(response.length, len(body))  # the Agent's Content-Length
            self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"video/mp2t"])
        self.assertEqual(sum(path.endswith("seg000.png") for path in recording.paths()), 1)

    async def test_a_relayed_answer_is_stripped_too(self) -> None:
        # A Range with If-Range is relayed on its own (no fan-out); an origin that
        # ignores Range answers 200 with the whole disguised body.
        tree, originals = disguised_tree()
        origin, _ = start_origin(self, tree)
        proxy = start_proxy(self)
        http = client(self)
        entry = proxied_url(proxy, f"{origin}/png/index.m3u8")
        playlist = (await (await http.get(entry)).content()).decode()
        ref = next(line for line in playlist.splitlines() if line.endswith(".png.ts"))
        headers = {b"range": [b"bytes=0-"], b"if-range": [b'"v1"']}
        response = await http.get(urljoin(entry, ref), headers=headers)
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), originals["/png/seg000.png"])
        self.assertEqual(response.length, len(originals["/png/seg000.png"]))
