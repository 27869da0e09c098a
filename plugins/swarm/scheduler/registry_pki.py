"""The registry's certificates: its CA, its server certificate, one client certificate for the
manager (the only one that may push) and one per node (pull only), and the revocation list.

Why one certificate per node: the registry's proxy tells pushers from pullers by the client
certificate's subject, and a removed node must lose even its pulls. A shared certificate could
do neither: revoking it would cut every other node off. Every certificate names its holder
(`CN=<node>,OU=node,O=paas`; the manager's `CN=paas-manager,OU=manager,O=paas`): a node's name is
a hostname, so it can never spell the manager's subject.

Everything lives in the registry folder of the data dir (0700, files 0600), and only the proxy's
share (`proxy/`: the CA certificate, the server's pair and the CRL) is mounted into the registry's
container: the CA's key never leaves the folder, nor does the manager's. A node's private key is
made here and printed once in its join lines; it is not kept. `issued.json` records every
certificate minted for a node (name, serial, when, revoked when), so `nodes:remove <name>`
revokes all of that name's.

The certificate every node shared before (`client.cert`, `CN=paas node`) is left valid for the
nodes that joined with it, pull only like any node's; the first `nodes:remove` of a node that has
no certificate of its own revokes it (see `revoke_node`).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from paas.core import names
from paas.plugin_api import PaasError, Settings

VALID_DAYS = 3650
# A CRL past its next update fails every handshake: it is signed for as long as the certificates
# live, and signed again at every revocation.
CRL_VALID_DAYS = 3650
ORG = "paas"
OU_MANAGER = "manager"
OU_NODE = "node"
MANAGER_CN = "paas-manager"
LEGACY_CN = "paas node"  # the certificate every node shared before per-node certificates
# A swarm node's name is its hostname: RFC 1123 labels, dots between them, at most 253 characters.
NODE_NAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True)
class IssuedCertificate:
    """One node certificate as `issued.json` remembers it (never its key)."""

    name: str
    serial: int
    issued: str  # ISO 8601, UTC
    revoked: str | None = None


def node_name(name: str) -> str:
    """A node's name as a host calls itself (it reaches a certificate's subject and a shell line)."""
    if not isinstance(name, str) or not NODE_NAME_RE.fullmatch(name):
        raise PaasError(
            f"invalid node name {name!r}: give the new host's hostname (letters, digits, '-' and '.')"
        )
    return name


def subject(cn: str, ou: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def manager_dn() -> str:
    """The manager's subject as nginx's `$ssl_client_s_dn` spells it (RFC 4514, last RDN first)."""
    return subject(MANAGER_CN, OU_MANAGER).rfc4514_string()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_cert(
    name: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool = False,
    ip: str | None = None,
    client: bool = False,
) -> x509.Certificate:
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_private(path: Path, data: bytes) -> None:
    """Atomically, 0600, in a 0700 folder: a reader never sees half a key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600)
    tmp.replace(path)


def _server_cert_matches(path: Path, address: str) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.IPAddress
        )
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return ipaddress.ip_address(address) in ips


def _ca(d: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PaasError(f"{d / 'ca.key'} is not the registry CA's key")
    return ca, key


def ensure(settings: Settings, address: str) -> Path:
    """The CA, the server certificate for `address` (made again when the address changed), the
    manager's client certificate and a CRL; returns the registry folder."""
    d = names.registry_dir(settings)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    d.chmod(0o700)
    proxy = names.registry_proxy_dir(settings)
    if not (d / "ca.crt").exists() or not (d / "ca.key").exists():
        key = _key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paas registry CA")])
        write_private(d / "ca.key", pem_key(key))
        write_private(d / "ca.crt", pem(make_cert(ca_name, key, None, key, ca=True)))
    ca, signer = _ca(d)
    if (proxy / "ca.crt").exists() is False or (proxy / "ca.crt").read_bytes() != (d / "ca.crt").read_bytes():
        write_private(proxy / "ca.crt", (d / "ca.crt").read_bytes())
    if not _server_cert_matches(proxy / "server.crt", address) or not (proxy / "server.key").exists():
        key = _key()
        cn = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"paas registry {address}")])
        write_private(proxy / "server.key", pem_key(key))
        write_private(proxy / "server.crt", pem(make_cert(cn, key, ca, signer, ip=address)))
    for stale in ("server.crt", "server.key"):  # where they lived before the proxy
        (d / stale).unlink(missing_ok=True)
    if not (d / "manager.cert").exists() or not (d / "manager.key").exists():
        key = _key()
        write_private(d / "manager.key", pem_key(key))
        cert = make_cert(subject(MANAGER_CN, OU_MANAGER), key, ca, signer, client=True)
        write_private(d / "manager.cert", pem(cert))
    if not (proxy / "crl.pem").exists():
        write_crl(settings)
    return d


