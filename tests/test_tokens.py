"""Token carry-over (tokens.py) and the retry that uses it (upstream.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IResponse

from hls_proxy.tokens import (
    Carrier,
    CarryMode,
    append_query,
    carry_for,
    carry_mode,
    children_tokens,
    token_query,
)
from hls_proxy.upstream import Upstream

from .test_upstream import A, B, FakeResponse, Spy, UpstreamCase

PLAYLIST = "https://cdn.example/live/index.m3u8?token=T&quality=hd&e=9"


class CandidateTests(SynchronousTestCase):
    def test_candidates_table(self) -> None:
        tokens = token_query(PLAYLIST)
        self.assertEqual(tokens, "token=T&e=9")
        cases = [
            ("https://cdn.example/live/seg1.ts", tokens),
            ("https://cdn.example/live/seg1.ts?n=1", tokens),  # its own query is not a token
            ("https://cdn.example/live/seg1.ts#t=1", tokens),
            ("https://CDN.example:443/live/seg1.ts", ""),  # another port: another host
            ("https://CDN.example/live/seg1.ts", tokens),  # host names are case-blind
            ("https://cdn.example/live/seg1.ts?token=own", ""),  # has one of them
            ("https://cdn.example/live/seg1.ts?E=own", ""),
            ("https://cdn.example/live/seg1.ts?X-Amz-Signature=s", tokens),  # not theirs
            ("https://other.example/live/seg1.ts", ""),
        ]
        for child, expected in cases:
            self.assertEqual(carry_for(tokens, PLAYLIST, child), expected, child)
            self.assertEqual(Carrier(tokens, PLAYLIST)(child), expected, child)
            self.assertEqual(Carrier(tokens, PLAYLIST).many([child, child]), [expected] * 2)
        children = [child for child, _ in cases]
        expected = [expected for _, expected in cases]
        self.assertEqual(Carrier(tokens, PLAYLIST).many(children), expected)
        self.assertEqual(carry_for("", PLAYLIST, cases[0][0]), "")

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(
                    ["https://cdn.example/", "https://CDN.example/", "http://o.example/"]
                ),
                st.sampled_from(["s1.ts", "s2.ts", "a?b.ts"]),
                st.sampled_from(["", "?", "?n=1", "?token=own", "?n=1#f", "?n=1?x", "?token=x?"]),
            ).map("".join),
            max_size=6,
        )
    )
    def test_many_children_as_one_at_a_time(self, children: list[str]) -> None:
        carrier = Carrier("token=T&e=9", PLAYLIST)
        self.assertEqual(carrier.many(children), [carrier(child) for child in children])

    def test_many_children_with_their_question_marks_anywhere(self) -> None:
        carrier = Carrier("token=T&e=9", PLAYLIST)
        children = ["https://cdn.example/a?token=x?", "https://cdn.example/c"]
        self.assertEqual(carrier.many(children), ["", "token=T&e=9"])

    def test_children_get_the_playlists_own_tokens_else_its_inherited_ones(self) -> None:
        self.assertEqual(children_tokens(PLAYLIST, "hdnts=x"), "token=T&e=9")
        self.assertEqual(children_tokens("https://cdn.example/v0/i.m3u8", "hdnts=x"), "hdnts=x")
        self.assertEqual(children_tokens("https://cdn.example/v0/i.m3u8?q=1", ""), "")

    def test_append_query_keeps_the_fragment(self) -> None:
        self.assertEqual(append_query("http://a/s.ts", "t=1"), "http://a/s.ts?t=1")
        self.assertEqual(append_query("http://a/s.ts?n=2#f", "t=1"), "http://a/s.ts?n=2&t=1#f")
        self.assertEqual(append_query("http://a/s.ts", ""), "http://a/s.ts")

    def test_modes(self) -> None:
        self.assertEqual(
            [carry_mode(value) for value in ("auto", "", "1", "0", "2")],
            [CarryMode.RETRY, CarryMode.RETRY, CarryMode.ALWAYS, CarryMode.NEVER, CarryMode.RETRY],
        )


class RetryTests(UpstreamCase):
    def get_carrying(self, upstream: Upstream, url: str, carry: str) -> Deferred[IResponse]:
        return Deferred.fromCoroutine(upstream.request(url, b"GET", None, carry))

    def test_refused_without_tokens_retries_with_them_and_remembers_the_origin(self) -> None:
        spy = Spy(lambda url: FakeResponse(200 if "token=T" in url else 403))
        upstream = self.upstream(spy)
        for name in ("1", "2?n=1", "3"):
            response = self.successResultOf(self.get_carrying(upstream, f"{A}/{name}", "token=T"))
            self.assertEqual(response.code, 200)
        # One refusal, then that origin gets the tokens at once.
        self.assertEqual(
            spy.urls(), [f"{A}/1", f"{A}/1?token=T", f"{A}/2?n=1&token=T", f"{A}/3?token=T"]
        )
        # Another origin of the stream is tried as written first.
        self.successResultOf(self.get_carrying(upstream, f"{B}/4", "token=T"))
        self.assertEqual(spy.urls()[-2:], [f"{B}/4", f"{B}/4?token=T"])

    def test_an_origin_that_accepts_the_uri_as_written_never_sees_the_tokens(self) -> None:
        spy = Spy(lambda url: FakeResponse(403 if "?" in url else 200))
        upstream = self.upstream(spy)
        for name in ("1", "2"):
            self.successResultOf(self.get_carrying(upstream, f"{A}/{name}", "token=T"))
        self.assertEqual(spy.urls(), [f"{A}/1", f"{A}/2"])

    def test_tokens_that_do_not_help_are_not_remembered(self) -> None:
        spy = Spy(lambda url: FakeResponse(410))
        upstream = self.upstream(spy)
        for name in ("1", "2"):
            response = self.successResultOf(self.get_carrying(upstream, f"{A}/{name}", "t=1"))
            self.assertEqual(response.code, 410)
        self.assertEqual(spy.urls(), [f"{A}/1", f"{A}/1?t=1", f"{A}/2", f"{A}/2?t=1"])

    def test_without_a_candidate_a_refusal_is_final(self) -> None:
        spy = Spy(lambda url: FakeResponse(403))
        upstream = self.upstream(spy)
        self.assertEqual(self.successResultOf(self.get(upstream, f"{A}/1")).code, 403)
        self.assertEqual(len(spy.records), 1)

    def test_the_token_retry_comes_before_dropping_derived_headers(self) -> None:
        spy = Spy(lambda url: FakeResponse(200 if "token=T" in url else 403))
        upstream = self.upstream(
            spy, (("referer", "http://a.example/"),), derived=frozenset({"referer"})
        )
        self.successResultOf(self.get_carrying(upstream, f"{A}/1", "token=T"))
        self.assertEqual(spy.urls(), [f"{A}/1", f"{A}/1?token=T"])
        self.assertEqual(spy.header(1, b"referer"), [b"http://a.example/"])
