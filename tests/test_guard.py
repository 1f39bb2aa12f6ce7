"""The SSRF guard's address rules and its connect-only-to-checked-address endpoint."""

import ipaddress
import socket

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI

from hls_proxy.guard import Guard, UpstreamRefused, address_is_public

REFUSED = [
    "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "192.168.1.1",
    "100.64.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1", "239.255.255.250",
    "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "::ffff:169.254.169.254",
    "2002:7f00:1::", "2002:a00:1::", "64:ff9b::7f00:1",
]  # fmt: skip
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


class AddressRuleTests(SynchronousTestCase):
    def test_non_public_addresses_are_refused(self) -> None:
        for text in REFUSED:
            self.assertFalse(address_is_public(ipaddress.ip_address(text)), text)

    def test_public_addresses_are_allowed(self) -> None:
        for text in ALLOWED:
            self.assertTrue(address_is_public(ipaddress.ip_address(text)), text)


class GuardEndpointTests(SynchronousTestCase):
    def _connect(self, reactor: MemoryReactorClock, url: bytes, allow: bool) -> Failure | None:
        guard = Guard(reactor, allow_private=allow, connect_timeout_s=5)
        d: Deferred[object] = guard.endpointForURI(URI.fromBytes(url)).connect(None)  # type: ignore[arg-type]
        failures: list[Failure] = []
        d.addErrback(failures.append)
        return failures[0] if failures else None

    def test_a_name_resolving_to_loopback_is_refused_without_a_connection(self) -> None:
        reactor = MemoryReactorClock()  # resolves every name to 127.0.0.1
        failure = self._connect(reactor, b"http://attacker.example/a.m3u8", allow=False)
        assert failure is not None
        self.assertIsInstance(failure.value, UpstreamRefused)
        self.assertEqual(failure.value.status, 403)
        self.assertEqual(reactor.tcpClients, [])

    def test_odd_ip_spellings_are_refused(self) -> None:
        for host in (b"127.1", b"2130706433", b"0x7f.1", b"0177.0.0.1", b"[::ffff:127.0.0.1]"):
            reactor = MemoryReactorClock()
            failure = self._connect(reactor, b"http://" + host + b"/a", allow=False)
            assert failure is not None, host
            self.assertIsInstance(failure.value, UpstreamRefused, host)
            self.assertEqual(reactor.tcpClients, [], host)

    def test_the_checked_address_is_the_one_dialled(self) -> None:
        reactor = MemoryReactorClock()
        self._connect(reactor, b"http://allowed.example:8081/a", allow=True)
        [(host, port, *_)] = reactor.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 8081))


class _NoAddresses:
    """A resolver for which no name exists."""

    def resolveHostName(self, receiver, hostName, portNumber=0, *args, **kwargs):  # type: ignore[no-untyped-def]
        receiver.resolutionBegan(None)
        receiver.resolutionComplete()
        return receiver


class UnresolvableTests(SynchronousTestCase):
    def test_an_unresolvable_host_is_a_clear_502_without_a_connection(self) -> None:
        reactor = MemoryReactorClock()
        reactor.nameResolver = _NoAddresses()  # type: ignore[assignment]
        guard = Guard(reactor, allow_private=False, connect_timeout_s=5)
        failures: list[Failure] = []
        guard.endpointForURI(URI.fromBytes(b"http://no-such-host.example/a.m3u8")).connect(
            None  # type: ignore[arg-type]
        ).addErrback(failures.append)
        [failure] = failures
        self.assertEqual(failure.value.status, 502)
        self.assertIn("cannot resolve", failure.value.message)
        self.assertEqual(reactor.tcpClients, [])

    def test_deny_and_allow_host_rules(self) -> None:
        reactor = MemoryReactorClock()
        guard = Guard(reactor, allow_private=True, connect_timeout_s=5,
                      allow_hosts=["*.cdn.example"], deny_hosts=["bad.cdn.example"])  # fmt: skip
        for url, refused in [
            (b"http://a.cdn.example/x", False),
            (b"http://bad.cdn.example/x", True),
            (b"http://other.example/x", True),
        ]:
            failures: list[Failure] = []
            guard.endpointForURI(URI.fromBytes(url)).connect(None).addErrback(failures.append)  # type: ignore[arg-type]
            self.assertEqual(
                bool(failures) and isinstance(failures[0].value, UpstreamRefused), refused, url
            )


