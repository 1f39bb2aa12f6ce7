"""Content-Type per resource: what ExoPlayer / MX Player pick their extractor by."""

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.media import content_type_for


class ContentTypeTests(SynchronousTestCase):
    def test_table(self) -> None:
        cases = [
            ("video/mp2t", "init.mp4", "video/mp4"),  # a misconfigured CDN, fixed
            ("video/mp2t", "seg.m4s", "video/mp4"),
            ("video/mp2t", "seg.ts", "video/mp2t"),
            ("", "seg.ts", "video/mp2t"),
            ("application/octet-stream", "seg.aac", "audio/aac"),
            ("binary/octet-stream", "movie.mp4", "video/mp4"),
            ("text/plain", "subs.vtt", "text/vtt"),
            ("application/octet-stream", "key.key", "application/octet-stream"),
            ("video/mp4", "weird.ts", "video/mp4"),  # a specific upstream type is kept
            ("audio/mpeg", "a.mp3", "audio/mpeg"),
            ("", "blob.bin", "application/octet-stream"),
        ]
        for upstream, name, expected in cases:
            self.assertEqual(content_type_for(upstream, name), expected, (upstream, name))
