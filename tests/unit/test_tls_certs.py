"""The certs plugin's checks: what is refused before anything is written, tar input, ACME timing."""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from paas.core.context import Context
from paas.errors import PaasError
from paas.plugins import plugins
from paas.settings import Settings

plugins(set())  # loading the built-in plugins makes them importable as paas_plugins.<name>
from paas_plugins.certs import letsencrypt, pem, service  # noqa: E402


def pair(
    names: list[str], days: float = 10, ago: float = 1, key: object | None = None
) -> tuple[bytes, bytes, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=ago))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, key


def test_a_good_pair_is_normalised_and_described() -> None:
    cert, key, _ = pair(["a.example.com", "*.b.example.com"])
    checked = pem.check_pair(cert, key)
    assert checked.info.sans == ("a.example.com", "*.b.example.com")
    assert checked.info.covers("a.example.com") and checked.info.covers("x.b.example.com")
    assert not checked.info.covers("x.y.b.example.com") and not checked.info.covers("b.example.com")
    assert checked.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert checked.info.self_signed and not checked.info.ocsp


@pytest.mark.parametrize(
    "case, message",
    [
        ("mismatch", "the key does not match the certificate"),
        ("expired", "the certificate expired on"),
        ("garbage cert", "not a PEM certificate"),
        ("garbage key", "not a PEM private key"),
        ("encrypted key", "the key is encrypted"),
        ("weak rsa", "use 2048 bits or more"),
        ("empty", "empty or too large"),
    ],
)
def test_bad_input_is_refused(case: str, message: str) -> None:
    cert, key, k = pair(["a.example.com"])
    if case == "mismatch":
        key = pair(["a.example.com"])[1]
    elif case == "expired":
        cert, key, _ = pair(["a.example.com"], days=-1, ago=5)
    elif case == "garbage cert":
        cert = b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    elif case == "garbage key":
        key = b"\x00\x01binary garbage"
    elif case == "encrypted key":
        key = k.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    elif case == "weak rsa":
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        cert, key, _ = pair(["a.example.com"], key=weak)
    elif case == "empty":
        cert = b""
    with pytest.raises(PaasError, match=message) as err:
        pem.check_pair(cert, key)
    assert "PRIVATE" not in str(err.value) and "\n" not in str(err.value)


def _tar(members: dict[str, bytes], kind: bytes = tarfile.REGTYPE) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.type = kind
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_tar_is_read_in_memory_and_only_regular_members_count() -> None:
    cert, key, _ = pair(["a.example.com"])
    assert pem.from_tar(_tar({"./server.crt": cert, "dir/server.key": key})) == (cert, key)
    # A symlink member named server.key (to /etc/shadow) is refused, as every archive's is.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("server.crt")
        info.size = len(cert)
        tar.addfile(info, io.BytesIO(cert))
        link = tarfile.TarInfo("server.key")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        tar.addfile(link)
    with pytest.raises(PaasError, match="Archive contains symlinks with absolute targets"):
        pem.from_tar(buf.getvalue())
    with pytest.raises(PaasError, match="not a tar"):
        pem.from_tar(b"certainly not a tar file" * 40)
    with pytest.raises(PaasError, match="too large"):
        pem.from_tar(b"\0" * (pem.MAX_TAR + 1))


def test_self_signed_covers_the_names() -> None:
    made = pem.self_signed(["a.localhost", "www.a.example"])
    assert made.info.sans == ("a.localhost", "www.a.example")
    assert made.info.not_after - made.info.not_before > dt.timedelta(days=300)


@pytest.mark.parametrize(
    "host, public",
    [
        ("app.example.com", True),
        ("app.localhost", False),
        ("localhost", False),
        ("app.internal", False),
        ("*.example.com", False),
        ("127.0.0.1", False),
        ("printer.lan", False),
    ],
)
def test_only_public_names_are_ordered(host: str, public: bool) -> None:
    assert letsencrypt.is_public(host) is public


def test_renewal_at_two_thirds_and_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    info = pem.CertInfo(
        "CN=a", ("a.example.com",), "CN=ca", start, start + dt.timedelta(days=90), "", False, False, ""
    )
    state: dict[str, str] = {}
    subject = letsencrypt.Subject("a", None, None, ("a.example.com",))  # type: ignore[arg-type]
    monkeypatch.setattr(letsencrypt.service, "current_info", lambda s: info)
    monkeypatch.setattr(letsencrypt.service, "get", lambda ctx, s, k: state.get(k))
    at = start.timestamp()
    assert not letsencrypt.due(None, subject, at + 59 * 86400)  # type: ignore[arg-type]
    assert letsencrypt.due(None, subject, at + 60 * 86400 + 1)  # type: ignore[arg-type]
    state[letsencrypt.S_ACME_NEXT] = str(at + 61 * 86400)
    assert not letsencrypt.due(None, subject, at + 60 * 86400 + 1)  # type: ignore[arg-type]
    # a name added since: due at once
    state.clear()
    wider = letsencrypt.Subject("a", None, None, ("a.example.com", "b.example.com"))  # type: ignore[arg-type]
    assert letsencrypt.due(None, wider, at + 86400)  # type: ignore[arg-type]


def test_the_renewal_pass_builds_subjects_only_for_apps_with_acme_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each reconcile pass asks which certificates are due: it read every app's flag and
    hostnames (200 apps: 400 reads every 5 s); the apps with the flag on are found in one read."""
    from paas_plugins.certs import service

    from paas.core.context import Context
    from paas.settings import Settings

    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    for name in ("one", "two", "three"):
        ctx.store.create_app(name)
    service.put(ctx, service.app_subject(ctx, ctx.store.get_app("two")), service.S_ACME, "on")  # type: ignore[arg-type]
    built: list[str] = []
    subject = service.app_subject
    monkeypatch.setattr(service, "app_subject", lambda ctx, app: built.append(app.name) or subject(ctx, app))
    assert [s.name for s in letsencrypt.enabled(ctx)] == ["two"]
    assert built == ["two"]


def test_a_parents_certificate_change_routes_its_review_apps_without_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review app without a certificate of its own is served with its parent's (a wildcard):
    a certificate added to, replaced on or removed from the parent re-routes those review apps
    with it (they had waited for the reconcile pass's refresh of every route, now 5 minutes)."""
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    parent = ctx.store.create_app("shop")
    plain = ctx.store.create_app("shop-pr-1", review=(parent.id, "pr-1"))
    own = ctx.store.create_app("shop-pr-2", review=(parent.id, "pr-2"))
    ctx.store.create_app("other")
    monkeypatch.setattr(service, "has_cert", lambda s: s.app is not None and s.app.id == own.id)
    routed: list[str] = []
    monkeypatch.setattr(service.routing, "sync_app_route", lambda ctx, name: routed.append(name))
    service.sync(ctx, service.app_subject(ctx, parent))
    assert routed == ["shop", plain.name]