class _NumericResolver:
    """Resolves as getaddrinfo does, numeric spellings only (AI_NUMERICHOST: no lookup),
    plus a few fixed names."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self._names = names

    def resolveHostName(self, receiver, hostName, portNumber=0, *args, **kwargs):  # type: ignore[no-untyped-def]
        receiver.resolutionBegan(None)
        if hostName in self._names:
            found = self._names[hostName]
        else:
            infos = socket.getaddrinfo(
                hostName, portNumber, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST
            )
            found = [info[4][0] for info in infos]
        for address in found:
            kind = IPv6Address if ":" in address else IPv4Address
            receiver.addressResolved(kind("TCP", address, portNumber))
        receiver.resolutionComplete()
        return receiver


SPELLINGS_OF_127_0_0_2 = [
    b"127.0.0.2", b"2130706434", b"127.2", b"0x7f000002", b"0177.0.0.2", b"0x7f.0.0.2",
    b"[::ffff:127.0.0.2]", b"[::ffff:7f00:2]", b"loopback-alias.example",
]  # fmt: skip


class AddressRuleMatchingTests(SynchronousTestCase):
    def _refusal(self, url: bytes, **rules: list[str]) -> Failure | None:
        reactor = MemoryReactorClock()
        reactor.nameResolver = _NumericResolver(  # type: ignore[assignment]
            {"loopback-alias.example": ["127.0.0.2"], "cdn.example": ["203.0.113.7"],
             "metadata.example": ["169.254.169.254"], "v6.example": ["2001:db8::5"]}
        )  # fmt: skip
        # allow_private: only the host rules decide here.
        guard = Guard(reactor, allow_private=True, connect_timeout_s=5, **rules)  # type: ignore[arg-type]
        failures: list[Failure] = []
        guard.endpointForURI(URI.fromBytes(url)).connect(None).addErrback(failures.append)  # type: ignore[arg-type]
        return failures[0] if failures else None

    def test_a_denied_network_catches_every_spelling_of_its_addresses(self) -> None:
        for rule in ("127.0.0.0/8", "127.0.0.2", "::ffff:127.0.0.0/104", "[::ffff:127.0.0.2]"):
            for host in SPELLINGS_OF_127_0_0_2:
                failure = self._refusal(b"http://" + host + b"/live.m3u8", deny_hosts=[rule])
                assert failure is not None, (rule, host)
                self.assertIsInstance(failure.value, UpstreamRefused, (rule, host))
                self.assertIn("denied", failure.value.message)

    def test_an_address_rule_matches_resolved_names_too(self) -> None:
        for url, rule in [
            (b"http://metadata.example/", "169.254.169.254"),
            (b"http://v6.example/", "2001:db8::/32"),
            (b"http://[::1]/", "::1"),
        ]:
            failure = self._refusal(url, deny_hosts=[rule])
            assert failure is not None, url
            self.assertIsInstance(failure.value, UpstreamRefused)

    def test_other_addresses_pass_a_deny_network(self) -> None:
        self.assertIsNone(self._refusal(b"http://cdn.example/", deny_hosts=["127.0.0.0/8"]))
        self.assertIsNone(self._refusal(b"http://0x7f000002/", deny_hosts=["10.0.0.0/8"]))

    def test_an_allow_network_allows_every_spelling_and_nothing_else(self) -> None:
        for host in SPELLINGS_OF_127_0_0_2:
            self.assertIsNone(
                self._refusal(b"http://" + host + b"/", allow_hosts=["127.0.0.0/8"]), host
            )
        failure = self._refusal(b"http://cdn.example/", allow_hosts=["127.0.0.0/8"])
        assert failure is not None
        self.assertIn("not allowed", failure.value.message)

    def test_name_rules_still_match_names(self) -> None:
        self.assertIsNone(
            self._refusal(b"http://cdn.example/", allow_hosts=["*.example", "10.0.0.0/8"])
        )
        failure = self._refusal(b"http://cdn.example/", deny_hosts=["CDN.example"])
        assert failure is not None
        self.assertIn("denied", failure.value.message)
        failure = self._refusal(b"http://cdn.example/", allow_hosts=["other.example"])
        assert failure is not None
        self.assertIn("not allowed", failure.value.message)
