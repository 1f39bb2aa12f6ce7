"""Self-healing streams: rendition matching, sequence numbers, what child URLs carry, and
the Healer's coalescing and once-per-target-duration limit on a Clock."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.errors import ProxyError
from hls_proxy.heal import Healer
from hls_proxy.playlist import UriKind, playlist_info, playlist_shape
from hls_proxy.renditions import find_rendition, rendition_ids, sequence_numbers
from hls_proxy.signing import Lineage, Signer, StreamSpec
from hls_proxy.streams import Stream
from hls_proxy.target import Target

ENTRY = "https://channel.example/live/42.m3u8"
CDN = "https://cdn.example/hls/abc/"
MASTER = b"""#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",URI="a_en.m3u8?t=1"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Deutsch",LANGUAGE="de",URI="a_de.m3u8?t=1"
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO="aud"
v360.m3u8?t=1
#EXT-X-STREAM-INF:BANDWIDTH=2400000,RESOLUTION=1280x720,AUDIO="aud"
v720.m3u8?t=1
"""
# The same channel a few minutes later: new tokens, new CDN path, another order.
FRESH = b"""#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=2400000,RESOLUTION=1280x720,AUDIO="aud"
https://cdn2.example/x/v720.m3u8?t=2
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Deutsch",LANGUAGE="de",URI="https://cdn2.example/x/a_de.m3u8?t=2"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",URI="https://cdn2.example/x/a_en.m3u8?t=2"
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO="aud"
https://cdn2.example/x/v360.m3u8?t=2
"""
STABLE = b"""#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=1000,STABLE-VARIANT-ID="hi"
hi.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=500,STABLE-VARIANT-ID="lo"
lo.m3u8
"""


def live(first: int, token: str, ended: bool = False) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for number in range(first, first + 3):
        lines += ["#EXTINF:4.0,", f"seg{number}.ts?t={token}"]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


class RenditionTests(SynchronousTestCase):
    def test_each_rendition_is_found_in_a_reordered_fresh_master(self) -> None:
        ids = rendition_ids(MASTER, CDN + "master.m3u8?t=1")
        self.assertEqual(len(ids), 4)
        fresh_base = "https://cdn2.example/x/master.m3u8?t=2"
        expected = {
            CDN + "v360.m3u8?t=1": "https://cdn2.example/x/v360.m3u8?t=2",
            CDN + "v720.m3u8?t=1": "https://cdn2.example/x/v720.m3u8?t=2",
            CDN + "a_en.m3u8?t=1": "https://cdn2.example/x/a_en.m3u8?t=2",
            CDN + "a_de.m3u8?t=1": "https://cdn2.example/x/a_de.m3u8?t=2",
        }
        for old_url, rendition in ids.items():
            self.assertEqual(find_rendition(FRESH, fresh_base, rendition), expected[old_url])
        self.assertTrue(all(len(rendition) <= 12 for rendition in ids.values()), ids)

    def test_a_variant_whose_attributes_changed_is_found_by_position(self) -> None:
        [first, second] = rendition_ids(STABLE.replace(b",STABLE-VARIANT-ID", b",X"), CDN).values()
        changed = STABLE.replace(b",STABLE-VARIANT-ID", b",X").replace(b"1000", b"1100")
        self.assertEqual(find_rendition(changed, CDN, first), CDN + "hi.m3u8")
        self.assertEqual(find_rendition(changed, CDN, second), CDN + "lo.m3u8")

    def test_a_stable_variant_id_wins_over_position_and_is_never_guessed(self) -> None:
        ids = rendition_ids(STABLE, CDN)
        swapped = b"#EXTM3U\n" + b"\n".join(STABLE.splitlines()[3:5] + STABLE.splitlines()[1:3])
        self.assertEqual(find_rendition(swapped, CDN, ids[CDN + "hi.m3u8"]), CDN + "hi.m3u8")
        gone = STABLE.replace(b'"hi"', b'"other"')
        self.assertIsNone(find_rendition(gone, CDN, ids[CDN + "hi.m3u8"]))

    def test_sequence_numbers_start_at_the_media_sequence(self) -> None:
        body = live(1700, "a")
        numbers = sequence_numbers(body, playlist_info(body, CDN + "v.m3u8"))
        self.assertEqual(numbers, {CDN + f"seg{n}.ts?t=a": n for n in (1700, 1701, 1702)})
        defined = body.replace(b"#EXTM3U\n", b'#EXTM3U\n#EXT-X-DEFINE:NAME="x",VALUE="1"\n')
        self.assertEqual(sequence_numbers(defined, playlist_info(defined, CDN)), {})

    def test_playlist_shape_by_byte_search(self) -> None:
        # (multivariant, ended)
        self.assertEqual(playlist_shape(MASTER), (True, False))
        self.assertEqual(playlist_shape(live(1, "a")), (False, False))
        self.assertEqual(playlist_shape(live(1, "a", ended=True)), (False, True))


SPEC = StreamSpec("s1", (("referer", "https://channel.example/"),))


class ChildUrlTests(SynchronousTestCase):
    def test_variants_carry_entry_and_rendition_segments_their_sequence(self) -> None:
        signer = Signer(b"k")
        master_url = CDN + "master.m3u8?t=1"
        ids = rendition_ids(MASTER, master_url)
        minter = signer.minter(SPEC, master_url, None, ENTRY)
        variant_url = CDN + "v720.m3u8?t=1"
        path = minter.ref(variant_url, UriKind.PLAYLIST, rendition=ids[variant_url])
        variant = signer.verify(path[len("/p/") :].split("/"))
        self.assertEqual(variant.lineage, Lineage(ENTRY, ids[variant_url]))
        # Its segments hang from it: lineage from X, the sequence number from C.
        ref = signer.minter(SPEC, variant_url, variant).ref(
            CDN + "seg1701.ts?t=1", UriKind.MEDIA, sequence=1701
        )
        segment_path = urlsplit(urljoin("http://proxy" + path, ref)).path
        segment = signer.verify(segment_path[len("/p/") :].split("/"))
        self.assertEqual((segment.url, segment.sequence), (CDN + "seg1701.ts?t=1", 1701))
        self.assertEqual(segment.lineage, variant.lineage)
        # The sequence costs a few characters per segment, not the entry URL.
        plain = signer.minter(SPEC, variant_url, variant).ref(CDN + "seg1701.ts?t=1", UriKind.MEDIA)
        self.assertLessEqual(len(ref) - len(plain), 4)

    def test_urls_minted_without_lineage_still_verify(self) -> None:
        signer = Signer(b"k")
        path = signer.minter(SPEC, CDN + "m.m3u8").ref(CDN + "v.m3u8", UriKind.PLAYLIST)
        target = signer.verify(path[len("/p/") :].split("/"))
        self.assertEqual(
            (target.url, target.lineage, target.sequence), (CDN + "v.m3u8", None, None)
        )

    def test_an_entry_media_playlist_is_its_own_lineage(self) -> None:
        signer = Signer(b"k")
        final = "https://cdn.example/tok/index.m3u8"
        ref = signer.minter(SPEC, final, None, ENTRY).ref(CDN + "s.ts", UriKind.MEDIA, sequence=7)
        segment = signer.verify(ref[len("/p/") :].split("/"))
        self.assertEqual((segment.lineage, segment.sequence), (Lineage(ENTRY, ""), 7))


class _Origin:
    """A scripted upstream: each fetch waits on a Deferred the test fires."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.pending: list[tuple[str, Deferred[tuple[str, bytes]]]] = []

    def fetch(self, stream: Any, url: str) -> Deferred[tuple[str, bytes]]:
        self.asked.append(url)
        d: Deferred[tuple[str, bytes]] = Deferred()
        self.pending.append((url, d))
        return d

    def answer(self, body: bytes | int, final_url: str | None = None) -> None:
        url, d = self.pending.pop(0)
        if isinstance(body, int):
            d.errback(ProxyError(body, f"upstream answered {body}"))
        else:
            d.callback((final_url or url, body))


