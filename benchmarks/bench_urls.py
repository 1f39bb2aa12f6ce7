"""Child URL cost: format 1 (`child_path`) against format 3 (`minter`), in one run.

    python3 benchmarks/bench_urls.py          # a few seconds; pure CPU, no network

For a 50,000-segment VOD media playlist with a token query on every URI, measures the
time to mint every reference (alone, and as the whole `rewrite_playlist`) and the size of
the rewritten playlist, in the two places a media playlist is served from: as a child of
a proxied master (format 3 writes relative references) and straight from an entry
request (path-absolute ones). Then the length of one child of a "locked" stream (Chrome
User-Agent, Referer, Origin, a 200-character cookie, an Akamai `hdnts=` token). Each
time is the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree, not an install

from common import CHROME, akamai_token, locked_headers

from hls_proxy.playlist import UriKind, rewrite_playlist
from hls_proxy.signing import Signer, StreamSpec

SEGMENTS = 50_000
TOKEN = "token=" + "".join(random.Random(1).choices(string.ascii_letters + string.digits, k=43))
BASE = "https://vod.example-cdn.com/hls/movie-12345"
MASTER = f"{BASE}/master.m3u8?{TOKEN}"
MEDIA = f"{BASE}/1080p/index.m3u8?{TOKEN}"


def vod_playlist(segments: int) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for number in range(1, segments + 1):
        lines += ["#EXTINF:4.0,", f"seg{number:05d}.ts?{TOKEN}"]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def plain_stream() -> StreamSpec:
    return StreamSpec("b3JkaW5hcnkx", (("accept", "*/*"), ("user-agent", CHROME)))


def locked_stream() -> tuple[StreamSpec, str]:
    """A stream a CDN locks to its site (common.locked_headers, and what a browser adds),
    and its Akamai-tokened master URL."""
    directory = "/hls/live/2012345/channel1"
    headers = {**locked_headers(), "accept": "*/*", "accept-language": "en-US,en;q=0.9"}
    url = f"https://akamai-live.example-cdn.net{directory}/master.m3u8?{akamai_token(directory)}"
    spec = StreamSpec("AbCdEfGhIjKl", tuple(sorted(headers.items())), (("derived", "origin"),))
    return spec, url


def best_s(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--segments", type=int, default=SEGMENTS)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    repeat = max(1, min(args.repeat, 50))
    body = vod_playlist(max(1, min(args.segments, 1_000_000)))
    urls: list[str] = []
    rewrite_playlist(body, MEDIA, lambda url, kind: urls.append(url) or url)
    signer, spec = Signer(b"bench-secret"), plain_stream()

    # Format 1: the stream part and the whole URL in every reference.
    part = signer.stream_part(spec)

    def old_ref(url: str, kind: UriKind) -> str:
        return signer.child_path(part, url, kind)

    # Format 3 under a proxied master: the media playlist is served at /p/3X/index.m3u8.
    variant = signer.minter(spec, MASTER).ref(MEDIA, UriKind.PLAYLIST)
    parent = signer.verify(variant[len("/p/") :].split("/"))

    # What a rewrite is given: a reference per URI, and (format 3) many media at once.
    Refs = tuple[Callable[[str, UriKind], str], Callable[[list[str]], list[str]] | None]

    def child_minter() -> Refs:
        minter = signer.minter(spec, MEDIA, parent)
        return minter.ref, minter.media_refs

    def entry_minter() -> Refs:
        minter = signer.minter(spec, MEDIA)
        return minter.ref, minter.media_refs

    def mint_all(make: Callable[[], Refs]) -> Callable[[], list[str]]:
        def mint() -> list[str]:
            ref, many = make()
            return many(urls) if many else [ref(url, UriKind.MEDIA) for url in urls]

        return mint

    def rewrite(make: Callable[[], Refs]) -> Callable[[], bytes]:
        return lambda: rewrite_playlist(body, MEDIA, *make())

    cases: list[tuple[str, Callable[[], Refs]]] = [
        ("format 1 child_path", lambda: (old_ref, None)),
        ("format 3, under a proxied master", child_minter),
        ("format 3, entry request", entry_minter),
    ]
    identity_s = best_s(lambda: rewrite_playlist(body, MEDIA, lambda url, kind: url), repeat)
    print(f"{len(urls):,} segments, upstream playlist {len(body):,} bytes")
    print(f"rewrite_playlist with no minting: {identity_s * 1000:.0f} ms\n")
    print(
        f"{'':34} {'mint ms':>8} {'rewrite ms':>11} {'bytes':>12} {'x upstream':>11} {'B/ref':>6}"
    )
    baseline_s = 0.0
    for name, make in cases:
        mint_s = best_s(mint_all(make), repeat)
        rewrite_s = best_s(rewrite(make), repeat)
        size = len(rewrite(make)())
        refs = mint_all(make)()
        per_ref = sum(map(len, refs)) / len(refs)
        baseline_s = baseline_s or mint_s
        print(
            f"{name:34} {mint_s * 1000:8.0f} {rewrite_s * 1000:11.0f} {size:12,} "
            f"{size / len(body):10.2f}x {per_ref:6.0f}"
            + ("" if mint_s == baseline_s else f"   mint {mint_s / baseline_s:.2f}x format 1")
        )
    upstream_ref = len(f"seg00001.ts?{TOKEN}")
    print(f"(B/ref: mean length of a reference; of the upstream one: {upstream_ref})\n")

    locked, master = locked_stream()
    locked_variant = master.replace("master.m3u8", "720p/index.m3u8")
    locked_segment = master.replace("master.m3u8", "720p/seg-1.ts")
    old_signer = Signer(b"bench-secret")
    old_path = old_signer.child_path(
        old_signer.stream_part(locked), locked_variant, UriKind.PLAYLIST
    )
    entry = signer.minter(locked, master)
    lengths = [
        ("format 1 child_path", old_path),
        ("format 3 playlist child /p/3X/name", entry.ref(locked_variant, UriKind.PLAYLIST)),
        ("format 3 media child /p/3X/C/name", entry.ref(locked_segment, UriKind.MEDIA)),
    ]
    cookie = dict(locked.headers)["cookie"]
    print(f"locked stream ({len(master)}-char URL, {len(cookie)}-char cookie), from an entry:")
    for name, path in lengths:
        segments = path[len("/p/") :].split("/")
        verify_s = best_s(lambda s=segments: [signer.verify(s) for _ in range(1000)], repeat) / 1000
        print(f"  {name:36} {len(path):4} chars, verify {verify_s * 1e6:5.1f} us")


if __name__ == "__main__":
    main()
