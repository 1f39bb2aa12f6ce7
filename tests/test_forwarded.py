"""X-Forwarded-* believed only from --trusted-proxy peers; --public-url wins."""

from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from hls_proxy.forwarded import Forwarding


def request(peer: str, **headers: str) -> DummyRequest:
    made = DummyRequest([b""])
    made.client = IPv4Address("TCP", peer, 40000)
    for name, value in headers.items():
        made.requestHeaders.setRawHeaders(name.replace("_", "-"), [value])
    return made


class ForwardingTests(SynchronousTestCase):
    def test_headers_from_an_untrusted_peer_are_ignored(self) -> None:
        forwarding = Forwarding(["10.0.0.0/8"])
        spoofed = request("203.0.113.9", x_forwarded_for="1.2.3.4",
                          x_forwarded_proto="https", x_forwarded_host="evil.example")  # fmt: skip
        self.assertEqual(forwarding.client_ip(spoofed), "203.0.113.9")
        self.assertEqual(forwarding.public_base(spoofed), "")

    def test_a_trusted_proxy_names_the_client_and_the_public_url(self) -> None:
        forwarding = Forwarding(["10.0.0.0/8", "192.0.2.7"])
        behind = request("10.1.2.3", x_forwarded_for="198.51.100.4, 192.0.2.7",
                         x_forwarded_proto="https", x_forwarded_host="proxy.example")  # fmt: skip
        self.assertEqual(forwarding.client_ip(behind), "198.51.100.4")
        self.assertEqual(forwarding.public_base(behind), "https://proxy.example")
        odd = request("10.1.2.3", x_forwarded_proto="gopher", x_forwarded_host="x")
        self.assertEqual(forwarding.public_base(odd), "")

    def test_public_url_wins(self) -> None:
        forwarding = Forwarding([], "https://tv.example/")
        self.assertEqual(forwarding.public_base(request("203.0.113.9")), "https://tv.example")


class PageTests(SynchronousTestCase):
    def test_the_page_gets_the_public_url_and_the_hlsjs_url(self) -> None:
        from hls_proxy.webpage import Page

        page = Page("https://cdn.example/hls.js", Forwarding([], "https://tv.example"))
        body = page.render_GET(request("203.0.113.9"))
        self.assertIn(b'data-public-url="https://tv.example"', body)
        self.assertIn(b'data-hlsjs-url="https://cdn.example/hls.js"', body)
        plain = Page("https://cdn.example/hls.js").render_GET(request("203.0.113.9"))
        self.assertIn(b'data-public-url=""', plain)
