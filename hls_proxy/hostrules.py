"""`--allow-host` / `--deny-host`: name patterns and address rules, pure.

A rule that parses as an address or a network (`169.254.169.254`, `10.0.0.0/8`, `::1`,
`[::1]`) is matched against the addresses the upstream RESOLVED to, with IPv6 forms of an
IPv4 address unwrapped, so every spelling of a target (`2130706434`, `127.2`,
`0x7f000002`, `0177.0.0.2`, `[::ffff:127.0.0.2]`) hits it. Any other rule is a shell
wildcard matched against the host name as given (`*.cdn.example`).

Deny wins. With allow rules, a host passes when its name matches an allow pattern, or
every address it resolved to is in an allow network. Allow rules only narrow: a private
address still needs --allow-private.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Sequence

import attrs

__all__ = ["HostRules", "embedded_ipv4"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really reaches (mapped, 6to4, Teredo, NAT64,
    IPv4-compatible), or None."""
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is None and address.teredo is not None:
        embedded = address.teredo[1]
    if embedded is None and address in _NAT64:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if embedded is None and int(address) >> 32 == 0 and int(address) > 1:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)  # ::a.b.c.d
    return embedded


def _spellings(address: IPAddress) -> list[IPAddress]:
    """The address, and the other family's form of the same IPv4 target."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address, ipaddress.IPv6Address(f"::ffff:{address}")]
    embedded = embedded_ipv4(address)
    return [address] if embedded is None else [address, embedded]


def _network(rule: str) -> IPNetwork | None:
    text = rule.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:].replace("]", "", 1)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _in_any(address: str, networks: Iterable[IPNetwork]) -> bool:
    candidates = _spellings(ipaddress.ip_address(address))
    return any(candidate in network for network in networks for candidate in candidates)


@attrs.frozen
class HostRules:
    """The parsed rules; `refusal_*` return why a host is refused, or None."""

    deny_names: tuple[str, ...] = ()
    deny_networks: tuple[IPNetwork, ...] = ()
    allow_names: tuple[str, ...] = ()
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, allow: Sequence[str], deny: Sequence[str]) -> HostRules:
        def split(rules: Sequence[str]) -> tuple[tuple[str, ...], tuple[IPNetwork, ...]]:
            networks = [_network(rule) for rule in rules]
            names = tuple(r.lower() for r, n in zip(rules, networks, strict=True) if n is None)
            return names, tuple(network for network in networks if network is not None)

        deny_names, deny_networks = split(deny)
        allow_names, allow_networks = split(allow)
        return cls(deny_names, deny_networks, allow_names, allow_networks)

    def _name_allowed(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allow_names)

    def refusal_by_name(self, host: str) -> str | None:
        """What the name alone decides, before any lookup."""
        name = host.lower().rstrip(".")
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.deny_names):
            return f"upstream host {host} is denied"
        if self.allow_names and not self.allow_networks and not self._name_allowed(name):
            return f"upstream host {host} is not allowed"
        return None

    def refusal_by_address(self, host: str, addresses: Sequence[str]) -> str | None:
        """What the resolved addresses decide (the name rules have already passed)."""
        if any(_in_any(address, self.deny_networks) for address in addresses):
            return f"upstream host {host} is denied"
        if not (self.allow_names or self.allow_networks):
            return None
        if self._name_allowed(host.lower().rstrip(".")):
            return None
        if self.allow_networks and all(
            _in_any(address, self.allow_networks) for address in addresses
        ):
            return None
        return f"upstream host {host} is not allowed"
