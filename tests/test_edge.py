"""The HTTP edge (channel.py): what a malformed or oversized request gets, with no socket."""

from __future__ import annotations

from io import BytesIO

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request

from hls_proxy.channel import MAX_HEADERS, MAX_REQUEST_LINE_BYTES
from hls_proxy.metrics import Metrics
from hls_proxy.observe import ObservedSite


class Ok(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        return b"ok"


class Connection:
    """One client connection to an ObservedSite over a StringTransport."""

    def __init__(self, site: ObservedSite) -> None:
        self.protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> bytes:
        self.protocol.dataReceived(data)
        return self.transport.value()

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def body_of(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


class EdgeTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.site = ObservedSite(Ok(), self.reactor, Metrics())
        self.spooled: list[object] = []
        # Twisted spools request bodies of 100 KB and more (or unknown length) to a file.
        self.patch(http.tempfile, "TemporaryFile", self._temporary_file)

    def _temporary_file(self, *args: object, **kwargs: object) -> BytesIO:
        self.spooled.append(args)
        return BytesIO()

    def connect(self) -> Connection:
        return Connection(self.site)

    def assert_refused(self, answer: bytes, connection: Connection, status: int) -> None:
        self.assertEqual(status_of(answer), status, answer[:200])
        self.assertIn(b"Connection: close\r\n", answer)
        self.assertTrue(body_of(answer).endswith(b"\n"))
        self.assertEqual(body_of(answer).count(b"\n"), 1)  # one line of text
        self.assertTrue(connection.closed)


class RequestLineTests(EdgeTestCase):
    def test_an_over_long_request_line_is_414_with_a_reason(self) -> None:
        connection = self.connect()
        answer = connection.send(b"GET /?url=" + b"a" * (MAX_REQUEST_LINE_BYTES + 10))
        self.assert_refused(answer, connection, 414)
        self.assertIn(b"request line longer than", body_of(answer))

    def test_an_over_long_request_line_with_its_crlf_is_414(self) -> None:
        connection = self.connect()
        line = b"GET /?" + b"a" * MAX_REQUEST_LINE_BYTES + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        self.assert_refused(connection.send(line), connection, 414)

    def test_a_request_line_as_long_as_a_child_url_is_served(self) -> None:
        connection = self.connect()
        path = b"/p/" + b"s" * 22_000 + b"/m" + b"u" * 22_000 + b".sig/seg.ts"
        answer = connection.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_of(answer), 200, answer[:200])
        self.assertFalse(connection.closed)

    def test_a_refusal_is_counted_and_keeps_no_url(self) -> None:
        connection = self.connect()
        connection.send(b"GET /secret-token" + b"a" * (MAX_REQUEST_LINE_BYTES + 10))
        rendered = self.site.metrics.render()
        self.assertIn(b'hlsproxy_requests_total{endpoint="edge",status="414"} 1.0', rendered)
        self.assertNotIn(b"secret-token", rendered)


class HeaderTests(EdgeTestCase):
    def test_too_many_headers_is_431(self) -> None:
        connection = self.connect()
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
        answer = connection.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        self.assert_refused(answer, connection, 431)
        self.assertIn(b"more than", body_of(answer))

    def test_headers_too_large_in_all_are_431(self) -> None:
        connection = self.connect()
        headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 4000) for i in range(10))
        answer = connection.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        self.assert_refused(answer, connection, 431)

    def test_one_endless_header_line_is_431_before_its_end(self) -> None:
        connection = self.connect()
        answer = connection.send(b"GET / HTTP/1.1\r\nCookie: " + b"c" * 40_000)
        self.assert_refused(answer, connection, 431)

    def test_ordinary_headers_are_served(self) -> None:
        connection = self.connect()
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS - 1))
        answer = connection.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        self.assertEqual(status_of(answer), 200, answer[:200])


class LineEndingTests(EdgeTestCase):
    def test_bare_lf_line_endings_are_400_at_once(self) -> None:
        for request in (
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"GET / HTTP/1.1\r\nHost: x\n\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\nX-B: 2\r\n\r\n",
            b"GET / HTTP/1.1\n",
        ):
            connection = self.connect()
            answer = connection.send(request)
            self.assert_refused(answer, connection, 400)
            self.assertIn(b"bare LF", body_of(answer), request)

    def test_a_bare_lf_split_across_reads_is_400(self) -> None:
        connection = self.connect()
        self.assertEqual(connection.send(b"GET / HTTP/1.1\r"), b"")
        self.assertEqual(connection.send(b"\nHost: x\r"), b"")  # CR, then LF: a CRLF
        self.assert_refused(connection.send(b"Y\n"), connection, 400)

    def test_obs_fold_is_400(self) -> None:
        for fold in (b" b", b"\tb"):
            connection = self.connect()
            answer = connection.send(
                b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n" + fold + b"\r\n\r\n"
            )
            self.assert_refused(answer, connection, 400)
            self.assertIn(b"obs-fold", body_of(answer))

    def test_twisteds_own_bad_request_gets_a_body_too(self) -> None:
        connection = self.connect()
        answer = connection.send(b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n")
        self.assert_refused(answer, connection, 400)

    def test_pipelined_requests_are_each_served(self) -> None:
        connection = self.connect()
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        answer = connection.send(request * 3)
        self.assertEqual(answer.count(b"HTTP/1.1 200 OK"), 3, answer)
        self.assertFalse(connection.closed)


class BodyTests(EdgeTestCase):
    def test_a_huge_content_length_is_413_at_the_header_and_never_spooled(self) -> None:
        connection = self.connect()
        answer = connection.send(
            b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n" + b"B" * 65536
        )
        self.assert_refused(answer, connection, 413)
        self.assertEqual(self.spooled, [])
        self.assertEqual(connection.send(b"B" * 65536), answer)  # nothing more is read

    def test_a_chunked_body_is_413_and_never_spooled(self) -> None:
        connection = self.connect()
        answer = connection.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"10000\r\n" + b"B" * 0x10000 + b"\r\n0\r\n\r\n"
        )
        self.assert_refused(answer, connection, 413)
        self.assertEqual(self.spooled, [])

    def test_an_empty_chunked_body_and_a_small_body_are_served(self) -> None:
        for request in (
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        ):
            connection = self.connect()
            answer = connection.send(request)
            self.assertEqual(status_of(answer), 200, answer[:200])
        self.assertEqual(self.spooled, [])
