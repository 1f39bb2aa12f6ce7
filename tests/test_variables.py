"""hls_proxy.variables: EXT-X-DEFINE resolved by the proxy (tables, then the carried form)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.errors import ProxyError
from hls_proxy.variables import (
    MAX_CARRIED_CHARS,
    carry_definitions,
    resolve_variables,
    split_carried,
)

URL = "https://cdn.example/live/index.m3u8?token=abc%2Fd&e=+1&empty="
BIG = 1 << 20


def resolve(text: str, imported: dict[str, str] | None = None, url: str = URL) -> str:
    return resolve_variables(text.encode(), url, imported, BIG).body.decode()


class ResolveTests(SynchronousTestCase):
    def test_table(self) -> None:
        cases = [
            # NAME/VALUE in URI lines and in quoted attribute values; DEFINE lines dropped
            ('#EXTM3U\n#EXT-X-DEFINE:NAME="h",VALUE="https://o.example"\n#EXTINF:1,\n{$h}/s.ts\n',
             "#EXTM3U\n#EXTINF:1,\nhttps://o.example/s.ts\n"),
            ('#EXTM3U\r\n#EXT-X-DEFINE:NAME="k",VALUE="k1"\r\n#EXT-X-KEY:METHOD=AES-128,URI="{$k}.key",IV=0x{$k}\r\n',
             '#EXTM3U\r\n#EXT-X-KEY:METHOD=AES-128,URI="k1.key",IV=0xk1\r\n'),
            # QUERYPARAM: the playlist URL's parameter, decoded as URLSearchParams does
            ('#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="token"\n#EXT-X-DEFINE:QUERYPARAM="e"\ns.ts?t={$token}&e={$e}\n',
             "#EXTM3U\ns.ts?t=abc/d&e= 1\n"),
            ('#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="empty"\ns{$empty}.ts\n', "#EXTM3U\ns.ts\n"),
            # IMPORT: from the multivariant playlist that led here
            ('#EXTM3U\n#EXT-X-DEFINE:IMPORT="cdn"\n#EXT-X-MAP:URI="{$cdn}/init.mp4"\n',
             '#EXTM3U\n#EXT-X-MAP:URI="https://i.example/init.mp4"\n'),
            # a VALUE may use earlier definitions (hls.js substitutes it too)
            ('#EXTM3U\n#EXT-X-DEFINE:NAME="a",VALUE="x"\n#EXT-X-DEFINE:NAME="b",VALUE="{$a}y"\n{$b}.ts\n',
             "#EXTM3U\nxy.ts\n"),
            # comments, EXTINF titles and unreferenced braces are left alone
            ('#EXTM3U\n# {$nothing}\n#EXTINF:1,{$title}\n{x}.ts\n', "#EXTM3U\n# {$nothing}\n#EXTINF:1,{$title}\n{x}.ts\n"),
            # names are [A-Za-z0-9_-]; `{$a b}` is not a reference
            ('#EXTM3U\n#EXT-X-DEFINE:NAME="a-b_1",VALUE="v"\n{$a-b_1}{$a b}.ts\n', "#EXTM3U\nv{$a b}.ts\n"),
            # no variables at all: the very same bytes
            ("#EXTM3U\n#EXTINF:1,\ns.ts\n", "#EXTM3U\n#EXTINF:1,\ns.ts\n"),
        ]  # fmt: skip
        for text, expected in cases:
            self.assertEqual(resolve(text, {"cdn": "https://i.example"}), expected, text)

    def test_errors_name_the_variable_and_are_502(self) -> None:
        cases = [
            ("#EXTM3U\n{$missing}/s.ts\n", "'missing'"),
            ('#EXTM3U\n#EXT-X-KEY:URI="{$k}"\n#EXT-X-DEFINE:NAME="k",VALUE="late"\n', "'k'"),
            ('#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="absent"\n', "'absent'"),
            ('#EXTM3U\n#EXT-X-DEFINE:IMPORT="nope"\n', "'nope'"),
            ('#EXTM3U\n#EXT-X-DEFINE:NAME="d",VALUE="1"\n#EXT-X-DEFINE:NAME="d",VALUE="2"\n', "'d'"),
            ('#EXTM3U\n#EXT-X-DEFINE:VALUE="1"\n', "EXT-X-DEFINE"),
        ]  # fmt: skip
        for text, named in cases:
            with self.assertRaises(ProxyError) as raised:
                resolve(text, {"cdn": "x"})
            self.assertEqual(raised.exception.status, 502, text)
            self.assertIn(named, raised.exception.message, text)

    def test_queryparam_takes_the_first_value_as_urlsearchparams_does(self) -> None:
        text = '#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="a"\ns.ts?a={$a}\n'
        self.assertEqual(
            resolve(text, url="https://o.example/i.m3u8?a=1&a=2"), "#EXTM3U\ns.ts?a=1\n"
        )

    def test_import_without_a_multivariant_parent_is_a_502(self) -> None:
        with self.assertRaises(ProxyError):
            resolve('#EXTM3U\n#EXT-X-DEFINE:IMPORT="cdn"\n', None)

    def test_expansion_is_bounded_while_it_grows(self) -> None:
        value = "v" * 1000
        text = f'#EXTM3U\n#EXT-X-DEFINE:NAME="v",VALUE="{value}"\n' + "{$v}" * 5000 + "\n"
        with self.assertRaises(ProxyError) as raised:
            resolve_variables(text.encode(), URL, None, 100_000)
        self.assertIn("expand", raised.exception.message)
        ok = resolve_variables(text.encode(), URL, None, 6_000_000).body
        self.assertEqual(len(ok), len("#EXTM3U\n") + 5_000_000 + 1)

    def test_what_children_are_given(self) -> None:
        master = (
            '#EXTM3U\n#EXT-X-DEFINE:NAME="cdn",VALUE="https://c.example"\n'
            '#EXT-X-DEFINE:QUERYPARAM="token"\n#EXT-X-STREAM-INF:BANDWIDTH=1\n{$cdn}/v.m3u8\n'
        )
        resolved = resolve_variables(master.encode(), URL, None, BIG)
        self.assertEqual(resolved.carried, {"cdn": "https://c.example", "token": "abc/d"})
        media = '#EXTM3U\n#EXT-X-DEFINE:NAME="own",VALUE="1"\n#EXTINF:1,\ns{$own}.ts\n'
        imported = {"cdn": "https://c.example"}
        self.assertEqual(resolve_variables(media.encode(), URL, imported, BIG).carried, imported)
        self.assertEqual(
            resolve_variables(b"#EXTM3U\ns.ts\n", URL, imported, BIG).carried, imported
        )
        plain_master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"
        self.assertEqual(resolve_variables(plain_master, URL, imported, BIG).carried, {})


class CarriedTests(SynchronousTestCase):
    def test_round_trip_through_the_fragment(self) -> None:
        definitions = {"cdn": "https://c.example/a?b=1#x", "tök": "ü"}
        url = carry_definitions("https://o.example/v.m3u8?x=1", definitions)
        self.assertTrue(url.startswith("https://o.example/v.m3u8?x=1#hlsproxy-define="), url)
        self.assertNotIn("=", url.partition("#hlsproxy-define=")[2])  # padding-free base64url
        self.assertEqual(split_carried(url), ("https://o.example/v.m3u8?x=1", definitions))

    def test_nothing_carried(self) -> None:
        self.assertEqual(
            carry_definitions("https://o.example/v.m3u8", {}), "https://o.example/v.m3u8"
        )
        self.assertEqual(
            split_carried("https://o.example/v.m3u8"), ("https://o.example/v.m3u8", None)
        )
        self.assertEqual(
            split_carried("https://o.example/v.m3u8#t=1"), ("https://o.example/v.m3u8#t=1", None)
        )

    def test_too_large_to_carry_is_not_carried(self) -> None:
        big = {"v": "x" * MAX_CARRIED_CHARS}
        self.assertEqual(
            carry_definitions("https://o.example/v.m3u8", big), "https://o.example/v.m3u8"
        )
