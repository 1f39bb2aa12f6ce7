"""The playlist rewriter over a corpus of real-world shapes, plus property tests."""

from __future__ import annotations

import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.playlist import UriKind, looks_like_playlist, playlist_info, rewrite_playlist

BASE = "https://cdn.example/live/chan/index.m3u8?token=t0"


def tagged(url: str, kind: UriKind) -> str:
    """A reversible stand-in for the signer: P<kind>[<url>]."""
    return f"P{kind.value}[{url}]"


def rewrite(text: str, base: str = BASE) -> str:
    return rewrite_playlist(text.encode(), base, tagged).decode()


MASTER = """#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SESSION-DATA:DATA-ID="com.example.title",URI="meta/title.json"
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://key-id",KEYFORMAT="com.apple.streamingkeydelivery"
#EXT-X-SESSION-KEY:METHOD=AES-128,URI="../keys/session.key"
#EXT-X-CONTENT-STEERING:SERVER-URI="/steer?video=1",PATHWAY-ID="CDN-A"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",LANGUAGE="en",NAME="English, main",DEFAULT=YES,URI="audio/en.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Deutsch",LANGUAGE="de",URI="subs/de.m3u8"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",INSTREAM-ID="CC1"
#EXT-X-STREAM-INF:BANDWIDTH=1280000,CODECS="avc1.4d401f,mp4a.40.2",AUDIO="aac",SUBTITLES="subs"
# a comment between the tag and its URI
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,RESOLUTION=1280x720
//other.example/high/index.m3u8?sig=abc
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI="iframes/low.m3u8"
"""

