"""The router's TLS blocks, rendered and checked by the real `nginx -t`; unsafe paths refused."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from paas.core.routes import Route, RouteExtras, RouteTls
from paas.errors import PaasError
from paas.router.nginx import Router
from paas.settings import Settings

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def make_pair(folder: Path, names: list[str], ocsp: bool = False) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=10))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    )
    if ocsp:
        aia = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("http://ocsp.invalid/")
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([aia]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    folder.mkdir(parents=True, exist_ok=True)
    crt, k = folder / "server.crt", folder / "server.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return crt, k


@pytest.fixture
def router(tmp_path: Path) -> Router:
    settings = Settings(
        data_dir=tmp_path,
        http_port=18080,
        http_bind="127.0.0.1",
        https_port=18443,
        https_bind="127.0.0.1",
        trusted_proxies=("10.1.0.0/16", "fd00::/8"),
    )
    return Router(settings)


def nginx_t(router: Router) -> None:
    result = subprocess.run(
        [NGINX, "-t", "-p", str(router.prefix), "-c", str(router.main_conf)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def tls_route(tmp_path: Path, **kwargs: object) -> Route:
    crt, key = make_pair(tmp_path / "certs", ["a.localhost"])
    extras = RouteExtras()
    extras.set_tls(RouteTls(str(crt), str(key), ("a.localhost",), **kwargs))  # type: ignore[arg-type]
    extras.set_acme_root(str(tmp_path / "acme"))
    return Route("a", ["a.localhost", "api.a.example"], ["127.0.0.1:1"], extras)


def test_main_config_has_the_intermediate_profile_and_rejects_unknown_names(router: Router) -> None:
    router.ensure_layout()
    text = router.main_conf.read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert "ssl_session_tickets off;" in text
    assert "listen 127.0.0.1:18443 ssl http2 default_server;" in text
    assert "ssl_reject_handshake on;" in text
    assert "10.1.0.0/16 1;" in text and "fd00::/8 1;" in text
    nginx_t(router)


def test_https_off_renders_no_tls(tmp_path: Path) -> None:
    r = Router(Settings(data_dir=tmp_path, http_port=18080, http_bind="127.0.0.1", https_port=0))
    r.set_route(tls_route(tmp_path))
    assert "ssl" not in (r.apps_dir / "a.conf").read_text()
    assert "ssl_protocols" not in r.main_conf.read_text()


def test_tls_block_for_covered_names_and_redirect_only_for_them(router: Router, tmp_path: Path) -> None:
    router.set_route(tls_route(tmp_path, hsts=True))
    text = (router.apps_dir / "a.conf").read_text()
    https = text[text.index("ssl http2") :]
    assert "server_name a.localhost;" in https and "api.a.example" not in https
    assert "Strict-Transport-Security" in https
    assert "return 301 https://$host:18443$request_uri;" in text
    plain = text[: text.index("# Names the certificate covers")]
    assert "server_name api.a.example;" in plain and "return 301" not in plain
    assert "location ^~ /.well-known/acme-challenge/" in plain
    assert "X-Forwarded-Proto $paas_forwarded_proto" in text
    nginx_t(router)


def test_redirect_off_keeps_one_plain_block(router: Router, tmp_path: Path) -> None:
    router.set_route(tls_route(tmp_path, redirect=False))
    text = (router.apps_dir / "a.conf").read_text()
    assert "return 301" not in text
    assert "server_name a.localhost api.a.example;" in text
    assert "Strict-Transport-Security" not in text
    nginx_t(router)


def test_stapling_only_with_an_ocsp_url(router: Router, tmp_path: Path) -> None:
    crt, key = make_pair(tmp_path / "ocsp", ["a.localhost"], ocsp=True)
    extras = RouteExtras()
    extras.set_tls(RouteTls(str(crt), str(key), ("a.localhost",), stapling=True))
    router.set_route(Route("a", ["a.localhost"], ["127.0.0.1:1"], extras))
    assert "ssl_stapling on;" in (router.apps_dir / "a.conf").read_text()
    router.set_route(tls_route(tmp_path))
    assert "ssl_stapling" not in (router.apps_dir / "a.conf").read_text()


@pytest.mark.parametrize(
    "path",
    [
        "/x/server.crt; include /etc/passwd",
        "relative/server.crt",
        "/x/../../etc/shadow",
        "/x/a b",
        "/x/$host",
    ],
)
def test_unsafe_certificate_paths_are_refused(path: str) -> None:
    with pytest.raises(PaasError, match="refusing certificate path"):
        RouteTls(path, "/x/server.key")
    with pytest.raises(PaasError, match="refusing challenge folder"):
        RouteExtras().set_acme_root(path)


def test_wildcard_certificate_covers_one_label(router: Router, tmp_path: Path) -> None:
    crt, key = make_pair(tmp_path / "w", ["*.example.org"])
    extras = RouteExtras()
    extras.set_tls(RouteTls(str(crt), str(key), ("*.example.org",)))
    router.set_route(Route("w", ["www.example.org", "a.b.example.org"], ["127.0.0.1:1"], extras))
    text = (router.apps_dir / "w.conf").read_text()
    https = text[text.index("ssl http2") :]
    assert "server_name www.example.org;" in https and "a.b.example.org" not in https


def test_dashboard_over_tls_and_with_acme_only(router: Router, tmp_path: Path) -> None:
    crt, key = make_pair(tmp_path / "d", ["paas.localhost"])
    router.set_dashboard(
        "paas.localhost", "127.0.0.1:5000", tls=RouteTls(str(crt), str(key), ("paas.localhost",))
    )
    text = (router.apps_dir / "_dashboard.conf").read_text()
    assert "ssl_certificate " in text and "X-Forwarded-Proto https;" in text and "return 301" in text
    assert router.dashboard_upstream() == ("127.0.0.1:5000", "127.0.0.1:5000")  # streams: the same
    nginx_t(router)
    router.set_dashboard("paas.localhost", "127.0.0.1:5000", acme_root=str(tmp_path / "acme"))
    text = (router.apps_dir / "_dashboard.conf").read_text()
    assert "ssl" not in text and "acme-challenge" in text
    router.set_dashboard("paas.localhost", "127.0.0.1:5000")
    assert "acme-challenge" not in (router.apps_dir / "_dashboard.conf").read_text()


def test_a_new_certificate_at_the_same_path_changes_the_config(router: Router, tmp_path: Path) -> None:
    crt, key = make_pair(tmp_path / "c", ["a.localhost"])
    extras = RouteExtras()
    extras.set_tls(RouteTls(str(crt), str(key), ("a.localhost",), fingerprint="AA:BB"))
    first = router.render_app(Route("a", ["a.localhost"], ["127.0.0.1:1"], extras))
    extras.set_tls(RouteTls(str(crt), str(key), ("a.localhost",), fingerprint="CC:DD"))
    assert router.render_app(Route("a", ["a.localhost"], ["127.0.0.1:1"], extras)) != first


def test_trusted_proxies_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAAS_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7")
    assert Settings.from_env().trusted_proxies == ("10.0.0.0/8", "192.168.1.7/32")
    monkeypatch.setenv("PAAS_TRUSTED_PROXIES", "10.0.0.0/8; include /etc/passwd")
    with pytest.raises(SystemExit, match="PAAS_TRUSTED_PROXIES"):
        Settings.from_env()
