"""Attacks through a pushed Dockerfile, over git push with a real docker build.

Each push here was built and deployed by the code before the Dockerfile rules (checked with the
rules stashed): another app's image as FROM or COPY --from (its code readable), ADD of a loopback
URL (dockerd fetched it from the host's network), USER 00 / a uid-0 alias (the app ran as root).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import PaasServer, Result, unique_app

pytestmark = pytest.mark.e2e


def _new_app(paas: PaasServer, template: str, prefix: str) -> tuple[str, Path]:
    app = unique_app(prefix)
    src = paas.make_repo(template, app)
    assert paas.git(src, "remote", "add", "paas", f"paas:{app}").returncode == 0
    return app, src


def _push_dockerfile(paas: PaasServer, src: Path, text: str) -> Result:
    (src / "Dockerfile").write_text(text)
    assert paas.git(src, "commit", "-qam", "dockerfile", "--allow-empty").returncode == 0
    return paas.git(src, "push", "paas", "main")


def _images(app: str) -> list[str]:
    found = docker.from_env().images.list(name=f"paas/app-{app}")
    return [tag for image in found for tag in image.tags]


def _running(app: str) -> list:
    labels = [f"paas.app={app}", "paas.role=process"]
    return docker.from_env().containers.list(filters={"label": labels})


@pytest.fixture(scope="module")
def victim(paas: PaasServer) -> str:
    """An app whose image holds its code: the image tag another tenant would name."""
    app, src = _new_app(paas, "dockerfile-app", "victim")
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode == 0, r.output
    [tag] = _images(app)
    return tag


def test_from_another_apps_image_is_refused(paas: PaasServer, victim: str) -> None:
    app, src = _new_app(paas, "dockerfile-app", "thief")
    # Before the rules this deployed, serving the victim's code: "docker app stolen uid=1000 ...".
    r = _push_dockerfile(paas, src, f'FROM {victim}\nCMD ["python3", "/srv/app/server.py", "stolen"]\n')
    assert r.returncode != 0, paas.get(f"{app}.localhost")
    assert f"Dockerfile line 1: FROM {victim}: may only name the stack image (paas/stack:latest)" in r.stderr
    assert "Traceback" not in r.output
    assert _images(app) == [] and _running(app) == []


def test_copy_from_another_apps_image_is_refused_and_what_runs_stays(paas: PaasServer, victim: str) -> None:
    app, src = _new_app(paas, "dockerfile-app", "copier")
    host = f"{app}.localhost"
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode == 0, r.output
    assert paas.get(host) == (200, "docker app from CMD uid=1000 port=8080\n")

    text = (
        (src / "Dockerfile")
        .read_text()
        .replace("COPY server.py .", f"COPY --from={victim} /srv/app/server.py ./stolen.py\nCOPY server.py .")
    )
    r = _push_dockerfile(paas, src, text)
    assert r.returncode != 0
    assert f"Dockerfile line 4: COPY --from={victim}: may only name an earlier stage" in r.stderr
    assert paas.get(host) == (200, "docker app from CMD uid=1000 port=8080\n")  # v1 still serves


@pytest.fixture
def loopback_only() -> Iterator[tuple[int, list[str]]]:
    """A service on the host's loopback (like an admin port), recording the paths asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b"host-only secret\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], asked
    finally:
        server.shutdown()
        server.server_close()


def test_add_of_a_loopback_url_is_refused_and_never_fetched(
    paas: PaasServer, loopback_only: tuple[int, list[str]]
) -> None:
    port, asked = loopback_only
    app, src = _new_app(paas, "dockerfile-app", "fetcher")
    text = (
        (src / "Dockerfile")
        .read_text()
        .replace("COPY server.py .", f"COPY server.py .\nADD http://127.0.0.1:{port}/secret /srv/app/secret")
    )
    r = _push_dockerfile(paas, src, text)
    assert asked == []  # dockerd never asked the host-only service (before the rules: ["/secret"])
    assert r.returncode != 0
    assert f"Dockerfile line 5: ADD http://127.0.0.1:{port}/secret: URLs are refused" in r.stderr
    assert _running(app) == []


@pytest.mark.parametrize("user", ["toor", "00", "0"])
def test_root_under_any_name_runs_as_uid_1000(paas: PaasServer, user: str) -> None:
    app, src = _new_app(paas, "dockerfile-root", "rootish")
    r = _push_dockerfile(paas, src, (src / "Dockerfile").read_text().replace("USER toor", f"USER {user}"))
    assert r.returncode == 0, r.output
    assert paas.get(f"{app}.localhost") == (200, "docker app as toor uid=1000 port=8080\n")
    r = paas.ssh("run", app, "id", "-u")
    assert (r.returncode, r.stdout.strip()) == (0, "1000"), r.output
    [web] = _running(app)
    assert web.image.attrs["Config"]["User"] == "1000:1000"
