"""Certificates and keys as data: parsed, checked and described with `cryptography`.

Everything a user uploads passes `check_pair` before a byte of it is written: a certificate
that is not PEM, an expired one, a key that is encrypted, weak or not the certificate's.
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

from paas.core import archive
from paas.plugin_api import PaasError

MAX_PEM = 256 << 10  # a chain of a few certificates, never more
MAX_TAR = 1 << 20
TAR_CERT, TAR_KEY = "server.crt", "server.key"


@dataclass(frozen=True)
class CertInfo:
    """What `certs:report` shows (never anything about the key but its type)."""

    subject: str
    sans: tuple[str, ...]
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str  # sha256 of the leaf
    ocsp: bool
    self_signed: bool
    key_type: str

    def covers(self, hostname: str) -> bool:
        for name in self.sans:
            if name == hostname:
                return True
            if name.startswith("*.") and "." in hostname and hostname.split(".", 1)[1] == name[2:]:
                return True
        return False

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before


@dataclass(frozen=True)
class Pair:
    """A checked certificate chain and its key, normalised to PEM (key: unencrypted PKCS#8)."""

    cert_pem: bytes
    key_pem: bytes
    info: CertInfo


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _load_certs(data: bytes) -> list[x509.Certificate]:
    if not data or len(data) > MAX_PEM:
        raise PaasError("the certificate is empty or too large")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise PaasError("the certificate is not a PEM certificate") from None
    if not certs:
        raise PaasError("the certificate is not a PEM certificate")
    return certs


def _load_key(data: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if not data or len(data) > MAX_PEM:
        raise PaasError("the key is empty or too large")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise PaasError("the key is encrypted; give it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise PaasError("the key is not a PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise PaasError(f"the key is RSA {key.key_size}: use 2048 bits or more")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise PaasError("the key type is not supported (use RSA or ECDSA)")


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_type(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    return key.__class__.__name__


def describe(cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        sans = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        sans = (str(cn[0].value),) if cn else ()
    try:
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
        ocsp = any(d.access_method == AuthorityInformationAccessOID.OCSP for d in aia)
    except x509.ExtensionNotFound:
        ocsp = False
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        sans=tuple(s.lower() for s in sans),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        ocsp=ocsp,
        self_signed=cert.issuer == cert.subject,
        key_type=_key_type(cert.public_key()),
    )


def check_pair(cert_data: bytes, key_data: bytes) -> Pair:
    """The pair normalised, or one line saying why it is refused."""
    certs = _load_certs(cert_data)
    key = _load_key(key_data)
    leaf = certs[0]
    if _spki(leaf.public_key()) != _spki(key.public_key()):
        raise PaasError("the key does not match the certificate")
    info = describe(leaf)
    if info.not_after <= now():
        raise PaasError(f"the certificate expired on {info.not_after:%Y-%m-%d %H:%M} UTC")
    if not info.sans:
        raise PaasError("the certificate names no host (no subjectAltName or CN)")
    cert_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Pair(cert_pem, key_pem, info)


def read_info(cert_data: bytes) -> CertInfo:
    return describe(_load_certs(cert_data)[0])


TAR_LIMITS = archive.Limits(max_bytes=MAX_TAR, max_files=64, max_file_bytes=MAX_TAR, max_total_bytes=MAX_TAR)


def from_tar(data: bytes) -> tuple[bytes, bytes]:
    """`server.crt` and `server.key` from a tar (Dokku's upload format), read in memory only."""
    if len(data) > MAX_TAR:
        raise PaasError("the tar is too large (a certificate and a key are a few KiB)")
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            # The checks every archive from a user passes (Dokku refuses such a tar too).
            entries = archive.check(tar, TAR_LIMITS)
            for entry, content in archive.contents(tar, entries):
                name = entry.path.rsplit("/", 1)[-1]
                if name in (TAR_CERT, TAR_KEY) and entry.link_target is None and len(content) <= MAX_PEM:
                    found[name] = content
    except (tarfile.TarError, EOFError, OSError):
        raise PaasError(f"stdin is not a tar holding {TAR_CERT} and {TAR_KEY}") from None
    missing = [n for n in (TAR_CERT, TAR_KEY) if n not in found]
    if missing:
        raise PaasError(f"the tar has no {' or '.join(missing)}")
    return found[TAR_CERT], found[TAR_KEY]


def self_signed(hostnames: list[str], days: int = 365) -> Pair:
    """A self-signed ECDSA certificate for `hostnames`, for trying HTTPS out."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64])])
    start = now() - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return check_pair(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