LL_HLS = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:9
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=24
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-SKIP:SKIPPED-SEGMENTS=3
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T17:00:00.000Z
#EXTINF:4.00008,
fileSequence269.mp4
#EXT-X-PART:DURATION=0.33334,URI="filePart270.0.mp4",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI="filePart270.1.mp4"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="filePart270.2.mp4"
#EXT-X-RENDITION-REPORT:URI="../1M/waitForMSN.php",LAST-MSN=270,LAST-PART=1
"""

BYTERANGE = """#EXTM3U
#EXT-X-TARGETDURATION:10
#EXT-X-VERSION:4
#EXT-X-MAP:URI="main.mp4",BYTERANGE="720@0"
#EXTINF:10.0,
#EXT-X-BYTERANGE:75232@720
main.mp4
#EXTINF:10.0,
#EXT-X-BYTERANGE:82112
main.mp4
#EXT-X-ENDLIST
"""


class CorpusTests(SynchronousTestCase):
    def test_master_every_uri_kind_and_everything_else_kept(self) -> None:
        out = rewrite(MASTER).splitlines()
        expected = MASTER.splitlines()
        expected[2] = (
            '#EXT-X-SESSION-DATA:DATA-ID="com.example.title",'
            'URI="Pm[https://cdn.example/live/chan/meta/title.json]"'
        )
        expected[4] = (
            '#EXT-X-SESSION-KEY:METHOD=AES-128,URI="Pk[https://cdn.example/live/keys/session.key]"'
        )
        expected[5] = (
            '#EXT-X-CONTENT-STEERING:SERVER-URI="Ps[https://cdn.example/steer?video=1]",'
            'PATHWAY-ID="CDN-A"'
        )
        expected[6] = expected[6].replace(
            'URI="audio/en.m3u8"', 'URI="Pp[https://cdn.example/live/chan/audio/en.m3u8]"'
        )
        expected[7] = expected[7].replace(
            'URI="subs/de.m3u8"', 'URI="Pp[https://cdn.example/live/chan/subs/de.m3u8]"'
        )
        expected[11] = "Pp[https://cdn.example/live/chan/low/index.m3u8]"
        expected[13] = "Pp[https://other.example/high/index.m3u8?sig=abc]"
        expected[14] = (
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,"
            'URI="Pp[https://cdn.example/live/chan/iframes/low.m3u8]"'
        )
        self.assertEqual(out, expected)

    def test_ll_hls_parts_hints_reports_and_maps(self) -> None:
        out = rewrite(LL_HLS)
        for uri, kind in [
            ("https://cdn.example/live/chan/init.mp4", "m"),
            ("https://cdn.example/live/chan/fileSequence269.mp4", "m"),
            ("https://cdn.example/live/chan/filePart270.0.mp4", "m"),
            ("https://cdn.example/live/chan/filePart270.2.mp4", "m"),
            ("https://cdn.example/live/1M/waitForMSN.php", "p"),
        ]:
            self.assertIn(f"P{kind}[{uri}]", out)
        self.assertIn("#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n", out)
        self.assertIn("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,", out)

    def test_byte_ranges_keep_their_tags(self) -> None:
        out = rewrite(BYTERANGE)
        self.assertIn(
            '#EXT-X-MAP:URI="Pm[https://cdn.example/live/chan/main.mp4]",BYTERANGE="720@0"', out
        )
        self.assertEqual(out.count("Pm[https://cdn.example/live/chan/main.mp4]"), 3)
        self.assertIn("#EXT-X-BYTERANGE:75232@720\n", out)

    def test_relative_forms(self) -> None:
        cases = {
            "seg.ts": "https://cdn.example/live/chan/seg.ts",
            "./seg.ts": "https://cdn.example/live/chan/seg.ts",
            "../seg.ts": "https://cdn.example/live/seg.ts",
            "../../../../seg.ts": "https://cdn.example/seg.ts",
            "/root/seg.ts": "https://cdn.example/root/seg.ts",
            "//edge.example/seg.ts": "https://edge.example/seg.ts",
            "?part=2": "https://cdn.example/live/chan/index.m3u8?part=2",
            "seg.ts#t=5": "https://cdn.example/live/chan/seg.ts",
            "a%20b.ts?x=%2F": "https://cdn.example/live/chan/a%20b.ts?x=%2F",
            "http://abs.example/x.ts": "http://abs.example/x.ts",
            "sub/dir/seg.ts?q=a:b": "https://cdn.example/live/chan/sub/dir/seg.ts?q=a:b",
        }
        for uri, resolved in cases.items():
            out = rewrite(f"#EXTM3U\n#EXTINF:1,\n{uri}\n")
            self.assertEqual(out, f"#EXTM3U\n#EXTINF:1,\nPm[{resolved}]\n", uri)

    def test_non_http_uris_and_variables_are_left_alone(self) -> None:
        for uri in ("skd://key", "data:text/plain;base64,AAAA", "urn:x:y", "ftp://h/x.ts",
                    "{$host}/seg.ts"):  # fmt: skip
            text = f'#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI="{uri}"\n#EXTINF:1,\n{uri}\n'
            self.assertEqual(rewrite(text), text, uri)

    def test_line_endings_bom_and_missing_final_newline(self) -> None:
        crlf = "#EXTM3U\r\n#EXTINF:1,\r\nseg.ts\r\n#EXT-X-ENDLIST"
        self.assertEqual(
            rewrite(crlf),
            "#EXTM3U\r\n#EXTINF:1,\r\nPm[https://cdn.example/live/chan/seg.ts]\r\n#EXT-X-ENDLIST",
        )
        body = "\ufeff#EXTM3U\n#EXTINF:1,\n  seg.ts  \n\n#EXT-UNKNOWN:FOO=1\r\n".encode()
        out = rewrite_playlist(body, BASE, tagged).decode()
        self.assertEqual(
            out,
            "#EXTM3U\n#EXTINF:1,\n  Pm[https://cdn.example/live/chan/seg.ts]  \n\n#EXT-UNKNOWN:FOO=1\r\n",
        )

    def test_unknown_tags_with_uri_are_rewritten_and_quoted_commas_kept(self) -> None:
        text = '#EXTM3U\n#EXT-X-FUTURE:NAME="a,URI=b",URI="x/y.bin",Z=1\n'
        self.assertEqual(
            rewrite(text),
            '#EXTM3U\n#EXT-X-FUTURE:NAME="a,URI=b",URI="Pm[https://cdn.example/live/chan/x/y.bin]",Z=1\n',
        )

    def test_invalid_utf8_survives_byte_for_byte(self) -> None:
        body = b"#EXTM3U\n#EXTINF:1,caf\xe9 \xff\nseg.ts\n"
        out = rewrite_playlist(body, BASE, tagged)
        self.assertEqual(
            out, b"#EXTM3U\n#EXTINF:1,caf\xe9 \xff\nPm[https://cdn.example/live/chan/seg.ts]\n"
        )

    def test_looks_like_playlist(self) -> None:
        for head, expected in [
            (b"#EXTM3U\n", True), (b"\xef\xbb\xbf#EXTM3U", True), (b"  \r\n#EXTM3U", True),
            (b"#EXTINF", False), (b"\x47\x40\x00", False), (b"", False), (b"<html>", False),
        ]:  # fmt: skip
            self.assertEqual(looks_like_playlist(head), expected, head)

    def test_playlist_info(self) -> None:
        live = playlist_info(LL_HLS.encode(), BASE)
        self.assertEqual((live.is_master, live.is_live), (False, True))
        self.assertEqual((live.target_duration_s, live.part_target_s), (4.0, 0.33334))
        self.assertEqual(live.segment_urls, ("https://cdn.example/live/chan/fileSequence269.mp4",))
        master = playlist_info(MASTER.encode(), BASE)
        self.assertEqual((master.is_master, master.is_live, master.segment_urls), (True, False, ()))
        vod = playlist_info(BYTERANGE.encode(), BASE)
        self.assertFalse(vod.is_live)
        self.assertIsNone(
            playlist_info(b"#EXTM3U\n#EXT-X-TARGETDURATION:x\n", BASE).target_duration_s
        )

    def test_fifty_thousand_segments_rewrite_quickly(self) -> None:
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4"]
        for index in range(50_000):
            lines += ["#EXTINF:4.0,", f"seg{index}.ts?token=abc"]
        body = ("\n".join(lines) + "\n").encode()
        started = time.perf_counter()
        out = rewrite_playlist(body, BASE, tagged)
        self.assertLess(time.perf_counter() - started, 1.0)
        self.assertEqual(out.count(b"Pm[https://cdn.example/live/chan/seg"), 50_000)


_LINE = st.one_of(
    st.sampled_from([
        "#EXTM3U", "#EXTINF:4,", "#EXT-X-ENDLIST", "#EXT-X-STREAM-INF:BANDWIDTH=1", "",
        '#EXT-X-KEY:METHOD=AES-128,URI="k.key"', '#EXT-X-MAP:URI="../i.mp4",BYTERANGE="1@0"',
        '#EXT-X-MEDIA:TYPE=AUDIO,URI="a b.m3u8",NAME="x,y"', "# comment", "skd://x",
        '#EXT-X-PART:URI="?p=1"', '#EXT-UNKNOWN:URI="',
    ]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
)  # fmt: skip
_LINE_SPLIT = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")
_URI_IN_OUTPUT = re.compile(r"P([pmk])\[([0-9a-f]*)\]")


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=400), st.sampled_from([BASE, "http://h", "https://h/a/b/"]))
    def test_never_raises_on_any_bytes_and_identity_loses_nothing(
        self, body: bytes, base: str
    ) -> None:
        out = rewrite_playlist(body, base, lambda url, kind: "X")
        lines_in = _LINE_SPLIT.findall(body.removeprefix(b"\xef\xbb\xbf"))
        lines_out = _LINE_SPLIT.findall(out)
        self.assertEqual(len(lines_in), len(lines_out))
        for before, after in zip(lines_in, lines_out, strict=True):
            if before.startswith(b"#") and b"URI=" not in before:
                self.assertEqual(before, after)  # tags and comments are kept byte for byte

    @settings(max_examples=200, deadline=None)
    @given(st.lists(_LINE, max_size=30), st.sampled_from(["\n", "\r\n"]))
    def test_every_rewritten_uri_maps_back_to_its_resolved_input(
        self, lines: list[str], ending: str
    ) -> None:
        text = ending.join(line.replace("\r", "").replace("\n", "") for line in lines)
        resolved_by_marker: list[str] = []

        def remember(url: str, kind: UriKind) -> str:
            resolved_by_marker.append(url)
            return f"P{kind.value}[{url.encode().hex()}]"

        out = rewrite_playlist(text.encode(), BASE, remember).decode()
        found = [bytes.fromhex(match.group(2)).decode() for match in _URI_IN_OUTPUT.finditer(out)]
        self.assertEqual(
            found[-len(resolved_by_marker) :] if resolved_by_marker else [], resolved_by_marker
        )
        for url in resolved_by_marker:
            self.assertTrue(url.startswith(("http://", "https://")), url)
        # Undoing the markers gives back the input except for the URIs themselves.
        self.assertEqual(out.count(ending), text.count(ending))


_MEDIA_LINE = st.one_of(
    _LINE,
    st.sampled_from([
        "seg1.ts", "seg2.ts?t=a", "https://cdn.example/x/s3.ts", "http://o.example/s4.ts",
        "a/./b.ts", "../up.ts", "/root.ts", "?q=1", ".hidden.ts", "sub/s5.ts", "seg 6.ts",
        "s{$v}.ts", "s7.ts#f", "x:y.ts", "HTTPS://cdn.example/s8.ts", "s\\9.ts", "sé.ts",
        "https:/cdn.example/s10.ts", " padded.ts ", "https://cdn.example/a/../s11.ts",
    ]),
)  # fmt: skip


class BatchTests(SynchronousTestCase):
    """Plain segment lines are proxied many at a time (`media_urls`): the same answers,
    in the same order, as one URI at a time."""

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(_MEDIA_LINE, max_size=40),
        st.sampled_from(["\n", "\r\n"]),
        st.sampled_from([BASE, "http://h", "https://h/a/b/"]),
    )
    def test_batches_answer_as_one_uri_at_a_time(
        self, lines: list[str], ending: str, base: str
    ) -> None:
        text = ending.join(line.replace("\r", "").replace("\n", "") for line in lines)
        batched: list[tuple[str, UriKind]] = []
        batches: list[list[str]] = []

        def proxy(url: str, kind: UriKind) -> str:
            batched.append((url, kind))
            return f"P{kind.value}[{url.encode().hex()}]"

        def many(urls: list[str]) -> list[str]:
            batches.append(urls)
            return [proxy(url, UriKind.MEDIA) for url in urls]

        out = rewrite_playlist(text.encode(), base, proxy, many)
        one_at_a_time: list[tuple[str, UriKind]] = []
        self.assertEqual(out, _one_line_at_a_time(text, ending, base, one_at_a_time))
        self.assertEqual(batched, one_at_a_time)

    def test_a_big_playlist_goes_in_batches_and_odd_lines_alone(self) -> None:
        names = [f"seg{n}.ts" for n in range(1000)]
        names[500] = "../odd.ts"
        body = ("#EXTM3U\n" + "".join(f"#EXTINF:4,\n{name}\n" for name in names)).encode()
        calls: list[int] = []
        singles: list[str] = []

        def many(urls: list[str]) -> list[str]:
            calls.append(len(urls))
            return ["X"] * len(urls)

        def single(url: str, kind: UriKind) -> str:
            singles.append(url)
            return "Y"

        out = rewrite_playlist(body, BASE, single, many)
        self.assertEqual(singles, ["https://cdn.example/live/odd.ts"])
        self.assertEqual(sum(calls), 999)
        self.assertLess(len(calls), 30)  # halves around the odd line, not one call per line
        self.assertEqual(out.count(b"\nX\n"), 999)


def _one_line_at_a_time(
    text: str, ending: str, base: str, calls: list[tuple[str, UriKind]]
) -> bytes:
    """The reference: `text` rewritten line by line, each URI proxied alone, in order
    (a lone CR in a body takes that path of rewrite_playlist)."""

    def proxy(url: str, kind: UriKind) -> str:
        calls.append((url, kind))
        return f"P{kind.value}[{url.encode().hex()}]"

    lone_cr = (text.replace(ending, "\r") + "\r").encode()
    out = rewrite_playlist(lone_cr, base, proxy).removesuffix(b"\r")
    return out.replace(b"\r", ending.encode())


class BrowserResolutionTests(SynchronousTestCase):
    """URIs a browser resolves to another host are resolved that way and proxied."""

    def test_backslashes_and_scheme_without_slashes_as_the_whatwg_url_standard(self) -> None:
        body = (
            b"#EXTM3U\n#EXTINF:4,\nhttp:\\\\evil.example\\x.ts\n#EXTINF:4,\n"
            b"http:other.example/y.ts\n#EXTINF:4,\nhttps:/same-scheme/z.ts\n#EXTINF:4,\n"
            b"\\\\back.example\\w.ts\n"
        )
        seen: list[str] = []

        def proxy_url(url: str, kind: UriKind) -> str:
            seen.append(url)
            return "/p/x"

        out = rewrite_playlist(body, "https://o.example/dir/p.m3u8", proxy_url)
        self.assertEqual(
            seen,
            [
                "http://evil.example/x.ts",
                "http://other.example/y.ts",
                "https://o.example/same-scheme/z.ts",
                "https://back.example/w.ts",
            ],
        )
        self.assertEqual(out.count(b"/p/x"), 4, "nothing left for the player to fetch directly")
