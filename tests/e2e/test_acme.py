"""ACME end to end against Debian's `pebble` (a real RFC 8555 server) run here on loopback: the
flow with validation skipped, renewal of a short-lived certificate by the reconcile loop, pebble
down (clear error, old certificate kept), then real HTTP-01 validation against our router with
`pebble-challtestsrv` answering DNS for the test names."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import PaasServer, free_port, unique_app, wait_for
from tests.e2e.test_https import curl, deploy_echo, https_server, ok, served_fingerprint

PEBBLE = "/usr/bin/pebble"  # Debian's package (dpkg -L pebble)
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
DOMAIN = "apps.example.com"  # public-looking, so an app's default name is certified too
VALIDITY = 24  # seconds: short enough that the reconcile loop renews while the test watches


class Pebble:
    """pebble on fixed loopback ports (the PaaS is told its directory once), restartable."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port, self.mgmt = free_port(), free_port()
        self.dns_port = free_port()
        self.cert, self.key = root / "pebble.crt", root / "pebble.key"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.proc: subprocess.Popen | None = None
        self.dns: subprocess.Popen | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self, http_port: int, always_valid: bool) -> None:
        config = self.root / "pebble.json"
        config.write_text(
            json.dumps(
                {
                    "pebble": {
                        "listenAddress": f"127.0.0.1:{self.port}",
                        "managementListenAddress": f"127.0.0.1:{self.mgmt}",
                        "certificate": str(self.cert),
                        "privateKey": str(self.key),
                        "httpPort": http_port,  # where its VA fetches HTTP-01 answers: our router
                        "tlsPort": free_port(),
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": False,
                        "certificateValidityPeriod": VALIDITY,
                    }
                }
            )
        )
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        args = [PEBBLE, "-config", str(config)]
        if always_valid:
            env["PEBBLE_VA_ALWAYS_VALID"] = "1"
        else:
            self.dns = subprocess.Popen(
                [
                    CHALLTESTSRV, "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
                    "-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}",
                    "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                ],
                stdout=open(self.root / "challtestsrv.log", "ab"),
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            args += ["-dnsserver", f"127.0.0.1:{self.dns_port}"]
        self.proc = subprocess.Popen(
            args, env=env, stdout=open(self.root / "pebble.log", "ab"), stderr=subprocess.STDOUT
        )
        assert wait_for(self._answers, timeout=20), (self.root / "pebble.log").read_text()

    def _answers(self) -> bool:
        try:
            self.get(f"https://127.0.0.1:{self.port}/dir")
            return True
        except OSError:
            return False

    def get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.cert))
        with urllib.request.urlopen(url, context=context, timeout=5) as resp:
            return resp.read()

    def root_pem(self) -> bytes:
        return self.get(f"https://127.0.0.1:{self.mgmt}/roots/0")

    def stop(self) -> None:
        for proc in (self.proc, self.dns):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
        self.proc = self.dns = None


@pytest.fixture(scope="module")
def pebble() -> Iterator[Pebble]:
    root = Path(tempfile.mkdtemp(prefix="paas-pebble-"))
    p = Pebble(root)
    try:
        yield p
    finally:
        p.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(pebble: Pebble) -> Iterator[PaasServer]:
    root = Path(tempfile.mkdtemp(prefix="paas-acme-e2e-"))
    os.chmod(root, 0o755)  # nginx workers (www-data) read the challenge answers under it
    env = {
        "PAAS_DOMAIN": DOMAIN,
        "PAAS_ACME_DIRECTORY": pebble.directory,
        "PAAS_ACME_CA_BUNDLE": str(pebble.cert),
        "PAAS_ACME_EMAIL": "ops@example.com",
    }
    try:
        with https_server(root, env) as started:
            yield started
    finally:
        shutil.rmtree(root, ignore_errors=True)


def events(server: PaasServer, app: str) -> list[str]:
    out = ok(server.ssh("events", "--app", app, "--format", "json"))
    return [e["action"] for e in json.loads(out)]


