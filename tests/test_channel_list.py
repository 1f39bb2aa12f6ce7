"""The channel-list rewriter and its header dialects, pure (no I/O)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.catchup import PLACEHOLDER
from hls_proxy.channel_list import Channel, GroupFilter, ListRewriter, looks_like_list
from hls_proxy.list_dialects import Malformed, attributes, split_pipe


class FakeMinter:
    """Records the channels and answers `P<n>` for the n-th one."""

    def __init__(self) -> None:
        self.channels: list[Channel] = []
        self.templates: list[str] = []

    def channel(self, channel: Channel) -> str:
        self.channels.append(channel)
        return f"P{len(self.channels)}"

    def catchup_source(self, channel: Channel, template: str) -> str:
        self.templates.append(template)
        return "C" + "".join(PLACEHOLDER.findall(template))

    def epg(self, url: str) -> str:
        return "E(" + url + ")"


def rewrite(text: bytes, groups: GroupFilter | None = None) -> tuple[bytes, FakeMinter]:
    minter = FakeMinter()
    rewriter = ListRewriter(minter, groups or GroupFilter(), "http://lists.example/dir/l.m3u")
    out = [rewriter.feed(line) for line in text.splitlines(keepends=True)]
    return b"".join(out) + rewriter.finish(), minter


EVERY_DIALECT = b"""\
#EXTM3U x-tvg-url="http://epg.example/a.xml.gz, http://epg.example/b.xml" tvg-shift=0
# a comment
#EXTINF:-1 tvg-id="one" group-title="News",One, with a comma
#EXTVLCOPT:http-referrer=https://site.example/
#EXTVLCOPT:http-user-agent=UA one
#EXTVLCOPT:http-origin=https://site.example
#EXTVLCOPT:network-caching=1000
http://cdn.example/one/index.m3u8
#EXTINF:-1 group-title="Sports",Two
http://cdn.example/two.ts|User-Agent=UA%20two&Referer=https://r.example/?a=1&b=2
#EXTINF:-1 group-title="Sports;Extra",Three
http://cdn.example/3|User-Agent="UA=three&x"|Referer=https://r3.example/
#EXTINF:-1 user-agent="UA four" group-title="Movies",Four
#EXTHTTP:{"Referer": "https://four.example/", "Cookie": "a=b"}
http://cdn.example/four/playlist.m3u8
#EXTINF:-1,Five
#KODIPROP:inputstream.adaptive.manifest_type=hls
#KODIPROP:inputstream.adaptive.stream_headers=User-Agent=UA5&X-Custom-Header=v=5
http://cdn.example/five.php
#EXTINF:-1,Radio
rtmp://live.example/app/radio
#EXTINF:-1,Bad header
#EXTHTTP:{not json
relative/six.m3u8\r
"""


class RewriteTests(SynchronousTestCase):
    def test_every_dialect_gives_each_channel_its_own_headers(self) -> None:
        _, minter = rewrite(EVERY_DIALECT)
        got = [(c.url, dict(c.headers), c.hls) for c in minter.channels]
        self.assertEqual(
            got,
            [
                (
                    "http://cdn.example/one/index.m3u8",
                    {"referer": "https://site.example/", "user-agent": "UA one",
                     "origin": "https://site.example"},
                    True,
                ),
                (
                    "http://cdn.example/two.ts",
                    {"user-agent": "UA two", "referer": "https://r.example/?a=1&b=2"},
                    False,
                ),
                (
                    "http://cdn.example/3",
                    {"user-agent": "UA=three&x", "referer": "https://r3.example/"},
                    False,
                ),
                (
                    "http://cdn.example/four/playlist.m3u8",
                    {"user-agent": "UA four", "referer": "https://four.example/", "cookie": "a=b"},
                    True,
                ),
                ("http://cdn.example/five.php", {"user-agent": "UA5", "x-custom-header": "v=5"},
                 True),
                ("http://lists.example/dir/relative/six.m3u8", {}, True),
            ],
        )  # fmt: skip

    def test_only_applied_header_lines_and_pipes_change(self) -> None:
        out, _ = rewrite(EVERY_DIALECT)
        expected = (
            EVERY_DIALECT.replace(
                b"http://epg.example/a.xml.gz, http://epg.example/b.xml",
                b"E(http://epg.example/a.xml.gz), E(http://epg.example/b.xml)",
            )
            .replace(b"#EXTVLCOPT:http-referrer=https://site.example/\n", b"")
            .replace(b"#EXTVLCOPT:http-user-agent=UA one\n", b"")
            .replace(b"#EXTVLCOPT:http-origin=https://site.example\n", b"")
            .replace(b'#EXTHTTP:{"Referer": "https://four.example/", "Cookie": "a=b"}\n', b"")
            .replace(
                b"#KODIPROP:inputstream.adaptive.stream_headers=User-Agent=UA5&X-Custom-Header=v=5\n",
                b"",
            )
        )
        lines = expected.splitlines(keepends=True)
        urls = [i for i, line in enumerate(lines) if line.startswith((b"http", b"relative"))]
        for n, index in enumerate(urls, start=1):
            ending = b"\r\n" if lines[index].endswith(b"\r\n") else b"\n"
            lines[index] = b"P%d" % n + ending
        self.assertEqual(out, b"".join(lines))

    def test_malformed_header_line_is_kept_and_the_channel_still_proxied(self) -> None:
        out, minter = rewrite(b"#EXTM3U\n#EXTINF:-1,X\n#EXTHTTP:{oops\nhttp://a.example/x.ts\n")
        self.assertEqual(out, b"#EXTM3U\n#EXTINF:-1,X\n#EXTHTTP:{oops\nP1\n")
        self.assertEqual(minter.channels[0].headers, ())

    def test_malformed_pipe_leaves_the_entry_untouched(self) -> None:
        text = b'#EXTM3U\n#EXTINF:-1,X\nhttp://a.example/x.ts|User-Agent="unterminated\n'
        out, minter = rewrite(text)
        self.assertEqual(out, text)
        self.assertEqual(minter.channels, [])

    def test_header_lines_of_a_non_http_entry_are_kept(self) -> None:
        text = b"#EXTINF:-1,R\n#EXTVLCOPT:http-user-agent=U\nrtmp://a.example/live\n"
        self.assertEqual(rewrite(text)[0], text)

    def test_bytes_that_are_not_utf8_survive(self) -> None:
        text = b"#EXTM3U\n#EXTINF:-1,Caf\xe9 \xff\nhttp://a.example/x.m3u8\n"
        self.assertEqual(rewrite(text)[0], b"#EXTM3U\n#EXTINF:-1,Caf\xe9 \xff\nP1\n")

    def test_entry_without_url_is_passed_on(self) -> None:
        text = b"#EXTINF:-1,Lost\n#EXTINF:-1,Found\nhttp://a.example/x.m3u8\n#trailing\n"
        self.assertEqual(rewrite(text)[0], b"#EXTINF:-1,Lost\n#EXTINF:-1,Found\nP1\n#trailing\n")


class FilterTests(SynchronousTestCase):
    def kept(self, include: str, exclude: str) -> list[str]:
        _, minter = rewrite(EVERY_DIALECT, GroupFilter.parse(include, exclude))
        return [channel.url.rsplit("/", 1)[-1] for channel in minter.channels]

    def test_group_keeps_only_matching_groups_case_insensitively(self) -> None:
        self.assertEqual(self.kept("news,SPORTS", ""), ["index.m3u8", "two.ts", "3"])

    def test_globs_and_exclusion(self) -> None:
        self.assertEqual(self.kept("*o*", "sp*"), ["playlist.m3u8"])  # Movies only
        self.assertEqual(self.kept("", "extra"), ["index.m3u8", "two.ts", "playlist.m3u8",
                                                   "five.php", "six.m3u8"])  # fmt: skip

    def test_extgrp_counts_as_a_group(self) -> None:
        text = b"#EXTINF:-1,A\n#EXTGRP:Kids\nhttp://a.example/a.ts\n#EXTINF:-1,B\nhttp://b/b.ts\n"
        out, _ = rewrite(text, GroupFilter.parse("kids", ""))
        self.assertEqual(out, b"#EXTINF:-1,A\n#EXTGRP:Kids\nP1\n")


class CatchupTests(SynchronousTestCase):
    def test_catchup_source_template_is_rewritten_in_place(self) -> None:
        text = (
            b'#EXTINF:-1 catchup="default" catchup-source="http://a.example/x.m3u8?s={utc}&e=${end}"'
            b" tvg-id=x,T\nhttp://a.example/live.m3u8\n"
        )
        out, minter = rewrite(text)
        self.assertEqual(
            out,
            b'#EXTINF:-1 catchup="default" catchup-source="C{utc}${end}" tvg-id=x,T\nP1\n',
        )
        self.assertEqual(minter.channels[0].catchup, "default")

    def test_append_mode_from_the_header_line_applies_to_entries(self) -> None:
        text = b'#EXTM3U catchup="append" catchup-source="?utc={utc}"\n#EXTINF:-1,T\nhttp://a/b\n'
        out, minter = rewrite(text)
        self.assertEqual(out, text.replace(b"http://a/b", b"P1"))
        self.assertEqual(minter.channels[0].catchup, "append")


class DialectTests(SynchronousTestCase):
    def test_pipe_values_with_equals_and_ampersands(self) -> None:
        cases = {
            "u|Referer=https://x/?a=b&c=d": (("referer", "https://x/?a=b&c=d"),),
            "u|User-Agent=A&Referer=B": (("user-agent", "A"), ("referer", "B")),
            "u|User-Agent=A|Referer=B": (("user-agent", "A"), ("referer", "B")),
            "u|Cookie=k=v%26w&origin=O": (("cookie", "k=v&w"), ("origin", "O")),
            "u|referrer='q|r'": (("referer", "q|r"),),
            "u|": (),
        }
        for line, headers in cases.items():
            self.assertEqual(split_pipe(line), ("u", headers), line)

    def test_unusable_pipes_are_malformed(self) -> None:
        for line in ("u|Host=x", "u|User-Agent", 'u|A="x', "u|A=caf\u20ac"):
            self.assertRaises(Malformed, split_pipe, line)

    def test_attributes_stop_at_the_title(self) -> None:
        found, end = attributes('#EXTINF:-1 a="x,y" B=z,Title c="d"', True)
        self.assertEqual([(a.name, a.value) for a in found], [("a", "x,y"), ("b", "z")])
        self.assertEqual(end, len('#EXTINF:-1 a="x,y" B=z'))

    def test_list_detection(self) -> None:
        self.assertEqual(looks_like_list(b"\xef\xbb\xbf \n#EXTM3U"), "m3u")
        self.assertEqual(looks_like_list(b"#EXTINF:-1,x"), "extinf")
        self.assertIsNone(looks_like_list(b"<!DOCTYPE html>"))
