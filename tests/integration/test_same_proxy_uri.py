"""One upstream URI, one proxy URI within a stream: a key listed in the multivariant
playlist (EXT-X-SESSION-KEY) and in a media playlist (EXT-X-KEY), a segment listed again
at the next reload, also when LL-HLS directives change the playlist's URL."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from twisted.trial.unittest import TestCase
from twisted.web.server import Request

from .harness import client, proxied_url, start_origin, start_proxy
from .origin import Body, Scripted, Tree

MASTER = b"""#EXTM3U
#EXT-X-SESSION-KEY:METHOD=AES-128,URI="keys/k1.key"
#EXT-X-STREAM-INF:BANDWIDTH=400000
v0/index.m3u8
"""


def live_window(request: Request) -> bytes:
    """A live playlist whose window starts at _HLS_msn (the reload the player asks for)."""
    first = int((request.args or {}).get(b"_HLS_msn", [b"0"])[0])
    segments = "".join(f"#EXTINF:1,\nseg{n}.ts\n" for n in range(first, first + 3))
    return (
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n"
        f"#EXT-X-MEDIA-SEQUENCE:{first}\n"
        '#EXT-X-KEY:METHOD=AES-128,URI="../keys/k1.key",IV=0x1\n' + segments
    ).encode()


def uris(base: str, body: bytes) -> dict[str, str]:
    """What each upstream name in the playlist became: the absolute proxy path."""
    found: dict[str, str] = {}
    for line in body.decode().splitlines():
        if 'URI="' in line:
            tag, ref = line.split(":", 1)[0], line.split('URI="', 1)[1].split('"', 1)[0]
            found[tag] = urlsplit(urljoin(base, ref)).path
        elif line and not line.startswith("#"):
            path = urlsplit(urljoin(base, line)).path
            found[path.rsplit("/", 1)[1]] = path  # by file name
    return found


class SameProxyUriTests(TestCase):
    async def test_session_key_and_key_and_a_reloaded_segment_keep_their_proxy_uri(self) -> None:
        tree = Tree({"/master.m3u8": Body(MASTER), "/v0/index.m3u8": Scripted(live_window)})
        origin, _ = start_origin(self, tree)
        proxy = start_proxy(self)
        http = client(self)
        entry = proxied_url(proxy, origin + "/master.m3u8?token=T1")
        master = uris(entry, await (await http.get(entry)).content())
        variant = proxy + master["index.m3u8"]
        first = uris(variant, await (await http.get(variant + "?_HLS_msn=5")).content())
        second = uris(variant, await (await http.get(variant + "?_HLS_msn=6")).content())
        self.assertEqual(first["#EXT-X-KEY"], master["#EXT-X-SESSION-KEY"])
        self.assertEqual(second["#EXT-X-KEY"], master["#EXT-X-SESSION-KEY"])
        for name in ("seg6.ts", "seg7.ts"):
            self.assertEqual(first[name], second[name])

    async def test_an_entry_media_playlist_keeps_its_childrens_uris_across_ll_hls_reloads(
        self,
    ) -> None:
        origin, recording = start_origin(self, Tree({"/v0/index.m3u8": Scripted(live_window)}))
        proxy = start_proxy(self)
        http = client(self)
        entry = proxied_url(proxy, origin + "/v0/index.m3u8?token=T1")
        first = uris(entry, await (await http.get(entry + "&_HLS_msn=5")).content())
        second = uris(entry, await (await http.get(entry + "&_HLS_msn=6")).content())
        self.assertEqual(
            [record.path.split("?")[1] for record in recording.seen],
            ["token=T1&_HLS_msn=5", "token=T1&_HLS_msn=6"],
        )
        for name in ("seg6.ts", "seg7.ts", "#EXT-X-KEY"):
            self.assertEqual(first[name], second[name], name)
