"""The postgres plugin end to end: a Django app (psycopg, `release: migrate`, TLS required) whose
DATABASE_URL comes from app.json addons, its rows kept across a redeploy, ps:restart, dockerd
restarting and export -> import -> relink; isolation between apps; backups; refused input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import docker
import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from paas.settings import Settings
from tests.e2e.conftest import PaasServer, restart_dockerd, unique_app, wait_for
from tests.e2e.test_dashboard import CHROMIUM, CHROMIUM_ARGS, SHOTS

FIXTURE = Path(__file__).resolve().parents[2] / "plugins" / "datastores" / "fixtures" / "django-pg"


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def one_line_error(result, text: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr


def ssh_bytes(paas: PaasServer, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-F", str(paas.ssh_config), "paas", *args], input=stdin, capture_output=True, timeout=300
    )


def sql(paas: PaasServer, db: str, statement: str) -> str:
    p = subprocess.run(
        ["ssh", "-F", str(paas.ssh_config), "paas", "postgres:connect", db],
        input=statement + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def notes(paas: PaasServer, app: str) -> list[str]:
    status, body = paas.get(f"{app}.localhost", "/notes")
    assert status == 200, body
    return body.split()


def service_container(paas: PaasServer, db: str):  # type: ignore[no-untyped-def]
    instance = Settings(data_dir=paas.data_dir).instance_id
    return docker.from_env().containers.get(f"paas-{instance}-postgres-{db}")


def cleanup_services(paas: PaasServer) -> None:
    """Records first (or the server's reconcile pass starts the containers again), then the
    containers and their volumes."""
    shutil.rmtree(paas.data_dir / "services", ignore_errors=True)
    instance = Settings(data_dir=paas.data_dir).instance_id
    client = docker.from_env()
    time.sleep(2)  # a reconcile pass that read a record before it went has finished
    for c in client.containers.list(
        all=True, filters={"label": [f"paas.instance={instance}", "paas.role=service"]}
    ):
        c.remove(force=True)
    for v in client.volumes.list(filters={"label": f"paas.instance={instance}"}):
        v.remove(force=True)


@pytest.fixture(scope="module")
def django(paas: PaasServer):
    """A Django app whose app.json asks for heroku-postgresql, pushed once."""
    app = unique_app("dj")
    src = paas.root / "src" / app
    shutil.copytree(FIXTURE, src)
    (src / "app.json").write_text(json.dumps({"addons": ["heroku-postgresql"]}))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
        ok(paas.git(src, *args))
    ok(paas.git(src, "remote", "add", "paas", f"paas:{app}"))
    pushed = paas.git(src, "push", "paas", "main")
    assert pushed.returncode == 0, pushed.output
    yield {"app": app, "src": src, "db": app, "push": pushed.output}
    cleanup_services(paas)


def test_app_json_addon_is_linked_before_the_release_phase(paas: PaasServer, django: dict) -> None:
    app, db = django["app"], django["db"]
    out = django["push"]
    assert f"app.json addon heroku-postgresql: linked postgres service {db} as DATABASE_URL" in out
    assert out.index("linked postgres service") < out.index("Running migrations")  # migrate ran on it
    url = ok(paas.ssh("config:get", app, "DATABASE_URL")).strip()
    assert url.startswith("postgres://postgres:") and url.endswith(f"@paas-postgres-{db}:5432/{db}")
    assert paas.get(f"{app}.localhost", "/add/first") == (200, "added first\n")
    assert paas.get(f"{app}.localhost", "/tls") == (200, "ssl=True\n")  # ssl_require=True works
    info = json.loads(ok(paas.ssh("postgres:info", db, "--format", "json")))
    assert info["state"] == "running" and info["links"] == [{"app": app, "config_var": "DATABASE_URL"}]
    listed = json.loads(ok(paas.ssh("postgres:list", "--format", "json")))
    assert info["owner"]  # the pusher's user (the admin's key here)
    mine = {
        "name": db,
        "state": "running",
        "links": [app],
        "created_at": info["created_at"],
        "owner": info["owner"],
    }
    assert mine in listed


def test_service_container_is_hardened_and_only_on_linked_networks(paas: PaasServer, django: dict) -> None:
    c = service_container(paas, django["db"])
    host = c.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0 and host["RestartPolicy"]["Name"] == "unless-stopped"
    assert c.attrs["Config"]["User"] == "postgres"
    assert "PASSWORD" not in json.dumps(c.attrs["Config"]["Env"]).upper()
    status = c.exec_run("sh -c 'id -un; grep CapEff /proc/1/status; stat -c %U /var/lib/paas-service/pgdata'")
    assert status.output.decode().split() == ["postgres", "CapEff:", "0000000000000000", "postgres"]
    instance = Settings(data_dir=paas.data_dir).instance_id
    assert set(c.attrs["NetworkSettings"]["Networks"]) == {f"paas-{instance}-{django['app']}"}
    record = paas.data_dir / "services" / "postgres" / django["db"] / "service.json"
    assert record.stat().st_mode & 0o777 == 0o600


def test_the_password_is_shown_to_admins_only(paas: PaasServer, django: dict) -> None:
    db = django["db"]
    key = paas.root / "bob_key"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        ok(paas.host("ssh-keys:add", "bob-svc", str(key) + ".pub"))  # not the first key: no admin
    password = (
        json.loads(ok(paas.ssh("postgres:info", db, "--format", "json")))["url"].split(":")[2].split("@")[0]
    )
    assert len(password) >= 32
    # A service is its owner's (here the admin's, who created it): to another user it does not
    # exist, in the list or by name.
    as_bob = paas.ssh("postgres:info", db, key=key)
    assert as_bob.returncode == 1 and password not in as_bob.output, as_bob.output
    assert as_bob.stderr == f"error: postgres service {db!r} does not exist\n"
    assert json.loads(ok(paas.ssh("postgres:list", "--format", "json", key=key))) == []
    assert password not in ok(paas.ssh("postgres:logs", db, "-n", "200"))


def test_rows_survive_a_redeploy_and_ps_restart(paas: PaasServer, django: dict) -> None:
    app, src = django["app"], django["src"]
    assert paas.get(f"{app}.localhost", "/add/before-redeploy")[0] == 200
    (src / "VERSION").write_text("2\n")
    ok(paas.git(src, "add", "-A"))
    ok(paas.git(src, "commit", "-qm", "v2"))
    out = paas.git(src, "push", "paas", "main")
    assert out.returncode == 0, out.output
    assert "app.json addon" not in out.output  # first deploy only
    assert "before-redeploy" in notes(paas, app)
    ok(paas.ssh("ps:restart", app))
    assert paas.get(f"{app}.localhost", "/add/after-restart")[0] == 200
    assert {"before-redeploy", "after-restart"} <= set(notes(paas, app))


def test_export_create_import_relink(paas: PaasServer, django: dict) -> None:
    app, db = django["app"], django["db"]
    assert paas.get(f"{app}.localhost", "/add/exported")[0] == 200
    rows = notes(paas, app)
    dump = ssh_bytes(paas, "postgres:export", db)
    assert dump.returncode == 0, dump.stderr
    assert dump.stdout.startswith(b"PGDMP")  # pg_dump's custom format
    other = unique_app("copy")
    ok(paas.ssh("postgres:create", other))
    imported = ssh_bytes(paas, "postgres:import", other, stdin=dump.stdout)
    assert imported.returncode == 0, imported.stderr
    # The linked service cannot be destroyed; unlinking unsets the URL in a new release.
    one_line_error(paas.ssh("postgres:destroy", db, "--confirm", db), f"is linked to {app}: unlink it first")
    before = json.loads(ok(paas.ssh("releases", app, "--format", "json")))
    ok(paas.ssh("postgres:unlink", db, app))
    assert "DATABASE_URL" not in json.loads(ok(paas.ssh("config", app, "--format", "json")))
    ok(paas.ssh("postgres:link", other, app))
    after = json.loads(ok(paas.ssh("releases", app, "--format", "json")))
    newest = max(after, key=lambda r: r["version"])
    assert len(after) == len(before) + 2 and newest["description"] == "Set DATABASE_URL"
    assert other in ok(paas.ssh("config:get", app, "DATABASE_URL"))
    assert notes(paas, app) == rows  # the copy serves the same rows
    assert paas.get(f"{app}.localhost", "/add/in-copy")[0] == 200
    assert "in-copy" not in sql(paas, db, "select text from notes_note;")  # the original is untouched
    django["db"] = other  # the app's database from here on
    ok(paas.ssh("postgres:destroy", db, "--confirm", db, "--no-backup"))
    assert not list((paas.data_dir / "services" / "postgres" / db / "backups").glob("*.dump"))


def test_bad_input_gives_one_line_and_changes_nothing(paas: PaasServer, django: dict) -> None:
    app, db = django["app"], django["db"]
    rows = notes(paas, app)
    one_line_error(paas.ssh("postgres:create", "Bad_Name"), "invalid postgres service name 'Bad_Name'")
    one_line_error(paas.ssh("postgres:create", "../etc"), "invalid postgres service name")
    one_line_error(paas.ssh("postgres:info", "nope"), "postgres service 'nope' does not exist")
    one_line_error(paas.ssh("postgres:link", "nope", app), "postgres service 'nope' does not exist")
    one_line_error(paas.ssh("postgres:link", db, "no-such-app"), "app 'no-such-app' does not exist")
    one_line_error(paas.ssh("postgres:link", db, app, "--alias", "bad-alias"), "invalid alias")
    one_line_error(paas.ssh("postgres:link", db, app), "already linked")
    one_line_error(paas.ssh("postgres:restore", db, "../../service.json"), "invalid backup id")
    one_line_error(paas.ssh("postgres:backup-schedule", db, "'every day'"), "invalid cron schedule")
    garbage = ssh_bytes(paas, "postgres:import", db, stdin=b"PGDMP this is not a dump" * 100)
    assert garbage.returncode == 1
    lines = garbage.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "failed, nothing changed" in lines[0], garbage.stderr
    empty = ssh_bytes(paas, "postgres:import", db, stdin=b"")
    assert empty.returncode == 1 and b"nothing changed" in empty.stderr
    assert notes(paas, app) == rows
    names = [r["name"] for r in json.loads(ok(paas.ssh("postgres:list", "--format", "json")))]
    assert "nope" not in names and "Bad_Name" not in names


def test_backups_are_checksummed_listed_and_restorable(paas: PaasServer, django: dict) -> None:
    app, db = django["app"], django["db"]
    assert paas.get(f"{app}.localhost", "/add/backed-up")[0] == 200
    line = ok(paas.ssh("postgres:backup", db)).strip()
    backup_id = line.split()[0]
    listed = json.loads(ok(paas.ssh("postgres:backups", db, "--format", "json")))
    entry = next(b for b in listed if b["id"] == backup_id)
    path = paas.data_dir / "services" / "postgres" / db / "backups" / backup_id
    assert entry["size"] == path.stat().st_size > 0 and entry["created_at"] and len(entry["sha256"]) == 64
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list(path.parent.glob(".tmp-*"))
    text = ok(paas.ssh("postgres:backups", db))
    assert backup_id in text and "KiB" in text
    assert paas.get(f"{app}.localhost", "/add/after-backup")[0] == 200
    ok(paas.ssh("postgres:restore", db, backup_id))
    rows = notes(paas, app)
    assert "backed-up" in rows and "after-backup" not in rows
    # A backup whose bytes changed is refused, and nothing is restored.
    assert paas.get(f"{app}.localhost", "/add/kept")[0] == 200
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    one_line_error(paas.ssh("postgres:restore", db, backup_id), "does not match its checksum")
    assert "kept" in notes(paas, app)
    out = ok(paas.ssh("postgres:backup-schedule", db, "'0 3 * * *'", "--keep", "3"))
    assert "backups at '0 3 * * *'" in out
    assert "0 3 * * * (keep 3)" in ok(paas.ssh("postgres:info", db))
    ok(paas.ssh("postgres:backup-schedule", db, "off"))
    assert ok(paas.ssh("postgres:logs", db, "-n", "5")).strip()


def dashboard(paas: PaasServer, user: str, password: str, admin: bool) -> requests.Session:
    paas.add_user(user, password, admin=admin)
    web = requests.Session()
    base = f"http://127.0.0.1:{paas.web_port}"
    page = web.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    form = {"username": user, "password": password, "next": "/"}
    if token:
        form["csrf_token"] = token.group(1)
    assert web.post(f"{base}/login", data=form, timeout=10).status_code == 200
    return web


def test_dashboard_lists_linked_services_and_downloads_backups(paas: PaasServer, django: dict) -> None:
    app, db = django["app"], django["db"]
    base = f"http://127.0.0.1:{paas.web_port}"
    backup_id = ok(paas.ssh("postgres:backup", db)).split()[0]
    path = paas.data_dir / "services" / "postgres" / db / "backups" / backup_id
    admin = dashboard(paas, "svc-admin", "a long admin password", admin=True)
    page = admin.get(f"{base}/apps/{app}", timeout=10)
    assert page.status_code == 200
    row = re.search(r'<tr class="service-row">.*?</tr>', page.text, re.S)
    assert row and f"/services/postgres/{db}" in row.group(0) and "DATABASE_URL" in row.group(0)
    assert "status-running" in row.group(0)
    service = admin.get(f"{base}/services/postgres/{db}", timeout=10).text
    assert backup_id in service and f"/services/postgres/{db}/backups/{backup_id}" in service
    password = (
        json.loads(ok(paas.ssh("postgres:info", db, "--format", "json")))["url"].split(":")[2].split("@")[0]
    )
    assert password in service  # an admin sees the URL whole
    got = admin.get(f"{base}/services/postgres/{db}/backups/{backup_id}", timeout=30)
    assert got.status_code == 200 and got.content == path.read_bytes()
    assert "attachment" in got.headers["Content-Disposition"]
    for bad in ("..%2F..%2Fservice.json", "..%2Fservice.json", f"{backup_id}.json"):
        assert admin.get(f"{base}/services/postgres/{db}/backups/{bad}", timeout=10).status_code in (400, 404)
    assert admin.get(f"{base}/services/postgres/nope", timeout=10).status_code == 404
    # Not an admin, nor its owner: the service is not there (list, page, backups).
    user = dashboard(paas, "svc-user", "a long user password", admin=False)
    assert f"/services/postgres/{db}" not in user.get(f"{base}/services", timeout=10).text
    service = user.get(f"{base}/services/postgres/{db}", timeout=10)
    assert service.status_code == 404 and password not in service.text and backup_id not in service.text
    assert user.get(f"{base}/services/postgres/{db}/backups/{backup_id}", timeout=10).status_code == 404
    anonymous = requests.get(
        f"{base}/services/postgres/{db}/backups/{backup_id}", timeout=10, allow_redirects=False
    )
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_dashboard_pages_in_a_browser(paas: PaasServer, django: dict) -> None:
    """The app page's services panel and the service page, as a person sees them (screenshots
    kept in artifacts/screenshots/)."""
    app, db = django["app"], django["db"]
    paas.add_user("svc-browser", "a long browser password", admin=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(
            base_url=f"http://paas.localhost:{paas.http_port}", viewport={"width": 1280, "height": 900}
        )
        page.goto("/login")
        page.get_by_label("User").fill("svc-browser")
        page.get_by_label("Password").fill("a long browser password")
        page.get_by_role("button", name="Log in").click()
        page.goto(f"/apps/{app}")
        row = page.locator("#services .service-row")
        expect(row).to_contain_text(db)
        expect(row).to_contain_text("DATABASE_URL")
        expect(row).to_contain_text("running")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#services").screenshot(path=str(SHOTS / "app-services.png"))
        row.get_by_role("link", name=db).click()
        expect(page.locator("h1")).to_contain_text(db)
        expect(page.locator("#backups .backup-row").first).to_be_visible()
        page.screenshot(path=str(SHOTS / "service.png"), full_page=True)
        browser.close()


def test_app_b_cannot_reach_app_a_database(paas: PaasServer, django: dict) -> None:
    db = django["db"]
    other = unique_app("nosy")
    src = paas.make_repo("stdlib-web", other)
    ok(paas.git(src, "remote", "add", "paas", f"paas:{other}"))
    ok(paas.git(src, "push", "paas", "main"))
    c = service_container(paas, db)
    ip = next(iter(c.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    probe = (
        'python3 -c "import socket,sys\n'
        "for host in sys.argv[1:]:\n"
        "    try:\n"
        "        socket.create_connection((host, 5432), 3).close(); print(host, 'open')\n"
        "    except OSError as e:\n"
        "        print(host, 'closed')\" "
    )
    out = ok(paas.ssh("run", other, probe + f"{ip} paas-postgres-{db}"))
    assert out.split() == [ip, "closed", f"paas-postgres-{db}", "closed"]
    # The probe does see the database once linked (so "closed" above means isolation).
    ok(paas.ssh("postgres:link", db, other, "--alias", "SHARED"))
    assert f"paas-postgres-{db} open" in ok(paas.ssh("run", other, probe + f"paas-postgres-{db}"))
    # Destroying the app unlinks it and the service leaves its network.
    ok(paas.ssh("apps:destroy", other, "--confirm", other))
    info = json.loads(ok(paas.ssh("postgres:info", db, "--format", "json")))
    assert [link["app"] for link in info["links"]] == [django["app"]]
    c.reload()
    instance = Settings(data_dir=paas.data_dir).instance_id
    assert set(c.attrs["NetworkSettings"]["Networks"]) == {f"paas-{instance}-{django['app']}"}
    assert not docker.from_env().networks.list(names=[f"paas-{instance}-{other}"])


def test_reconcile_recreates_a_removed_container_and_drops_foreign_networks(
    paas: PaasServer, django: dict
) -> None:
    app, db = django["app"], django["db"]
    assert paas.get(f"{app}.localhost", "/add/before-removal")[0] == 200
    client = docker.from_env()
    old = service_container(paas, db)
    # Someone puts the database on a network of its own choosing: the next pass takes it off.
    stray = client.networks.create(f"stray-{db}", driver="bridge", labels={"test": "services"})
    try:
        stray.connect(old)
        assert wait_for(
            lambda: stray.name not in set(service_container(paas, db).attrs["NetworkSettings"]["Networks"])
        )
    finally:
        stray.remove()
    old.remove(force=True)  # gone, volume kept: the server starts it again on the same data
    assert wait_for(lambda: _running_other(paas, db, old.id), timeout=90)
    assert wait_for(lambda: paas.get(f"{app}.localhost", "/notes")[0] == 200, timeout=60)
    assert "before-removal" in notes(paas, app)


def _running_other(paas: PaasServer, db: str, old_id: str) -> bool:
    try:
        c = service_container(paas, db)
    except docker.errors.NotFound:
        return False
    instance = Settings(data_dir=paas.data_dir).instance_id
    return (
        c.id != old_id
        and c.status == "running"
        and len(c.attrs["NetworkSettings"]["Networks"]) == 1
        and (f"paas-{instance}-" in next(iter(c.attrs["NetworkSettings"]["Networks"])))
    )


def test_connect_is_interactive_with_ssh_t(paas: PaasServer, django: dict) -> None:
    p = subprocess.run(
        ["ssh", "-tt", "-F", str(paas.ssh_config), "paas", "postgres:connect", django["db"]],
        input=b"select 6 * 7 as answer;\n\\q\n",
        capture_output=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert b"answer" in p.stdout and b"42" in p.stdout and b"=#" in p.stdout  # psql's prompt: a terminal


@pytest.mark.alone  # restarts dockerd
def test_service_and_rows_survive_a_dockerd_restart(paas: PaasServer, django: dict) -> None:
    """Heavy (restarts the engine): the only service test that does."""
    app, db = django["app"], django["db"]
    assert paas.get(f"{app}.localhost", "/add/before-dockerd")[0] == 200
    restart_dockerd(paas.root / "dockerd.log")
    assert wait_for(lambda: paas.get(f"{app}.localhost", "/notes")[0] == 200, timeout=120)
    assert "before-dockerd" in notes(paas, app)
    assert wait_for(lambda: service_container(paas, db).status == "running", timeout=60)
    assert paas.get(f"{app}.localhost", "/add/after-dockerd")[0] == 200
    assert "after-dockerd" in notes(paas, app)


def test_destroy_keeps_a_final_backup_that_a_new_service_restores(paas: PaasServer, django: dict) -> None:
    app, db = django["app"], django["db"]
    rows = notes(paas, app)
    assert rows
    ok(paas.ssh("postgres:unlink", db, app))
    out = ok(paas.ssh("postgres:destroy", db, "--confirm", db))
    final = re.search(r"Kept a final backup: (\S+)", out)
    assert final, out
    one_line_error(paas.ssh("postgres:info", db), f"postgres service '{db}' does not exist")
    assert final.group(1) in ok(paas.ssh("postgres:backups", db))  # listed after the service is gone
    ok(paas.ssh("postgres:create", db))
    ok(paas.ssh("postgres:restore", db, final.group(1)))
    ok(paas.ssh("postgres:link", db, app))
    assert notes(paas, app) == rows
