"""HTTPS end to end: real nginx terminating TLS, certificates uploaded over OpenSSH and on the
host, checked with curl and openssl s_client; refusals; redirect, HSTS, forwarded headers; the
dashboard over TLS."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import PaasServer, free_port, shutdown, unique_app

ECHO_APP = """
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


# certificates made here, with cryptography
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CA:
    """A throwaway CA: curl trusts only it (--cacert), so a good handshake proves which cert."""

    def __init__(self, cn: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def leaf(self, names: list[str], days: float = 30, ago: float = 1) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=ago))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def cert_tar(cert: bytes, key: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("server.crt", cert), ("server.key", key)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ssh_stdin(server: PaasServer, data: bytes, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-F", str(server.ssh_config), "paas", *args], input=data, capture_output=True, timeout=60
    )


def curl(
    server: PaasServer, host: str, *args: str, https: bool = True, path: str = "/"
) -> subprocess.CompletedProcess:
    port = server.https_port if https else server.http_port
    scheme = "https" if https else "http"
    return subprocess.run(
        [
            "curl", "-sS", "--max-time", "10", "--resolve", f"{host}:{port}:127.0.0.1",
            *args, f"{scheme}://{host}:{port}{path}",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip


def served_fingerprint(server: PaasServer, host: str) -> str | None:
    """The SHA-256 of the certificate nginx presents for `host` by SNI (openssl s_client)."""
    p = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.https_port}", "-servername", host],
        input="",
        capture_output=True,
        text=True,
        timeout=15,
    )
    if "-----BEGIN CERTIFICATE-----" not in p.stdout:
        return None
    start = p.stdout.index("-----BEGIN CERTIFICATE-----")
    end = p.stdout.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    cert = x509.load_pem_x509_certificate(p.stdout[start:end].encode())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def handshake(server: PaasServer, host: str, *args: str) -> bool:
    """Whether openssl s_client completes a handshake with these options."""
    p = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.https_port}", "-servername", host, *args],
        input="",
        capture_output=True,
        text=True,
        timeout=15,
    )
    return p.returncode == 0 and "-----BEGIN CERTIFICATE-----" in p.stdout


def fingerprint(cert_pem: bytes) -> str:
    return x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256()).hex(":").upper()


def ok(result) -> str:  # type: ignore[no-untyped-def]
    out = result.stdout if isinstance(result.stdout, str) else result.stdout.decode()
    err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert result.returncode == 0, out + err
    assert "Traceback" not in out + err
    return out