def issued(settings: Settings) -> list[IssuedCertificate]:
    path = names.registry_dir(settings) / "issued.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PaasError(f"cannot read {path}: {exc}") from None
    return [IssuedCertificate(**entry) for entry in raw]


def _save_issued(settings: Settings, entries: list[IssuedCertificate]) -> None:
    data = json.dumps([e.__dict__ for e in entries], indent=1).encode()
    write_private(names.registry_dir(settings) / "issued.json", data)


def issue_node(settings: Settings, name: str) -> tuple[bytes, bytes]:
    """A new client certificate (and its key) for the node `name`, pull only, recorded before it
    is returned (so a revocation of that name always covers it). Callers hold the registry lock."""
    node_name(name)
    d = names.registry_dir(settings)
    ca, signer = _ca(d)
    key = _key()
    cert = make_cert(subject(name, OU_NODE), key, ca, signer, client=True)
    entries = issued(settings)
    entries.append(IssuedCertificate(name=name, serial=cert.serial_number, issued=_now().isoformat()))
    _save_issued(settings, entries)
    return pem(cert), pem_key(key)


def legacy_serial(settings: Settings) -> int | None:
    """The serial of the certificate every node shared before, if this server ever made one."""
    path = names.registry_dir(settings) / "client.cert"
    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).serial_number
    except (OSError, ValueError):
        return None


def legacy_revoked(settings: Settings) -> bool:
    return (names.registry_dir(settings) / "client.revoked").exists()


def has_own_certificate(settings: Settings, name: str) -> bool:
    """Whether a certificate was minted for `name` and is not revoked (so the node may hold one)."""
    return any(e.name == name and e.revoked is None for e in issued(settings))


def revoke_node(settings: Settings, name: str) -> tuple[list[int], bool]:
    """Revoke every certificate minted for `name`, and the shared one of older joins when `name`
    has none of its own (that host joined with it); write the CRL. Returns the serials revoked and
    whether the shared certificate was. Callers hold the registry lock, then reload the proxy."""
    entries = issued(settings)
    now = _now().isoformat()
    own = [e for e in entries if e.name == name and e.revoked is None]
    revoke_legacy = not any(e.name == name for e in entries) and legacy_serial(settings) is not None
    revoke_legacy = revoke_legacy and not legacy_revoked(settings)
    if own:
        entries = [IssuedCertificate(e.name, e.serial, e.issued, now) if e in own else e for e in entries]
        _save_issued(settings, entries)
    if revoke_legacy:
        write_private(names.registry_dir(settings) / "client.revoked", now.encode())
    write_crl(settings)
    return [e.serial for e in own], revoke_legacy


def revoked_serials(settings: Settings) -> list[int]:
    serials = [e.serial for e in issued(settings) if e.revoked is not None]
    legacy = legacy_serial(settings)
    if legacy is not None and legacy_revoked(settings):
        serials.append(legacy)
    return sorted(set(serials))


def write_crl(settings: Settings) -> bytes:
    """The CRL the proxy checks every client certificate against, signed by the CA."""
    d = names.registry_dir(settings)
    ca, signer = _ca(d)
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=CRL_VALID_DAYS))
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
    )
    for serial in revoked_serials(settings):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    data = builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    write_private(names.registry_proxy_dir(settings) / "crl.pem", data)
    return data
