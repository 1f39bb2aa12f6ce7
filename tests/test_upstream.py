"""Upstream: what a stream sends upstream, through an agent spy on a Clock (no sockets)."""

from __future__ import annotations

import base64
from collections.abc import Callable

from treq._agentspy import RequestRecord, _AgentSpy
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from zope.interface import implementer

from hls_proxy.cookies import MAX_COOKIE_HEADER_BYTES
from hls_proxy.errors import ProxyError
from hls_proxy.guard import UpstreamRefused
from hls_proxy.upstream import Upstream, split_userinfo

A = "http://a.example:8000"
B = "http://b.example:8000"


@implementer(IResponse)
class FakeResponse:
    """A response whose body is given, or held open until `finish()`."""

    def __init__(
        self,
        code: int = 200,
        headers: dict[bytes, list[bytes]] | None = None,
        body: bytes = b"",
        hold: bool = False,
    ) -> None:
        self.code = code
        self.phrase = b"X"
        self.version = (b"HTTP", 1, 1)
        self.headers = Headers(headers or {})
        self.length = UNKNOWN_LENGTH
        self.request = None
        self.previousResponse = None
        self._body = body
        self._hold = hold
        self.reader: IProtocol | None = None

    def deliverBody(self, protocol: IProtocol) -> None:
        self.reader = protocol
        protocol.makeConnection(StringTransport())
        if self._body:
            protocol.dataReceived(self._body)
        if not self._hold:
            self.finish()

    def finish(self) -> None:
        assert self.reader is not None
        self.reader.connectionLost(Failure(ResponseDone()))

    def setPreviousResponse(self, response: IResponse) -> None:
        self.previousResponse = response


Route = Callable[[str], FakeResponse | None]


class Spy:
    """An agent spy that answers each request by `route(url)` (None: never answers)."""

    def __init__(self, route: Route = lambda url: FakeResponse()) -> None:
        self.route = route
        self.records: list[RequestRecord] = []
        self.agent = _AgentSpy(self._record)

    def _record(self, record: RequestRecord) -> None:
        self.records.append(record)
        response = self.route(record.uri.decode())
        if response is not None:
            record.deferred.callback(response)

    def urls(self) -> list[str]:
        return [record.uri.decode() for record in self.records]

    def header(self, index: int, name: bytes) -> list[bytes] | None:
        headers = self.records[index].headers
        assert headers is not None
        return headers.getRawHeaders(name)


def redirect(location: str, code: int = 302) -> FakeResponse:
    return FakeResponse(code, {b"location": [location.encode()]})


class UpstreamCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.outcomes: list[tuple[int | None, Exception | None]] = []

    def upstream(
        self,
        spy: Spy,
        headers: tuple[tuple[str, str], ...] = (),
        **options: object,
    ) -> Upstream:
        settings: dict[str, object] = {
            "timeout_s": 10.0,
            "max_redirects": 20,
            "user_agent": "UA",
            "instance_id": "abc123",
            "on_outcome": lambda status, error: self.outcomes.append((status, error)),
        }
        settings.update(options)
        return Upstream(self.clock, spy.agent, headers, **settings)  # type: ignore[arg-type]

    def get(self, upstream: Upstream, url: str, method: bytes = b"GET") -> Deferred[IResponse]:
        return Deferred.fromCoroutine(upstream.request(url, method))

    def error_of(self, d: Deferred[IResponse]) -> ProxyError:
        failure = self.failureResultOf(d, ProxyError)
        error = failure.value
        assert isinstance(error, ProxyError)
        return error


class DerivedHeaderTests(UpstreamCase):
    def test_refused_with_derived_headers_retries_without_and_remembers(self) -> None:
        def route(url: str) -> FakeResponse:
            sent = spy.records[-1].headers
            assert sent is not None
            return FakeResponse(403 if sent.hasHeader(b"referer") else 200)

        spy = Spy(route)
        upstream = self.upstream(
            spy, (("referer", "http://a.example/"),), derived=frozenset({"referer"})
        )
        self.assertEqual(self.successResultOf(self.get(upstream, A + "/1")).code, 200)
        self.assertEqual(
            [spy.header(i, b"referer") for i in range(2)], [[b"http://a.example/"], None]
        )
        self.assertEqual(self.successResultOf(self.get(upstream, A + "/2")).code, 200)
        self.assertEqual(len(spy.records), 3)  # the second asks without them at once
        self.assertIsNone(spy.header(2, b"referer"))

    def test_user_given_headers_are_not_retried(self) -> None:
        spy = Spy(lambda url: FakeResponse(403))
        upstream = self.upstream(spy, (("referer", "http://a.example/"),))
        self.assertEqual(self.successResultOf(self.get(upstream, A + "/1")).code, 403)
        self.assertEqual(len(spy.records), 1)


