"""hls_proxy.manifests: interstitial asset lists and content-steering manifests rewritten."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.errors import ProxyError
from hls_proxy.manifests import rewrite_asset_list, rewrite_steering_manifest
from hls_proxy.playlist import UriKind

BASE = "https://ads.example/slots/list.json?_HLS_primary_id=u1"


def tagged(url: str, kind: UriKind) -> str:
    return f"P:{kind.value}:{url}"


def asset_list(document: object) -> object:
    return json.loads(rewrite_asset_list(json.dumps(document).encode(), BASE, tagged))


def steering(document: object) -> object:
    return json.loads(rewrite_steering_manifest(json.dumps(document).encode(), BASE, tagged))


class AssetListTests(SynchronousTestCase):
    def test_every_asset_uri_is_a_proxied_playlist_resolved_against_the_list(self) -> None:
        document = {
            "ASSETS": [
                {"URI": "a/master.m3u8", "DURATION": 10.0},
                {"URI": "https://other.example/b.m3u8", "DURATION": 5},
                {"URI": "//cdn.example/c.m3u8?x=1", "DURATION": 5, "X-COM-EXTRA": [1]},
                {"URI": "data:application/x-mpegurl,#EXTM3U", "DURATION": 1},
                {"URI": 7},
                {"DURATION": 1},
                "junk",
            ],
            "SKIP-CONTROL": {"OFFSET": 5, "DURATION": 10},
        }
        self.assertEqual(
            asset_list(document),
            {
                "ASSETS": [
                    {"URI": "P:p:https://ads.example/slots/a/master.m3u8", "DURATION": 10.0},
                    {"URI": "P:p:https://other.example/b.m3u8", "DURATION": 5},
                    {"URI": "P:p:https://cdn.example/c.m3u8?x=1", "DURATION": 5, "X-COM-EXTRA": [1]},
                    {"URI": "data:application/x-mpegurl,#EXTM3U", "DURATION": 1},
                    {"URI": 7},
                    {"DURATION": 1},
                    "junk",
                ],
                "SKIP-CONTROL": {"OFFSET": 5, "DURATION": 10},
            },
        )  # fmt: skip

    def test_not_json_is_a_502(self) -> None:
        for body in [b"#EXTM3U\n", b"[1]", b"\xff", b""]:
            with self.assertRaises(ProxyError) as raised:
                rewrite_asset_list(body, BASE, tagged)
            self.assertEqual(raised.exception.status, 502)

    def test_a_bom_and_unicode_survive(self) -> None:
        body = '\ufeff{"ASSETS":[],"X-TITLE":"Pâté"}'.encode()
        self.assertEqual(
            json.loads(rewrite_asset_list(body, BASE, tagged)), {"ASSETS": [], "X-TITLE": "Pâté"}
        )


class SteeringTests(SynchronousTestCase):
    def test_reload_uri_is_a_proxied_steering_manifest(self) -> None:
        document = {"VERSION": 1, "TTL": 300, "RELOAD-URI": "../steer2?session=9",
                    "PATHWAY-PRIORITY": ["CDN-A", "CDN-B"]}  # fmt: skip
        self.assertEqual(
            steering(document),
            {"VERSION": 1, "TTL": 300, "RELOAD-URI": "P:s:https://ads.example/steer2?session=9",
             "PATHWAY-PRIORITY": ["CDN-A", "CDN-B"]},
        )  # fmt: skip

    def test_clones_that_change_host_are_removed_the_others_proxied(self) -> None:
        document = {
            "VERSION": 1,
            "TTL": 10,
            "PATHWAY-PRIORITY": ["CDN-C", "CDN-A", "CDN-D", "CDN-B"],
            "PATHWAY-CLONES": [
                {"BASE-ID": "CDN-A", "ID": "CDN-C",
                 "URI-REPLACEMENT": {"HOST": "backup.example", "PARAMS": {"p": "1"}}},
                {"BASE-ID": "CDN-A", "ID": "CDN-D",
                 "URI-REPLACEMENT": {"PARAMS": {"p": "2"},
                                     "PER-VARIANT-URIS": {"v1": "/d/v1.m3u8", "v2": 3},
                                     "PER-RENDITION-URIS": {"en": "https://d.example/en.m3u8"}}},
                {"BASE-ID": "CDN-A", "ID": "CDN-E"},
            ],
        }  # fmt: skip
        self.assertEqual(
            steering(document),
            {
                "VERSION": 1,
                "TTL": 10,
                "PATHWAY-PRIORITY": ["CDN-A", "CDN-D", "CDN-B"],
                "PATHWAY-CLONES": [
                    {"BASE-ID": "CDN-A", "ID": "CDN-D",
                     "URI-REPLACEMENT": {
                         "PER-VARIANT-URIS": {"v1": "P:p:https://ads.example/d/v1.m3u8", "v2": 3},
                         "PER-RENDITION-URIS": {"en": "P:p:https://d.example/en.m3u8"}}},
                    {"BASE-ID": "CDN-A", "ID": "CDN-E"},
                ],
            },
        )  # fmt: skip

    def test_not_an_object_is_a_502(self) -> None:
        with self.assertRaises(ProxyError):
            rewrite_steering_manifest(b'"x"', BASE, tagged)