def _master(token: str) -> bytes:
    return MASTER.replace(b"t=1", f"t={token}".encode())


class HealerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.origin = _Origin()
        self.healer = Healer(self.clock, self.origin.fetch)
        signer = Signer(b"k")
        master_url = CDN + "master.m3u8?t=1"
        self.variant_url = CDN + "v720.m3u8?t=1"
        rendition = rendition_ids(MASTER, master_url)[self.variant_url]
        path = signer.minter(SPEC, master_url, None, ENTRY).ref(
            self.variant_url, UriKind.PLAYLIST, rendition=rendition
        )
        self.variant = signer.verify(path[len("/p/") :].split("/"))
        ref = signer.minter(SPEC, self.variant_url, self.variant).ref(
            CDN + "seg11.ts?t=1", UriKind.MEDIA, sequence=11
        )
        segment = signer.verify(urlsplit(urljoin("http://p" + path, ref)).path[3:].split("/"))
        self.playlist_target = Target(SPEC, self.variant_url, UriKind.PLAYLIST, child=self.variant)
        self.segment_target = Target(SPEC, segment.url, UriKind.MEDIA, child=segment)
        self.stream: Any = Stream(SPEC, None, 0)  # type: ignore[arg-type]

    def recover(self, target: Target, status: int = 403) -> Deferred[Target]:
        coroutine = self.healer.recover(self.stream, target, ProxyError(status, "refused"))
        return Deferred.fromCoroutine(coroutine)

    def heal_once(self, token: str) -> list[Deferred[Target]]:
        """Ten viewers refused at once: one entry fetch, one playlist fetch, all healed."""
        waiting = [self.recover(self.healer.current(self.playlist_target)) for _ in range(10)]
        self.assertEqual(self.origin.asked[-1:], [ENTRY])
        self.origin.answer(_master(token), CDN + f"master.m3u8?t={token}")
        self.origin.answer(live(10, token))
        return waiting

    def test_ten_viewers_cost_one_re_resolve_and_keep_the_fresh_url(self) -> None:
        healed = [self.successResultOf(d).url for d in self.heal_once("2")]
        self.assertEqual(healed, [CDN + "v720.m3u8?t=2"] * 10)
        self.assertEqual((self.healer.resolves, len(self.origin.asked)), (1, 2))
        # Reloads go to the fresh URL at once: the expired one is not asked first.
        self.assertEqual(self.healer.current(self.playlist_target).url, CDN + "v720.m3u8?t=2")
        # A request that was refused with the old URL meanwhile gets the fresh one, free.
        self.assertEqual(self.successResultOf(self.recover(self.playlist_target)).url, healed[0])
        self.assertEqual(self.healer.resolves, 1)

    def test_at_most_one_re_resolve_per_target_duration(self) -> None:
        self.heal_once("2")
        fresh = self.healer.current(self.playlist_target)
        self.clock.advance(3.9)  # target duration 4: too soon; the refusal is passed on
        self.failureResultOf(self.recover(fresh), ProxyError)
        self.assertEqual(self.healer.resolves, 1)
        self.clock.advance(0.2)
        self.heal_once("3")
        self.assertEqual(self.healer.resolves, 2)
        self.assertEqual(self.healer.current(self.playlist_target).url, CDN + "v720.m3u8?t=3")

    def test_a_refused_entry_is_answered_with_its_status_once(self) -> None:
        waiting = [self.recover(self.playlist_target) for _ in range(3)]
        self.origin.answer(404)
        for d in waiting:
            self.assertEqual(self.failureResultOf(d, ProxyError).value.status, 404)
        self.assertEqual(self.failureResultOf(self.recover(self.playlist_target)).value.status, 404)
        self.assertEqual(self.origin.asked, [ENTRY])  # not asked again within the interval

    def test_a_failed_segment_is_retried_with_the_same_sequence_number(self) -> None:
        d = self.recover(self.segment_target)
        self.assertEqual(self.origin.asked, [self.variant_url])  # the playlist it came from
        self.origin.answer(403)  # expired too: re-resolve the entry
        self.origin.answer(_master("2"), CDN + "master.m3u8?t=2")
        self.origin.answer(live(10, "2"))
        self.assertEqual(self.successResultOf(d).url, CDN + "seg11.ts?t=2")
        self.assertEqual(self.healer.resolves, 1)

    def test_vod_and_other_statuses_are_left_alone(self) -> None:
        self.failureResultOf(self.recover(self.playlist_target, status=500), ProxyError)
        self.failureResultOf(self.recover(self.playlist_target, status=503), ProxyError)
        self.assertEqual(self.origin.asked, [])
        d = self.recover(self.playlist_target)
        self.origin.answer(_master("2"))
        self.origin.answer(live(10, "2", ended=True))
        self.assertEqual(self.failureResultOf(d, ProxyError).value.status, 403)

    def test_heal_off_per_stream_or_for_the_proxy(self) -> None:
        off = StreamSpec("s1", SPEC.headers, (("heal", "0"),))
        d = self.recover(Target(off, self.variant_url, UriKind.PLAYLIST, child=self.variant))
        self.failureResultOf(d, ProxyError)
        self.healer = Healer(self.clock, self.origin.fetch, enabled=False)
        self.failureResultOf(self.recover(self.playlist_target), ProxyError)
        self.assertEqual(self.origin.asked, [])


class SwitchTests(SynchronousTestCase):
    def test_heal_0_per_stream_and_heal_off_for_the_proxy(self) -> None:
        from hls_proxy.bypass import entry_stream
        from hls_proxy.errors import ProxyError as Refused
        from hls_proxy.tap import Options
        from hls_proxy.urls import parse_entry_query

        entry = parse_entry_query("url=https://a.example/x.m3u8&heal=0")
        self.assertEqual(entry.url, "https://a.example/x.m3u8")  # not given to the upstream
        self.assertEqual(entry_stream(entry, True).option("heal"), "0")
        on = entry_stream(parse_entry_query("url=https://a.example/x.m3u8"), True)
        self.assertEqual(on.option("heal", "1"), "1")
        self.assertRaises(Refused, parse_entry_query, "url=https://a.example/x.m3u8&heal=2")
        options = Options(environ={})
        options.parseOptions(["--heal", "off"])
        self.assertFalse(options.config().heal)
        options = Options(environ={})
        options.parseOptions([])
        self.assertTrue(options.config().heal)
