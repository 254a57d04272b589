"""Certificates: the facts config checks, `probe` and the instance side read from one, and
the one maker of certificates (with `cryptography`, in memory) for local runs and the tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stun_infra.common.project import PROJECT

MAX_COMMON_NAME = 64  # RFC 5280 ub-common-name


def certificate_common_name(domain: str) -> str:
    """The subject CN of a certificate for `domain`: at most 64 characters (RFC 5280
    ub-common-name); the name itself goes in subjectAltName, which is what clients check."""
    return domain if len(domain) <= MAX_COMMON_NAME else PROJECT


def first_certificate(pem: str | bytes) -> x509.Certificate:
    """The leaf (first) certificate of a PEM chain; ValueError naming what is wrong."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        raise ValueError("is not a readable PEM certificate (-----BEGIN CERTIFICATE----- ...)") from None


def days_left(cert: x509.Certificate, now: datetime | None = None) -> int:
    """Whole days until the certificate expires; negative once it has."""
    return (cert.not_valid_after_utc - (now or datetime.now(timezone.utc))).days


def dns_names(cert: x509.Certificate) -> list[str]:
    """The DNS names a certificate is for: its subjectAltName, else its common name."""
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                    .value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
                if isinstance(a.value, str)]


def name_matches(host: str, names: list[str]) -> bool:
    """RFC 6125 matching as browsers do it: exact, or a wildcard for exactly one left label."""
    host = host.lower().rstrip(".")
    for name in (n.lower().rstrip(".") for n in names):
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def certificate_host(pem: str) -> str:
    """The first DNS name (not a wildcard) of the first certificate in `pem`, or ""."""
    try:
        names = dns_names(first_certificate(pem))
    except ValueError:
        return ""
    return next((n for n in names if not n.startswith("*.")), "")


# -- making certificates ------------------------------------------------------------------


def new_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key: what browsers and coturn take, made in milliseconds."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """Unencrypted PKCS#8 PEM: coturn reads its key without a passphrase."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, certificate_common_name(common_name))])


def make_certificate(names: list[str], key: ec.EllipticCurvePrivateKey, *,
                     issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
                     valid_from: timedelta = timedelta(0), valid_for: timedelta = timedelta(days=30),
                     server: bool = False) -> x509.Certificate:
    """A certificate for DNS `names` (the first is the subject), self-signed or signed by
    `issuer` (certificate, key), valid from now + `valid_from` for `valid_for`; `server`
    adds what a CA-issued server certificate carries (not a CA, serverAuth, the issuer's id)."""
    now = datetime.now(timezone.utc)
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (_name(names[0]), key)
    builder = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + valid_from).not_valid_after(now + valid_from + valid_for)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False))
    if server:
        builder = (builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_ca(common_name: str, *, valid_from: timedelta = timedelta(days=-1),
            valid_for: timedelta = timedelta(days=31)) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA (certificate, key) that signs server certificates and nothing below them."""
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + valid_from).not_valid_after(now + valid_from + valid_for)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def self_signed(common_name: str, *, days: int = 30) -> tuple[str, str]:
    """(certificate PEM, private key PEM): self-signed for `common_name`, valid `days`."""
    key = new_key()
    return certificate_pem(make_certificate([common_name], key, valid_for=timedelta(days=days))), key_pem(key)


def write_self_signed(out_dir: Path, common_name: str, *, days: int = 30) -> tuple[Path, Path]:
    """A throwaway self-signed certificate (P-256) for local runs: (cert.pem, key.pem) in
    `out_dir`, the key mode 0600."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cert, key = out_dir / "cert.pem", out_dir / "key.pem"
    cert_text, key_text = self_signed(common_name, days=days)
    key.touch(mode=0o600)
    key.chmod(0o600)
    key.write_text(key_text)
    cert.write_text(cert_text)
    return cert, key


def not_after(der: bytes) -> datetime | None:
    """The expiry of a DER certificate, None when it does not parse."""
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None