def refused(result) -> str:  # type: ignore[no-untyped-def]
    out = result.stdout if isinstance(result.stdout, str) else result.stdout.decode()
    err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert result.returncode != 0, out + err
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@contextmanager
def https_server(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[PaasServer]:
    """A started server with HTTPS on a free loopback port (`server.https_port`)."""
    server = PaasServer(root)
    server.https_port = free_port()  # type: ignore[attr-defined]
    server.env.update(
        {"PAAS_HTTPS_PORT": str(server.https_port), "PAAS_HTTPS_BIND": "127.0.0.1", **(extra_env or {})}
    )
    try:
        yield server.start_with_key()
    finally:
        shutdown(server)


def deploy_echo(server: PaasServer, app: str) -> None:
    src = server.make_repo("stdlib-web", app)
    (src / "server.py").write_text(ECHO_APP)
    (src / "Procfile").write_text("web: python3 server.py\n")
    (src / "app.json").write_text("{}\n")
    for args in (["add", "-A"], ["commit", "-q", "-m", "echo"], ["remote", "add", "paas", f"paas:{app}"]):
        assert server.git(src, *args).returncode == 0
    pushed = server.git(src, "push", "paas", "main")
    assert pushed.returncode == 0, pushed.output


@pytest.fixture(scope="module")
def server() -> Iterator[PaasServer]:
    """A server with HTTPS on a free loopback port, in a folder nginx workers can search."""
    root = Path(tempfile.mkdtemp(prefix="paas-https-e2e-"))
    os.chmod(root, 0o755)
    try:
        with https_server(root) as started:
            yield started
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def apps(server: PaasServer) -> tuple[str, str]:
    a, b = unique_app("tlsa"), unique_app("tlsb")
    deploy_echo(server, a)
    deploy_echo(server, b)
    return a, b


def test_sni_http2_redirect_hsts_and_forwarded_headers(
    server: PaasServer, apps: tuple[str, str], tmp_path: Path
) -> None:
    a, b = apps
    host_a, host_b = f"{a}.localhost", f"{b}.localhost"
    ca_a, ca_b = CA("ca-a"), CA("ca-b")
    (tmp_path / "ca-a.pem").write_bytes(ca_a.pem)
    (tmp_path / "ca-b.pem").write_bytes(ca_b.pem)
    # Before any certificate: no HTTPS for the app (the handshake is refused, nothing leaks).
    assert served_fingerprint(server, host_a) is None

    # a: over SSH, a tar on stdin (Dokku's format)
    cert_a, key_a = ca_a.leaf([host_a, f"www.{a}.example"])
    out = ok(ssh_stdin(server, cert_tar(cert_a, key_a), "certs:add", a))
    assert "Certificate added" in out and "BEGIN" not in out
    # b: on the host, two files
    cert_b, key_b = ca_b.leaf([host_b])
    (tmp_path / "b.crt").write_bytes(cert_b)
    (tmp_path / "b.key").write_bytes(key_b)
    ok(server.host("certs:add", b, str(tmp_path / "b.crt"), str(tmp_path / "b.key")))

    # SNI: each name gets its own certificate, an unknown name none at all.
    assert served_fingerprint(server, host_a) == fingerprint(cert_a)
    assert served_fingerprint(server, host_b) == fingerprint(cert_b)
    assert served_fingerprint(server, "nobody.localhost") is None
    got = curl(server, host_a, "--cacert", str(tmp_path / "ca-a.pem"), "-w", "\n%{http_version}", "--http2")
    body, version = ok(got).rsplit("\n", 1)
    assert version == "2"
    headers = json.loads(body)["headers"]
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-port"] == str(server.https_port)
    # Mozilla "intermediate": TLS 1.2 with forward-secret AEAD suites only (nginx's default would
    # take ECDHE-ECDSA-AES128-SHA too).
    assert handshake(server, host_a, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert not handshake(server, host_a, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA")
    # b's certificate is not trusted by a's CA: curl proves which one was served.
    assert curl(server, host_b, "--cacert", str(tmp_path / "ca-a.pem")).returncode != 0
    assert ok(curl(server, host_b, "--cacert", str(tmp_path / "ca-b.pem")))

    # Plain HTTP redirects with path and query kept; off keeps plain HTTP.
    got = ok(
        curl(
            server,
            host_a,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            https=False,
            path="/p/q?x=1&y=2",
        )
    )
    assert got == f"301 https://{host_a}:{server.https_port}/p/q?x=1&y=2"
    ok(server.ssh("certs:redirect", a, "off"))
    got = ok(curl(server, host_a, https=False, path="/p?x=1"))
    assert json.loads(got)["headers"]["x-forwarded-proto"] == "http"
    ok(server.ssh("certs:redirect", a, "on"))

    # HSTS: off by default, on when asked.
    cacert = ["--cacert", str(tmp_path / "ca-a.pem"), "-D", "-", "-o", "/dev/null"]
    assert "strict-transport-security" not in ok(curl(server, host_a, *cacert)).lower()
    ok(server.ssh("certs:hsts", a, "on"))
    assert "strict-transport-security: max-age=63072000" in ok(curl(server, host_a, *cacert)).lower()
    # Dokku's nginx properties shape the header, and turn it off over certs:hsts until unset.
    ok(server.ssh("nginx:set", a, "hsts-max-age", "3600"))
    ok(server.ssh("nginx:set", a, "hsts-include-subdomains", "true"))
    got = ok(curl(server, host_a, *cacert)).lower()
    assert "strict-transport-security: max-age=3600; includesubdomains\n" in got
    ok(server.ssh("nginx:set", a, "hsts", "false"))
    assert "strict-transport-security" not in ok(curl(server, host_a, *cacert)).lower()
    ok(server.ssh("nginx:set", a, "hsts"))
    assert "strict-transport-security: max-age=3600" in ok(curl(server, host_a, *cacert)).lower()
    # ... and the X-Forwarded-* headers the app gets; a variable that is not a forwarding one is
    # refused (it could hand the app a cookie), and so is anything that would end the directive.
    ok(server.ssh("nginx:set", a, "x-forwarded-ssl", "on"))
    ok(server.ssh("nginx:set", a, "x-forwarded-port-value", "443"))
    ok(server.ssh("nginx:set", a, "x-forwarded-for-value", "$remote_addr"))
    got = ok(curl(server, host_a, "--cacert", str(tmp_path / "ca-a.pem"), "-H", "X-Forwarded-For: 6.6.6.6"))
    headers = json.loads(got)["headers"]
    assert headers["x-forwarded-ssl"] == "on" and headers["x-forwarded-port"] == "443"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    for bad in ("$http_cookie", "'on; return 200 pwned'", "'443 always'"):
        refused = server.ssh("nginx:set", a, "x-forwarded-port-value", bad)
        assert refused.returncode != 0 and "refusing header value" in refused.stderr, refused.stderr
    for key in ("x-forwarded-ssl", "x-forwarded-port-value", "x-forwarded-for-value", "hsts-max-age"):
        ok(server.ssh("nginx:set", a, key))
    ok(server.ssh("nginx:set", a, "hsts-include-subdomains"))

    # The report: names, issuer, expiry, which of the app's names it covers; never the key.
    ok(server.ssh("domains:add", a, f"api.{a}.example"))
    report = ok(server.ssh("certs:report", a))
    assert "Issuer:                        CN=ca-a" in report
    assert f"Covers:                        {host_a}" in report
    assert f"Does not cover:                api.{a}.example" in report
    assert "PRIVATE" not in report
    data = json.loads(ok(server.ssh("certs:report", a, "--format", "json")))
    assert data["sans"] == [host_a, f"www.{a}.example"] and data["hsts"] is True
    assert "PRIVATE" not in json.dumps(data)
    # The uncovered name stays on plain HTTP (no redirect to a certificate that does not fit).
    got = ok(curl(server, f"api.{a}.example", https=False))
    assert json.loads(got)["headers"]["host"].startswith(f"api.{a}.example")

    # Keys are 0600 in 0700 folders.
    keys = list((server.data_dir / "plugins" / "certs").glob("app-*/server.key"))
    assert len(keys) == 2
    for k in keys:
        assert k.stat().st_mode & 0o777 == 0o600
        assert k.parent.stat().st_mode & 0o777 == 0o700

    # certs:update replaces, certs:remove takes HTTPS down.
    cert_a2, key_a2 = ca_a.leaf([host_a])
    ok(ssh_stdin(server, cert_tar(cert_a2, key_a2), "certs:update", a))
    assert served_fingerprint(server, host_a) == fingerprint(cert_a2)
    ok(server.ssh("certs:remove", b))
    assert served_fingerprint(server, host_b) is None
    assert json.loads(ok(curl(server, host_b, https=False)))["headers"]["host"].startswith(host_b)


def test_bad_uploads_are_refused_with_one_line_and_nothing_installed(
    server: PaasServer, apps: tuple[str, str], tmp_path: Path
) -> None:
    a, _ = apps
    host = f"{a}.localhost"
    ca = CA("ca-bad")
    before = served_fingerprint(server, host)
    good_cert, good_key = ca.leaf([host])
    _, other_key = ca.leaf([host])
    expired_cert, expired_key = ca.leaf([host], days=-1, ago=10)
    cases = {
        "mismatch": (good_cert, other_key, "the key does not match the certificate"),
        "expired": (expired_cert, expired_key, "the certificate expired on"),
        "garbage cert": (b"hello, not a certificate\n", good_key, "not a PEM certificate"),
        "garbage key": (
            good_cert,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "not a PEM private key",
        ),
    }
    for what, (cert, key, message) in cases.items():
        line = refused(ssh_stdin(server, cert_tar(cert, key), "certs:update", a))
        assert message in line, (what, line)
        assert "PRIVATE" not in line
        assert served_fingerprint(server, host) == before, what
    line = refused(ssh_stdin(server, b"\x00" * 600 + b"garbage", "certs:add", a))
    assert "tar" in line
    # Over SSH a path would name a file on the server: refused without reading it.
    line = refused(server.ssh("certs:add", a, "/etc/ssl/certs/ca-certificates.crt", "/etc/shadow"))
    assert "over SSH" in line
    # The dashboard's certificate is an admin's (this key is the first, an admin: it works on the host).
    assert served_fingerprint(server, host) == before


def test_untrusted_clients_cannot_forge_forwarded_headers(server: PaasServer, apps: tuple[str, str]) -> None:
    """ATTACK: a client claims to be someone else behind a TLS proxy; the app must see the truth."""
    _, b = apps
    got = ok(
        curl(
            server,
            f"{b}.localhost",
            "-H", "X-Forwarded-For: 203.0.113.9",
            "-H", "X-Forwarded-Proto: https",
            "-H", "X-Forwarded-Port: 443",
            https=False,
        )
    )  # fmt: skip
    headers = json.loads(got)["headers"]
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == str(server.http_port)


def test_trusted_proxy_keeps_forwarded_headers(tmp_path: Path) -> None:
    """With PAAS_TRUSTED_PROXIES naming the peer (here loopback), what it sends is kept."""
    with https_server(tmp_path, {"PAAS_TRUSTED_PROXIES": "127.0.0.0/8"}) as server:
        app = unique_app("tlsp")
        deploy_echo(server, app)
        got = ok(
            curl(
                server,
                f"{app}.localhost",
                "-H", "X-Forwarded-For: 203.0.113.9",
                "-H", "X-Forwarded-Proto: https",
                "-H", "X-Forwarded-Port: 443",
                https=False,
            )
        )  # fmt: skip
        headers = json.loads(got)["headers"]
        assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
        assert headers["x-forwarded-proto"] == "https"
        assert headers["x-forwarded-port"] == "443"


def test_self_signed_and_dashboard_over_tls(
    server: PaasServer, apps: tuple[str, str], tmp_path: Path
) -> None:
    _, b = apps
    out = ok(server.ssh("certs:generate", b))
    assert "Self-signed certificate made" in out
    assert served_fingerprint(server, f"{b}.localhost") is not None
    assert ok(curl(server, f"{b}.localhost", "-k", "-o", "/dev/null", "-w", "%{http_code}")) == "200"

    dash = "paas.localhost"
    ca = CA("ca-dash")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    cert, key = ca.leaf([dash])
    (tmp_path / "d.crt").write_bytes(cert)
    (tmp_path / "d.key").write_bytes(key)
    ok(server.host("certs:add", "paas", str(tmp_path / "d.crt"), str(tmp_path / "d.key")))
    assert served_fingerprint(server, dash) == fingerprint(cert)
    got = ok(
        curl(
            server,
            dash,
            "--cacert",
            str(tmp_path / "ca.pem"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            path="/login",
        )
    )
    assert got == "200"
    got = ok(
        curl(
            server, dash, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", https=False, path="/login"
        )
    )
    assert got == f"301 https://{dash}:{server.https_port}/login"
    # A restart keeps the dashboard on HTTPS (the server re-renders it with the plugin's help).
    server.stop()
    server.start()
    assert served_fingerprint(server, dash) == fingerprint(cert)
    ok(server.host("certs:remove", "paas"))
    assert served_fingerprint(server, dash) is None
