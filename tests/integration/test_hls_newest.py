"""The newest HLS through the real proxy on loopback: variables, interstitials, steering."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin

from twisted.trial.unittest import TestCase

from .harness import client, proxied_url, start_origin, start_proxy
from .origin import Body, Tree

JSON = b"application/json"

MASTER = b"""#EXTM3U
#EXT-X-DEFINE:QUERYPARAM="sid"
#EXT-X-DEFINE:NAME="dir",VALUE="v"
#EXT-X-CONTENT-STEERING:SERVER-URI="/steer.json?video=1",PATHWAY-ID="A"
#EXT-X-STREAM-INF:BANDWIDTH=800000,PATHWAY-ID="A",STABLE-VARIANT-ID="low"
{$dir}/index.m3u8?sid={$sid}
"""
VARIANT = b"""#EXTM3U
#EXT-X-DEFINE:IMPORT="sid"
#EXT-X-DEFINE:IMPORT="dir"
#EXT-X-TARGETDURATION:2
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T17:00:00.000Z
#EXT-X-DATERANGE:ID="ad1",CLASS="com.apple.hls.interstitial",START-DATE="2026-11-24T17:00:00.000Z",X-ASSET-LIST="/ads/list.json?slot={$dir}"
#EXT-X-DATERANGE:ID="ad2",CLASS="com.apple.hls.interstitial",START-DATE="2026-11-24T17:00:02.000Z",X-ASSET-URI="/ads/b/master.m3u8"
#EXTINF:2.0,
s1.ts?sid={$sid}
#EXT-X-ENDLIST
"""
ASSETS = {"ASSETS": [{"URI": "a/master.m3u8", "DURATION": 2.0}]}
STEERING = {
    "VERSION": 1,
    "TTL": 300,
    "RELOAD-URI": "steer.json?video=1&again=1",
    "PATHWAY-PRIORITY": ["B", "A"],
    "PATHWAY-CLONES": [{"BASE-ID": "A", "ID": "B", "URI-REPLACEMENT": {"HOST": "b.example"}}],
}


def children(body: bytes, served_at: str = "/") -> list[str]:
    """Proxy paths of a playlist's children (a child playlist lists them relative to itself)."""
    text = body.decode()
    found = re.findall(r'(?:URI|X-ASSET-LIST|X-ASSET-URI)="([^"]+)"', text)
    found += [line for line in text.splitlines() if line and not line.startswith("#")]
    return [urljoin(served_at, reference) for reference in found]