class DeadlineTests(UpstreamCase):
    def test_a_request_waits_for_a_slot_then_gets_503(self) -> None:
        held = FakeResponse(hold=True)
        spy = Spy(lambda url: held if url.endswith("/held") else FakeResponse())
        upstream = self.upstream(spy, max_concurrent=1, timeout_s=5.0)
        first = self.successResultOf(self.get(upstream, A + "/held"))
        first.deliverBody(Protocol())
        waiting = self.get(upstream, A + "/next")
        self.clock.advance(4.9)
        self.assertNoResult(waiting)
        self.assertEqual(len(spy.records), 1)  # it never reached the agent
        self.clock.advance(0.2)
        error = self.error_of(waiting)
        self.assertEqual(
            (error.status, error.message), (503, "too many upstream requests for this stream")
        )
        # The slot came back when the body ended: the next request goes out at once.
        held.finish()
        self.assertEqual(self.successResultOf(self.get(upstream, A + "/after")).code, 200)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_slot_freed_in_time_lets_the_waiting_request_through(self) -> None:
        held = FakeResponse(hold=True)
        spy = Spy(lambda url: held if url.endswith("/held") else FakeResponse())
        upstream = self.upstream(spy, max_concurrent=1, timeout_s=5.0)
        self.successResultOf(self.get(upstream, A + "/held")).deliverBody(Protocol())
        waiting = self.get(upstream, A + "/next")
        self.clock.advance(3)
        held.finish()
        self.assertEqual(self.successResultOf(waiting).code, 200)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_headers_in_time_is_504_and_the_request_is_cancelled(self) -> None:
        spy = Spy(lambda url: None)
        upstream = self.upstream(spy, timeout_s=5.0)
        d = self.get(upstream, A + "/slow")
        self.clock.advance(5)
        error = self.error_of(d)
        self.assertEqual((error.status, error.message), (504, "upstream timed out"))
        self.assertTrue(spy.records[0].deferred.called)  # cancelled
        self.assertEqual(self.outcomes, [(None, error)])

    def test_a_client_leaving_cancels_without_an_answer_or_an_outcome(self) -> None:
        spy = Spy(lambda url: None)
        d = self.get(self.upstream(spy), A + "/slow")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(spy.records[0].deferred.called)  # cancelled
        self.assertEqual((self.outcomes, self.clock.getDelayedCalls()), ([], []))

    def test_a_host_refused_synchronously_is_a_403_failure(self) -> None:
        class Refusing:
            def request(self, *args: object, **kwargs: object) -> Deferred[IResponse]:
                raise UpstreamRefused("upstream host a.example is denied")

        spy = Spy()
        spy.agent = Refusing()  # type: ignore[assignment]
        upstream = self.upstream(spy)
        d = self.get(upstream, A + "/x")
        error = self.error_of(d)
        self.assertEqual(error.status, 403)
        self.assertEqual(self.outcomes, [(None, error)])

    def test_a_status_outside_100_to_599_is_502(self) -> None:
        for code in (0, 99, 600, 999):
            d = self.get(self.upstream(Spy(lambda url, c=code: FakeResponse(c))), A + "/x")
            self.assertEqual(self.error_of(d).status, 502, code)


class RedirectTests(UpstreamCase):
    def chain(self, hops: int) -> Spy:
        def route(url: str) -> FakeResponse:
            n = int(url.rsplit("/", 1)[1])
            return redirect(f"/{n + 1}") if n < hops else FakeResponse(body=b"end")

        return Spy(route)

    def test_twenty_redirects_are_followed_the_twenty_first_is_502(self) -> None:
        spy = self.chain(20)
        self.assertEqual(self.successResultOf(self.get(self.upstream(spy), A + "/0")).code, 200)
        self.assertEqual(len(spy.records), 21)
        spy = self.chain(21)
        error = self.error_of(self.get(self.upstream(spy), A + "/0"))
        self.assertEqual((error.status, error.message), (502, "too many upstream redirects"))
        self.assertEqual(len(spy.records), 21)

    def test_a_redirect_to_another_scheme_is_refused_without_a_request(self) -> None:
        for location in (
            "gopher://127.0.0.1:70/",
            "file:///etc/passwd",
            "ftp://a.example/x",
            "data:text/plain,hi",
            "javascript:alert(1)",
        ):
            spy = Spy(lambda url, loc=location: redirect(loc))
            error = self.error_of(self.get(self.upstream(spy), A + "/x"))
            self.assertEqual(
                (error.status, error.message),
                (502, "upstream redirect to a non-HTTP URL refused"),
                location,
            )
            self.assertEqual(spy.urls(), [A + "/x"], location)

    def test_redirects_resolve_against_the_current_url(self) -> None:
        spy = Spy(
            lambda url: {
                A + "/a/b": redirect("../c?q"),
                A + "/c?q": redirect("//b.example:8000/d#frag", 301),
                B + "/d": redirect(A + "/e", 308),
            }.get(url, FakeResponse())
        )
        self.successResultOf(self.get(self.upstream(spy), A + "/a/b", b"HEAD"))
        self.assertEqual(spy.urls(), [A + "/a/b", A + "/c?q", B + "/d", A + "/e"])
        self.assertEqual({record.method for record in spy.records}, {b"HEAD"})

    def test_a_redirect_without_location_is_502(self) -> None:
        spy = Spy(lambda url: FakeResponse(302))
        self.assertEqual(self.error_of(self.get(self.upstream(spy), A + "/x")).status, 502)