def test_issue_renew_and_acme_server_down(server: PaasServer, pebble: Pebble, tmp_path: Path) -> None:
    pebble.start(server.http_port, always_valid=True)
    app = unique_app("acme")
    deploy_echo(server, app)
    host, custom = f"{app}.{DOMAIN}", f"www.{app}.example.org"
    ok(server.ssh("domains:add", app, custom))

    out = ok(server.ssh("letsencrypt:enable", app))
    assert "Certificate installed" in out and host in out and custom in out
    (tmp_path / "root.pem").write_bytes(pebble.root_pem())
    for name in (host, custom):  # one certificate for both names, trusted via pebble's root
        got = ok(curl(server, name, "--cacert", str(tmp_path / "root.pem"), "-w", "\n%{http_version}"))
        assert got.endswith("\n2")
    first = served_fingerprint(server, host)
    report = json.loads(ok(server.ssh("certs:report", app, "--format", "json")))
    assert report["letsencrypt"] is True and report["source"] == "letsencrypt"
    assert "Pebble" in report["issuer"]
    assert sorted(report["sans"]) == sorted([host, custom])
    assert app in ok(server.ssh("letsencrypt:list"))
    assert "letsencrypt:issued" in events(server, app)
    # HTTP moves to HTTPS, ACME challenges excepted (they must stay reachable over HTTP).
    redirect = ok(curl(server, host, "-o", "/dev/null", "-w", "%{http_code}", https=False))
    assert redirect == "301"
    challenge = curl(server, host, "-o", "/dev/null", "-w", "%{http_code}", https=False,
                     path="/.well-known/acme-challenge/nothing-here")  # fmt: skip
    assert ok(challenge) == "404"

    # The certificate lives VALIDITY seconds: the reconcile loop renews it at 2/3 by itself.
    renewed = wait_for(lambda: served_fingerprint(server, host) not in (first, None), timeout=VALIDITY + 20)
    assert renewed, "the short-lived certificate was not renewed"
    # The event is written after nginx serves the new certificate: under load, a moment later.
    assert wait_for(lambda: "letsencrypt:renewed" in events(server, app), timeout=30)

    # A renewal on demand respects the due date: the fresh certificate is not ordered again.
    out = ok(server.ssh("letsencrypt:auto-renew", app))
    assert f"{app}: not due (renews from" in out, out
    # pebble down: the loop's renewal fails with a clear error, the certificate that serves stays
    # in place, and asking again waits out the backoff (no order is sent).
    pebble.stop()
    serving = served_fingerprint(server, host)
    assert wait_for(lambda: "letsencrypt:failed" in events(server, app), timeout=VALIDITY + 20)
    assert served_fingerprint(server, host) == serving
    report = json.loads(ok(server.ssh("certs:report", app, "--format", "json")))
    assert f"cannot reach the ACME server at 127.0.0.1:{pebble.port}" in report["letsencrypt_error"]
    out = ok(server.ssh("letsencrypt:auto-renew", app))
    assert f"{app}: not due (after the last failure, the next try is at" in out, out
    assert events(server, app).count("letsencrypt:failed") == 1

    ok(server.ssh("letsencrypt:disable", app))
    assert served_fingerprint(server, host) is None
    assert json.loads(ok(curl(server, host, https=False)))["headers"]["host"].startswith(host)


def test_real_http01_validation_against_our_router(
    server: PaasServer, pebble: Pebble, tmp_path: Path
) -> None:
    """pebble's VA resolves the names with pebble-challtestsrv (-> 127.0.0.1) and fetches the
    token from our nginx on the router's HTTP port: nothing is skipped."""
    pebble.stop()
    pebble.start(server.http_port, always_valid=False)
    app = unique_app("http01")
    deploy_echo(server, app)
    host = f"{app}.{DOMAIN}"
    out = ok(server.ssh("letsencrypt:enable", app))
    assert "Certificate installed" in out
    (tmp_path / "root.pem").write_bytes(pebble.root_pem())
    ok(curl(server, host, "--cacert", str(tmp_path / "root.pem")))
    access_log = server.data_dir / "nginx" / "logs" / "access.log"

    def fetched() -> list[str]:  # nginx writes its access log within a second (buffer=64k flush=1s)
        lines = access_log.read_text().splitlines()
        return [ln for ln in lines if "Pebble-VA" in ln and "acme-challenge/" in ln]

    lines = wait_for(fetched, timeout=5)
    assert lines and all('" 200 ' in line for line in lines), lines

    # The dashboard gets its own certificate the same way (an admin's command, on the host).
    dash = f"paas.{DOMAIN}"
    assert served_fingerprint(server, dash) is None
    out = ok(server.host("letsencrypt:enable", "paas"))
    assert dash in out
    got = curl(server, dash, "--cacert", str(tmp_path / "root.pem"), "-o", "/dev/null", "-w", "%{http_code}",
               path="/login")  # fmt: skip
    assert ok(got) == "200"
    assert "paas" in ok(server.host("letsencrypt:list"))
