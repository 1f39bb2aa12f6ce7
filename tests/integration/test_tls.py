"""TLS both ways: the proxy served over `ssl:` endpoints, and upstream certificates
verified unless --insecure-upstream."""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.endpoints import serverFromString
from twisted.internet.ssl import Certificate
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.server import Site

from hls_proxy.config import Config
from hls_proxy.service import build_site

from .harness import client, proxied_url, reactor
from .origin import Body, Tree


def self_signed(directory: FilePath) -> tuple[str, str, bytes]:
    """A key and certificate for 127.0.0.1 / localhost; (key path, cert path, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.makedirs(ignoreExistingDirectory=True)
    key_path, cert_path = directory.child("key.pem"), directory.child("cert.pem")
    key_path.setContent(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    cert_path.setContent(pem)
    return key_path.path, cert_path.path, pem


async def listen_tls(case: TestCase, site: Site, key: str, cert: str) -> int:
    endpoint = serverFromString(
        reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    )
    port = await endpoint.listen(site)
    case.addCleanup(port.stopListening)
    return int(port.getHost().port)


class TlsTests(TestCase):
    def setUp(self) -> None:
        self.key, self.cert, self.pem = self_signed(FilePath(self.mktemp()))
        self.http = client(self, BrowserLikePolicyForHTTPS(Certificate.loadPEM(self.pem)))

    async def _proxy(self, **overrides: object) -> str:
        config = Config(secret=b"tls", allow_private=True, **overrides)  # type: ignore[arg-type]
        parts = build_site(config, reactor)
        site, registry = parts.site, parts.registry
        self.addCleanup(registry.close_all)
        return f"https://127.0.0.1:{await listen_tls(self, site, self.key, self.cert)}"

    async def _origin(self) -> str:
        tree = Tree({"/a.m3u8": Body(b"#EXTM3U\n#EXTINF:1,\ns.ts\n#EXT-X-ENDLIST\n")})
        return f"https://127.0.0.1:{await listen_tls(self, Site(tree), self.key, self.cert)}"

    async def test_proxy_over_an_ssl_endpoint_and_upstream_certificates_verified(self) -> None:
        proxy = await self._proxy()
        health = await self.http.get(proxy + "/health")
        self.assertEqual(health.code, 200)
        await health.content()
        origin = await self._origin()
        refused = await self.http.get(proxied_url(proxy, origin + "/a.m3u8"))
        self.assertEqual(refused.code, 502)  # self-signed upstream: not trusted
        self.assertIn(b"upstream TLS failed", await refused.content())
        insecure = await self._proxy(insecure_upstream=True)
        answer = await self.http.get(proxied_url(insecure, origin + "/a.m3u8"))
        self.assertEqual(answer.code, 200)
        self.assertTrue((await answer.content()).startswith(b"#EXTM3U\n#EXTINF:1,\n/p/"))
