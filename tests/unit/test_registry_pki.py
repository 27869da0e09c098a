"""The registry's certificates (paas/scheduler/registry_pki.py): one per node, pull only by its
subject, revoked by name into a CRL the proxy reads; the manager's the only one that may push.
The e2e tests in tests/e2e/test_swarm_nodes.py attack the running proxy with them."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from paas.errors import PaasError
from paas.plugins import plugins
from paas.settings import Settings

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
from paas_plugins.swarm.scheduler import registry, registry_pki  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(data_dir=tmp_path)
    registry_pki.ensure(s, "172.17.0.1")
    return s


def ca(settings: Settings) -> x509.Certificate:
    return x509.load_pem_x509_certificate((settings.data_dir / "registry" / "ca.crt").read_bytes())


def crl(settings: Settings) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl((settings.data_dir / "registry" / "proxy" / "crl.pem").read_bytes())


def revoked(settings: Settings) -> set[int]:
    return {r.serial_number for r in crl(settings)}


def test_a_node_certificate_names_its_node_and_may_only_authenticate_a_client(settings: Settings) -> None:
    cert_pem, key_pem = registry_pki.issue_node(settings, "worker-1.example")
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(ca(settings))
    assert cert.subject.rfc4514_string() == "CN=worker-1.example,OU=node,O=paas"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = registry_pki.serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    # Recorded (never its key), so that nodes:remove finds it by name.
    record = json.loads((settings.data_dir / "registry" / "issued.json").read_text())
    assert record[0]["name"] == "worker-1.example" and record[0]["serial"] == cert.serial_number
    assert "PRIVATE" not in (settings.data_dir / "registry" / "issued.json").read_text()
    assert registry_pki.has_own_certificate(settings, "worker-1.example")


def test_no_node_name_spells_the_managers_subject(settings: Settings) -> None:
    manager = x509.load_pem_x509_certificate((settings.data_dir / "registry" / "manager.cert").read_bytes())
    assert (
        manager.subject.rfc4514_string() == registry_pki.manager_dn() == "CN=paas-manager,OU=manager,O=paas"
    )
    cert_pem, _ = registry_pki.issue_node(settings, "paas-manager")  # a host may be called that
    assert x509.load_pem_x509_certificate(cert_pem).subject.rfc4514_string() != registry_pki.manager_dn()
    # The proxy's rule: writes only for the manager's subject, exactly as the CA signed it.
    assert f'"{registry_pki.manager_dn()}" 1; default 0;' in registry.PROXY_CONFIG
    assert "map $request_method $paas_writes { GET 0; HEAD 0; default 1; }" in registry.PROXY_CONFIG
    assert (
        "ssl_verify_client on;" in registry.PROXY_CONFIG
        and "ssl_crl /certs/crl.pem;" in registry.PROXY_CONFIG
    )


@pytest.mark.parametrize("bad", ["", "a b", "$(id)", "../x", "-x", "x" * 64, "a..b", "é", "a\nb"])
def test_bad_node_names_are_one_line(settings: Settings, bad: str) -> None:
    with pytest.raises(PaasError) as info:
        registry_pki.issue_node(settings, bad)
    assert "invalid node name" in str(info.value) and "\n" not in str(info.value).replace(repr(bad), "")
    assert not (settings.data_dir / "registry" / "issued.json").exists()


def test_revoking_a_node_lists_all_its_certificates_and_only_its(settings: Settings) -> None:
    assert revoked(settings) == set()  # the proxy always has a CRL to read
    first = x509.load_pem_x509_certificate(registry_pki.issue_node(settings, "w1")[0]).serial_number
    again = x509.load_pem_x509_certificate(registry_pki.issue_node(settings, "w1")[0]).serial_number
    other = x509.load_pem_x509_certificate(registry_pki.issue_node(settings, "w2")[0]).serial_number
    serials, shared = registry_pki.revoke_node(settings, "w1")
    assert sorted(serials) == sorted([first, again]) and not shared
    assert revoked(settings) == {first, again}
    assert other not in revoked(settings) and registry_pki.has_own_certificate(settings, "w2")
    assert not registry_pki.has_own_certificate(settings, "w1")
    # Signed by the CA, and valid for years: an expired CRL would fail every handshake.
    the_crl = crl(settings)
    assert the_crl.is_signature_valid(ca(settings).public_key())  # type: ignore[arg-type]
    assert the_crl.issuer == ca(settings).subject
    assert the_crl.next_update_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)
    # The host comes back (new lines): its new certificate is good, the old ones stay revoked.
    back = x509.load_pem_x509_certificate(registry_pki.issue_node(settings, "w1")[0]).serial_number
    registry_pki.revoke_node(settings, "w2")
    assert revoked(settings) == {first, again, other} and back not in revoked(settings)
    for f in (
        settings.data_dir / "registry" / "issued.json",
        settings.data_dir / "registry" / "proxy" / "crl.pem",
    ):
        assert f.stat().st_mode & 0o077 == 0, f


def test_the_proxy_gets_no_private_key_but_its_own(settings: Settings) -> None:
    proxy = settings.data_dir / "registry" / "proxy"
    assert sorted(p.name for p in proxy.iterdir()) == ["ca.crt", "crl.pem", "server.crt", "server.key"]
    assert (settings.data_dir / "registry").stat().st_mode & 0o777 == 0o700


def legacy_certificate(settings: Settings) -> int:
    """The certificate every node shared before (what an upgraded server has in its folder)."""
    d = settings.data_dir / "registry"
    the_ca = ca(settings)
    signer = registry_pki.serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, registry_pki.LEGACY_CN)])
    cert = registry_pki.make_cert(name, key, the_ca, signer, client=True)  # type: ignore[arg-type]
    (d / "client.cert").write_bytes(registry_pki.pem(cert))
    return cert.serial_number


def test_the_shared_certificate_of_older_joins_is_revoked_with_a_node_that_joined_with_it(
    settings: Settings,
) -> None:
    legacy = legacy_certificate(settings)
    assert registry_pki.legacy_serial(settings) == legacy
    registry_pki.issue_node(settings, "new-node")
    _, shared = registry_pki.revoke_node(settings, "new-node")  # it had its own: the shared one stays
    assert not shared and legacy not in revoked(settings)
    serials, shared = registry_pki.revoke_node(settings, "old-node")  # joined before: it holds the shared one
    assert serials == [] and shared and legacy in revoked(settings)
    _, again = registry_pki.revoke_node(settings, "older-node")
    assert not again and legacy in revoked(settings)  # revoked once, stays revoked