def tree() -> Tree:
    return Tree(
        {
            "/tv/master.m3u8": Body(MASTER),
            "/tv/v/index.m3u8": Body(VARIANT),
            "/tv/v/s1.ts": Body(b"\x47" * 188, b"video/mp2t"),
            "/ads/list.json": Body(json.dumps(ASSETS).encode(), JSON),
            "/ads/a/master.m3u8": Body(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"),
            "/ads/b/master.m3u8": Body(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"),
            "/steer.json": Body(json.dumps(STEERING).encode(), JSON),
        }
    )


async def steering_uri(http: Any, proxy: str, origin: str) -> str:
    """The proxied SERVER-URI of the test master, as the proxy rewrote it."""
    master = await (await http.get(proxied_url(proxy, origin + "/tv/master.m3u8?sid=t"))).content()
    return re.findall(r'SERVER-URI="(/p/[^"]+)"', master.decode())[0]


class NewestHlsTests(TestCase):
    async def test_queryparam_and_import_resolve_in_the_proxy(self) -> None:
        origin, recording = start_origin(self, tree())
        proxy = start_proxy(self)
        http = client(self)
        master = await (
            await http.get(proxied_url(proxy, origin + "/tv/master.m3u8?sid=T%2F1"))
        ).content()
        self.assertNotIn(b"EXT-X-DEFINE", master)
        self.assertNotIn(b"{$", master)
        variant_url = next(uri for uri in children(master) if uri.endswith("index.m3u8"))
        variant = await (await http.get(proxy + variant_url)).content()
        self.assertNotIn(b"EXT-X-DEFINE", variant)
        self.assertNotIn(b"{$", variant)
        segment = next(uri for uri in children(variant, variant_url) if uri.endswith(".ts"))
        self.assertEqual((await http.get(proxy + segment)).code, 200)
        paths = recording.paths()
        # QUERYPARAM decoded from the upstream URL, then used in a URI (re-encoded).
        self.assertIn("/tv/v/index.m3u8?sid=T/1", paths)
        self.assertIn("/tv/v/s1.ts?sid=T/1", paths)
        self.assertFalse(any("#" in path or "hlsproxy" in path for path in paths), paths)

    async def test_undefined_variable_is_a_502_naming_it(self) -> None:
        origin, _ = start_origin(self, tree())
        proxy = start_proxy(self)
        response = await client(self).get(proxied_url(proxy, origin + "/tv/master.m3u8"))
        self.assertEqual(response.code, 502)
        self.assertIn(b"sid", await response.content())

    async def test_interstitial_assets_and_asset_list_come_through_the_proxy(self) -> None:
        origin, recording = start_origin(self, tree())
        proxy = start_proxy(self)
        http = client(self)
        master = await (
            await http.get(proxied_url(proxy, origin + "/tv/master.m3u8?sid=t"))
        ).content()
        variant_url = next(uri for uri in children(master) if uri.endswith("index.m3u8"))
        variant = await (await http.get(proxy + variant_url)).content()
        found = [
            (name, urljoin(variant_url, reference))
            for name, reference in re.findall(r'X-ASSET-(LIST|URI)="([^"]+)"', variant.decode())
        ]
        self.assertEqual([name for name, _ in found], ["LIST", "URI"])
        listed = await http.get(
            proxy + found[0][1] + "?_HLS_primary_id=9f1c-AB&_HLS_start_offset=1.5&other=x"
        )
        self.assertEqual(listed.code, 200)
        self.assertEqual(listed.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(listed.headers.getRawHeaders("cache-control"), ["no-cache"])
        assets = json.loads(await listed.content())
        asset_uri = assets["ASSETS"][0]["URI"]
        # Absolute: hls.js reads asset URIs with no base URL.
        self.assertTrue(asset_uri.startswith(proxy + "/p/"), asset_uri)
        self.assertEqual(assets["ASSETS"][0]["DURATION"], 2.0)
        asset = await http.get(asset_uri + "?_HLS_primary_id=9f1c-AB")
        self.assertEqual(asset.code, 200)
        self.assertIn(b"/p/", await asset.content())
        direct = await http.get(proxy + found[1][1])
        self.assertEqual(direct.code, 200)
        paths = recording.paths()
        self.assertIn("/ads/list.json?slot=v&_HLS_primary_id=9f1c-AB&_HLS_start_offset=1.5", paths)
        self.assertIn("/ads/a/master.m3u8?_HLS_primary_id=9f1c-AB", paths)
        self.assertIn("/ads/b/master.m3u8", paths)

    async def test_steering_manifest_reload_uri_proxied_and_host_clones_removed(self) -> None:
        origin, recording = start_origin(self, tree())
        proxy = start_proxy(self)
        http = client(self)
        server_uri = await steering_uri(http, proxy, origin)
        self.assertTrue(server_uri.endswith("/steer.json"), server_uri)
        response = await http.get(proxy + server_uri + "?_HLS_pathway=A&_HLS_throughput=123456")
        self.assertEqual(response.code, 200)
        manifest = json.loads(await response.content())
        self.assertEqual(manifest["PATHWAY-CLONES"], [])
        self.assertEqual(manifest["PATHWAY-PRIORITY"], ["A"])
        self.assertTrue(manifest["RELOAD-URI"].startswith(proxy + "/p/"), manifest)
        again = await http.get(manifest["RELOAD-URI"] + "?_HLS_pathway=A&_HLS_pathway=x")
        self.assertEqual(again.code, 200)
        self.assertIn("RELOAD-URI", json.loads(await again.content()))
        paths = recording.paths()
        self.assertIn("/steer.json?video=1&_HLS_pathway=A&_HLS_throughput=123456", paths)
        self.assertIn("/steer.json?video=1&again=1&_HLS_pathway=A", paths)

    async def test_invalid_hls_parameter_values_stay_with_the_proxy(self) -> None:
        origin, recording = start_origin(self, tree())
        proxy = start_proxy(self)
        http = client(self)
        server_uri = await steering_uri(http, proxy, origin)
        response = await http.get(proxy + server_uri + "?_HLS_pathway=a%26b&_HLS_throughput=-1")
        self.assertEqual(response.code, 200)
        self.assertIn("/steer.json?video=1", recording.paths())

    async def test_json_uris_use_the_public_url_when_configured(self) -> None:
        origin, _ = start_origin(self, tree())
        proxy = start_proxy(self, public_url="https://hls.example/")
        http = client(self)
        server_uri = await steering_uri(http, proxy, origin)
        manifest = json.loads(await (await http.get(proxy + server_uri)).content())
        self.assertTrue(manifest["RELOAD-URI"].startswith("https://hls.example/p/"), manifest)
