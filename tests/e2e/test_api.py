"""The JSON API end to end: a real server, through the nginx router at paas.localhost, on a
deployed app; the same operations as the SSH commands, with the same effects."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid

import pytest

from tests.e2e.conftest import PaasServer, unique_app, wait_for


class Api:
    """Requests to /api/v1 through the router, as a client on another machine would send them."""

    def __init__(self, paas: PaasServer, token: str | None) -> None:
        self.paas, self.token = paas, token

    def __call__(self, method: str, path: str, body: object = None, timeout: float = 120):  # type: ignore[no-untyped-def]
        conn = http.client.HTTPConnection("127.0.0.1", self.paas.http_port, timeout=timeout)
        headers = {"Host": "paas.localhost", "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, "/api/v1" + path, json.dumps(body) if body is not None else None, headers)
            resp = conn.getresponse()
            data = resp.read().decode()
            return resp.status, (json.loads(data) if data else None), dict(resp.getheaders())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def api(paas: PaasServer) -> Api:
    paas.add_user("apiuser", "api user password", admin=True)
    return Api(paas, paas.token("apiuser"))


@pytest.fixture(scope="module")
def app(paas: PaasServer) -> str:
    name = unique_app("api")
    src = paas.make_repo("cmd-app", name)
    paas.git(src, "remote", "add", "paas", f"paas:{name}")
    pushed = paas.git(src, "push", "paas", "main")
    assert pushed.returncode == 0, pushed.output
    return name


def set_by_users(config: dict) -> dict:
    """The config without GIT_REV, which every push sets to its commit (Dokku's rev-env-var)."""
    assert len(config.get("GIT_REV", "")) == 40, config
    return {k: v for k, v in config.items() if k != "GIT_REV"}


def web_containers(app: str) -> list:
    import docker

    labels = [f"paas.app={app}", "paas.process_type=web"]
    return docker.from_env().containers.list(filters={"label": labels})


def last_event(paas: PaasServer, app: str) -> dict:
    return json.loads(paas.ssh("events", "--app", app, "-n", "1", "--format", "json").stdout)[-1]


def test_no_token_no_api(paas: PaasServer, app: str) -> None:
    status, body, headers = Api(paas, None)("GET", "/apps")
    assert status == 401 and body["id"] == "unauthorized"
    assert Api(paas, "paas_not-a-real-token")("GET", f"/apps/{app}/config")[0] == 401


def test_apps_list_and_info(api: Api, app: str) -> None:
    status, apps, _ = api("GET", "/apps")
    assert status == 200
    [mine] = [a for a in apps if a["name"] == app]
    assert mine["status"] == "running" and mine["release"] == 1
    assert mine["processes"]["web"] == {"running": 1, "wanted": 1}
    status, info, _ = api("GET", f"/apps/{app}")
    assert status == 200 and info["git_remote"] == f"paas:{app}" and info["status"] == "running"


def test_config_patch_releases_and_reaches_the_container(paas: PaasServer, api: Api, app: str) -> None:
    status, config, headers = api("PATCH", f"/apps/{app}/config", {"GREETING": "from the API", "SPARE": "x"})
    assert status == 200, config
    assert set_by_users(config) == {"GREETING": "from the API", "SPARE": "x"}
    assert headers["Paas-Release"] == "v2"
    assert paas.get(f"{app}.localhost", "/env/GREETING") == (200, "from the API")
    event = last_event(paas, app)
    assert (event["user"], event["action"], event["detail"]) == ("apiuser", "config", "Set GREETING, SPARE")
    # Set and unset at once: one release, described like the SSH commands describe theirs.
    status, config, headers = api("PATCH", f"/apps/{app}/config", {"SPARE": None, "MORE": "y"})
    assert status == 200 and set_by_users(config) == {"GREETING": "from the API", "MORE": "y"}
    assert headers["Paas-Release"] == "v3"
    status, releases, _ = api("GET", f"/apps/{app}/releases")
    assert [r["description"] for r in releases[:2]] == ["Set MORE; unset SPARE", "Set GREETING, SPARE"]
    assert releases[0]["user"] == "apiuser" and releases[0]["status"] == "current"


def test_a_change_that_fails_to_boot_is_a_422_and_changes_nothing(
    paas: PaasServer, api: Api, app: str
) -> None:
    status, body, _ = api("PATCH", f"/apps/{app}/config", {"CRASH_ON_BOOT": "1"})
    assert status == 422 and body["id"] == "deploy_failed"
    assert any("refusing to boot" in line for line in body["output"])
    assert "CRASH_ON_BOOT" not in api("GET", f"/apps/{app}/config")[1]
    assert paas.get(f"{app}.localhost", "/env/GREETING") == (200, "from the API")


def test_scale_restart_and_rollback(paas: PaasServer, api: Api, app: str) -> None:
    status, formation, headers = api("PATCH", f"/apps/{app}/formation/web", {"quantity": 2})
    assert status == 200, formation
    assert {"type": "web", "quantity": 2} in formation
    assert len(web_containers(app)) == 2
    status, dynos, _ = api("GET", f"/apps/{app}/dynos")
    assert sorted(d["dyno"] for d in dynos if d["type"] == "web") == ["web.1", "web.2"]
    before = {c.id for c in web_containers(app)}
    status, dynos, _ = api("DELETE", f"/apps/{app}/dynos?type=web")
    assert status == 200 and {c.id for c in web_containers(app)}.isdisjoint(before)
    status, release, _ = api("POST", f"/apps/{app}/releases", {"release": "v1"})
    assert status == 201, release
    assert release["description"] == "Rollback to v1" and release["status"] == "current"
    assert set_by_users(api("GET", f"/apps/{app}/config")[1]) == {}
    assert paas.get(f"{app}.localhost", "/env/GREETING")[0] == 404
    assert len(web_containers(app)) == 2  # the formation stays
    assert api("POST", f"/apps/{app}/releases", {"release": "v99"})[0] == 404
    status, build, _ = api("GET", f"/apps/{app}/releases/v1/build-output")
    assert status == 200 and "Discovering process types" in build["output"]


def test_domains(paas: PaasServer, api: Api, app: str) -> None:
    status, added, _ = api("POST", f"/apps/{app}/domains", {"hostname": f"www.{app}.example"})
    assert status == 201 and added == {"hostname": f"www.{app}.example", "kind": "custom"}
    assert paas.get(f"www.{app}.example")[0] == 200
    status, domains, _ = api("GET", f"/apps/{app}/domains")
    assert {"hostname": f"{app}.localhost", "kind": "default"} in domains
    assert api("DELETE", f"/apps/{app}/domains/www.{app}.example")[0] == 200
    assert paas.get(f"www.{app}.example")[0] == 404
    assert api("DELETE", f"/apps/{app}/domains/www.{app}.example")[0] == 404


def test_logs_and_live_log_stream(paas: PaasServer, api: Api, app: str) -> None:
    lines: list[str] = []
    opened = threading.Event()
    marker = uuid.uuid4().hex  # only a request made after the stream opened can log it

    def stream() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", paas.http_port, timeout=30)
        conn.request(
            "GET",
            f"/api/v1/apps/{app}/log-stream?type=web&lines=1",
            headers={"Host": "paas.localhost", "Authorization": f"Bearer {api.token}"},
        )
        resp = conn.getresponse()
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        opened.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = resp.fp.readline().decode()
            if line.startswith("data: "):
                lines.append(line[6:].strip())
                if marker in line:
                    break
        conn.close()

    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    assert opened.wait(15)
    time.sleep(1)  # the stream follows the containers from now on
    assert paas.get(f"{app}.localhost", f"/?live={marker}")[0] == 200
    reader.join(timeout=35)
    assert any(f"GET /?live={marker}" in ln for ln in lines), lines
    assert all("app[web." in ln for ln in lines)
    status, body, _ = api("GET", f"/apps/{app}/logs?lines=50&type=web")
    assert status == 200 and any("served / from web." in ln for ln in body["lines"])


def test_metrics_sampled_from_docker_stats(api: Api, app: str) -> None:
    assert api("GET", f"/apps/{app}/metrics")[0] == 200

    def sampled_twice() -> dict | None:
        time.sleep(1)
        body = api("GET", f"/apps/{app}/metrics")[1]
        web = body.get("web.1", [])
        return body if len(web) >= 2 and web[-1]["cpu_percent"] is not None else None

    body = wait_for(sampled_twice, timeout=30)
    assert body, "no CPU figure after two samples"
    assert body["web.1"][-1]["mem_bytes"] > 1024 * 1024  # a Python process uses megabytes


def test_destroy(paas: PaasServer, api: Api) -> None:
    name = unique_app("gone")
    assert api("POST", "/apps", {"name": name})[0] == 201
    assert api("POST", "/apps", {"name": name})[0] == 409
    status, body, _ = api("DELETE", f"/apps/{name}")
    assert status == 200 and body == {"name": name, "destroyed": True}
    assert api("GET", f"/apps/{name}")[0] == 404
