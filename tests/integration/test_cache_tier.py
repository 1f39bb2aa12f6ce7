"""A real nginx cache tier (deploy/nginx/hlsproxy-cache.conf) in front of two hlsproxy
instances with one secret."""

from __future__ import annotations

import os
import re
from pathlib import Path

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.tools import require_tool

from .harness import client, later, proxied_url, reactor, start_origin, start_proxy
from .origin import Body, Tree

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "hlsproxy-cache.conf"


class _Exited(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_nginx(case: TestCase, backends: list[str]) -> str:
    nginx = require_tool("nginx")
    state = Path(case.mktemp()).resolve()
    state.mkdir(parents=True)
    port = _free_port()
    servers = "\n        ".join(f"server {backend.split('//')[1]};" for backend in backends)
    text = CONFIG.read_text()
    for name, value in {
        "state": str(state),
        "servers": servers,
        "listen": f"127.0.0.1:{port}",
    }.items():
        text = text.replace("{" + name + "}", value)
    text = text.replace("worker_processes auto;", "worker_processes 1;")
    if os.geteuid() == 0:  # nginx would drop to "nobody", who cannot write the test's dirs
        text = "user root;\n" + text
    config = state / "nginx.conf"
    config.write_text(text)
    exited = _Exited()
    process = reactor.spawnProcess(
        exited, nginx, [nginx, "-c", str(config), "-g", "daemon off;", "-p", str(state)],
        env=None,
    )  # fmt: skip

    async def stop() -> None:
        if exited.ended.called:
            return
        process.signalProcess("TERM")
        await exited.ended

    case.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    http = client(case)
    # Polled on the wall clock: nginx tells nothing when it is ready. Bounded: it starts
    # in well under a second.
    for _ in range(100):
        try:
            answer = await http.get(f"http://127.0.0.1:{port}/health")
            await answer.content()
            if answer.code == 200:
                return f"http://127.0.0.1:{port}"
        except Exception:
            pass
        if exited.ended.called:
            raise AssertionError((state / "error.log").read_text())
        await later(0.05)
    raise AssertionError("nginx did not start")


LIVE = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{seq}\n#EXTINF:2,\nseg{seq}.ts\n"


class CacheTierTests(TestCase):
    timeout = 60

    async def test_hits_range_cors_live_refresh_and_origin_load(self) -> None:
        segment_body = bytes(range(256)) * 400
        playlist = Body(LIVE.format(seq=1).encode())
        tree = Tree({"/live.m3u8": playlist, "/seg1.ts": Body(segment_body, b"video/mp2t"),
                     "/seg2.ts": Body(segment_body, b"video/mp2t")})  # fmt: skip
        origin, recording = start_origin(self, tree)
        first, second = start_proxy(self), start_proxy(self)
        tier = await start_nginx(self, [first, second])
        http = client(self)

        entry = proxied_url("", origin + "/live.m3u8")
        answer = await http.get(tier + entry)
        text = (await answer.content()).decode()
        self.assertEqual(answer.code, 200, text)
        [segment] = re.findall(r"^/p/\S+$", text, re.M)
        self.assertEqual(answer.headers.getRawHeaders("x-cache-status"), ["MISS"])
        self.assertEqual(answer.headers.getRawHeaders("access-control-allow-origin"), ["*"])

        # 100 viewers of a segment through the tier: one request reaches the origin.
        before = recording.paths().count("/seg1.ts")
        answers = await gatherResults([http.get(tier + segment) for _ in range(100)])
        bodies = await gatherResults([a.content() for a in answers])
        self.assertEqual(set(bodies), {segment_body})
        self.assertEqual(recording.paths().count("/seg1.ts") - before, 1)
        hit = await http.get(tier + segment)
        await hit.content()
        self.assertEqual(hit.headers.getRawHeaders("x-cache-status"), ["HIT"])
        self.assertEqual(hit.headers.getRawHeaders("access-control-allow-origin"), ["*"])

        ranged = await http.get(tier + segment, headers={"Range": "bytes=1000-1999"})
        self.assertEqual(ranged.code, 206)
        self.assertEqual(await ranged.content(), segment_body[1000:2000])
        self.assertEqual(ranged.headers.getRawHeaders("x-cache-status"), ["HIT"])

        # The live playlist is refreshed within its max-age (half the target duration).
        playlist.body = LIVE.format(seq=2).encode()
        refreshed = False
        for _ in range(60):  # wall clock, as it is about an expiry; bounded: max-age is 1 s
            body = await (await http.get(tier + entry)).content()
            if b"seg2.ts" in body:
                refreshed = True
                break
            await later(0.1)
        self.assertTrue(refreshed, "live playlist never refreshed through the tier")

        # Without the tier, the same 100 viewers spread over both instances: 2 fetches.
        before = recording.paths().count("/seg2.ts")
        seg2 = re.findall(r"^/p/\S+$", body.decode(), re.M)[0]
        direct = await gatherResults([http.get((first, second)[i % 2] + seg2) for i in range(100)])
        await gatherResults([a.content() for a in direct])
        self.assertEqual(recording.paths().count("/seg2.ts") - before, 2)
