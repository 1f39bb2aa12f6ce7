"""The quick count that refuses a hostile playlist before any rewrite work."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.playlist import rewrite_playlist
from hls_proxy.playlists import _uri_lines_estimate


class UriEstimateTests(SynchronousTestCase):
    def test_the_estimate_is_the_number_of_uri_lines_for_ordinary_playlists(self) -> None:
        for body in [
            b"#EXTM3U\n" + b"a\n" * 10,
            b"#EXTM3U\n#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n",
            b"#EXTM3U\r\n#EXTINF:1,\r\na.ts\r\n#EXT-X-ENDLIST\r\n",
            b"#EXTM3U\n\n#EXTINF:1,\n\nseg.ts",
            b"\xef\xbb\xbf#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n# a comment\n",
        ]:
            self.assertEqual(_uri_lines_estimate(body), _uris_rewritten(body), body)


def _uris_rewritten(body: bytes) -> int:
    uris: list[str] = []

    def proxy_url(url: str, kind: object) -> str:
        uris.append(url)
        return url

    rewrite_playlist(body, "https://h/i.m3u8", proxy_url)
    return len(uris)