class CredentialTests(UpstreamCase):
    headers = (("authorization", "Bearer t"), ("cookie", "sid=1"), ("referer", "r"))

    def test_credentials_are_not_sent_to_another_origin_a_redirect_leads_to(self) -> None:
        spy = Spy(
            lambda url: {
                A + "/x": redirect(A + "/y"),  # same origin: still sent
                A + "/y": redirect("http://a.example:8001/z"),  # another port
                "http://a.example:8001/z": redirect(A + "/back"),  # back home: not again
            }.get(url, FakeResponse())
        )
        self.successResultOf(self.get(self.upstream(spy, self.headers), A + "/x"))
        sent = [(spy.header(i, b"authorization"), spy.header(i, b"cookie")) for i in range(4)]
        self.assertEqual(sent, [([b"Bearer t"], [b"sid=1"])] * 2 + [(None, None)] * 2)
        self.assertEqual([spy.header(i, b"referer") for i in range(4)], [[b"r"]] * 4)

    def test_scheme_change_is_another_origin(self) -> None:
        spy = Spy(
            lambda url: redirect("https://a.example:8000/s") if url == A + "/x" else FakeResponse()
        )
        self.successResultOf(self.get(self.upstream(spy, self.headers), A + "/x"))
        self.assertIsNone(spy.header(1, b"authorization"))

    def test_a_later_request_to_another_host_keeps_the_stream_headers(self) -> None:
        upstream = self.upstream(spy := Spy(), self.headers)
        self.successResultOf(self.get(upstream, B + "/child.ts"))
        self.assertEqual(spy.header(0, b"authorization"), [b"Bearer t"])

    def test_jar_cookies_stay_with_their_origin_across_a_redirect(self) -> None:
        def route(url: str) -> FakeResponse:
            if url == A + "/login":
                return FakeResponse(headers={b"set-cookie": [b"token=s3cret; Path=/"]})
            if url == A + "/x":
                return redirect("http://a.example:9000/y")
            return FakeResponse()

        spy = Spy(route)
        upstream = self.upstream(spy)
        self.successResultOf(self.get(upstream, A + "/login"))
        self.successResultOf(self.get(upstream, A + "/x"))
        self.assertEqual(spy.header(1, b"cookie"), [b"token=s3cret"])
        self.assertIsNone(spy.header(2, b"cookie"))

    def test_userinfo_is_basic_auth_for_its_origin_only(self) -> None:
        spy = Spy(lambda url: redirect(B + "/y") if url.endswith("/x") else FakeResponse())
        upstream = self.upstream(spy)
        self.successResultOf(self.get(upstream, "http://us%40er:p%3Ass@a.example:8000/x"))
        self.assertEqual(spy.urls(), [A + "/x", B + "/y"])
        expected = b"Basic " + base64.b64encode(b"us@er:p:ss")
        self.assertEqual(spy.header(0, b"authorization"), [expected])
        self.assertIsNone(spy.header(1, b"authorization"))

    def test_split_userinfo(self) -> None:
        cases = {
            "http://a/x": ("http://a/x", None),
            "http://u:p@a:81/x?q": (
                "http://a:81/x?q",
                "Basic " + base64.b64encode(b"u:p").decode(),
            ),
            "http://u@a/": ("http://a/", "Basic " + base64.b64encode(b"u:").decode()),
            "http://%C3%A9:@[::1]/": (
                "http://[::1]/",
                "Basic " + base64.b64encode("é:".encode()).decode(),
            ),
        }
        for url, expected in cases.items():
            self.assertEqual(split_userinfo(url), expected, url)


class HeaderTests(UpstreamCase):
    def test_every_hop_carries_via_with_the_instance_id(self) -> None:
        spy = Spy(lambda url: redirect(B + "/y") if url.endswith("/x") else FakeResponse())
        upstream = self.upstream(spy, (("via", "1.1 corp-proxy"),))
        self.successResultOf(self.get(upstream, A + "/x"))
        for i in range(2):
            self.assertEqual(spy.header(i, b"via"), [b"1.1 corp-proxy", b"1.1 hlsproxy-abc123"])

    def test_thousands_of_cookies_are_bounded_per_domain_and_in_the_header(self) -> None:
        flood = [f"c{i}={'v' * 40}; Path=/".encode() for i in range(3000)]
        spy = Spy(
            lambda url: (
                FakeResponse(headers={b"set-cookie": flood})
                if url.endswith("/set")
                else FakeResponse()
            )
        )
        upstream = self.upstream(spy, (("cookie", "mine=1"),))
        self.successResultOf(self.get(upstream, A + "/set"))
        self.assertLessEqual(len(upstream.cookies), 50)
        self.successResultOf(self.get(upstream, A + "/next"))
        (cookie,) = spy.header(1, b"cookie") or []
        self.assertLessEqual(len(cookie), MAX_COOKIE_HEADER_BYTES)
        self.assertTrue(cookie.startswith(b"mine=1; "))
        self.assertIn(b"c2999=", cookie)  # the newest were kept, the oldest dropped
        self.assertNotIn(b"c0=", cookie)
