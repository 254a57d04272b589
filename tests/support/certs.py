"""Throwaway X.509 certificates for tests: a test CA and leaf certificates it signs.

Made in memory by the product's own maker (stun_infra.common.certificates: ECDSA P-256,
milliseconds each); tests write them where a server or an NSS database needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from stun_infra.common import certificates


@dataclass(frozen=True)
class Issued:
    cert_pem: str
    key_pem: str  # unencrypted PKCS#8: tests only

    def write(self, directory: Path, stem: str = "") -> tuple[Path, Path]:
        """cert.pem and key.pem (or <stem>-cert.pem ...) in `directory`."""
        cert, key = (directory / f"{stem}{'-' if stem else ''}{n}.pem" for n in ("cert", "key"))
        cert.write_text(self.cert_pem)
        key.write_text(self.key_pem)
        return cert, key


@dataclass(frozen=True)
class TestCa:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    __test__ = False  # not a test class, despite the name

    @property
    def cert_pem(self) -> str:
        return certificates.certificate_pem(self.cert)

    def issue(self, *names: str, days: int = 30, not_before_days: int = -1) -> Issued:
        """A server certificate for DNS `names`, valid from `not_before_days` to `days` from now."""
        key = certificates.new_key()
        cert = certificates.make_certificate(list(names), key, issuer=(self.cert, self.key), server=True,
                                             valid_from=timedelta(days=not_before_days),
                                             valid_for=timedelta(days=days - not_before_days))
        return Issued(certificates.certificate_pem(cert), certificates.key_pem(key))


def make_ca(name: str = "stun-infra test CA") -> TestCa:
    return TestCa(*certificates.make_ca(name))
