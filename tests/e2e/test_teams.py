"""Teams (issue 12) end to end: a real server, one user per role, every command over SSH and every
API operation, each with the answer the permission table in paas/services/access.py gives; and
access that is taken away stops an open SSH session and an API token at once.

The roles: none (no access), view, deploy, operate, manage (each given alone, view included),
owner (pushed the app) and admin (the first key).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from paas.plugins import plugins
from paas.services import access
from tests.e2e.conftest import PaasServer, Result, running_server, wait_for

plugins(set())  # the datastores declare their commands' rules (postgres:link, ...) when loaded

# What each command is run with over SSH ({app} is the app, {gone} a spare app of the role's).
# Arguments pass the command's own parsing, and where a command would change something lasting
# they make it fail just after the permission check (a bad new name, no --confirm, ...).
SSH_ARGV: dict[str, list[str]] = {
    "access": ["access", "{app}"],
    "access:add": ["access:add", "{app}", "nosuchuser"],
    "access:update": ["access:update", "{app}", "nosuchuser", "--permissions", "view"],
    "access:remove": ["access:remove", "{app}", "nosuchuser"],
    "apps:info": ["apps:info", "{app}"],
    "apps:rename": ["apps:rename", "{app}", "Not_A_Name"],
    "apps:destroy": ["apps:destroy", "{app}"],
    "apps:transfer": ["apps:transfer", "{app}", "nosuchuser"],
    "apps:scale": ["apps:scale", "{app}", "web=1"],
    "ps:scale": ["ps:scale", "{app}", "web=1"],
    "builds:output": ["builds:output", "{app}"],
    "checks:disable": ["checks:disable", "{app}", "nosuchtype"],
    "checks:set": ["checks:set", "{app}", "no-such-property", "1"],
    "checks:enable": ["checks:enable", "{app}", "nosuchtype"],
    "checks:report": ["checks:report", "{app}"],
    "config": ["config", "{app}"],
    "config:show": ["config:show", "{app}"],
    "config:get": ["config:get", "{app}", "NO_SUCH_KEY"],
    "config:set": ["config:set", "{app}", "--no-restart", "TEAM=1"],
    "config:unset": ["config:unset", "{app}", "--no-restart", "NO_SUCH_KEY"],
    "cron:list": ["cron:list", "{app}"],
    "cron:run": ["cron:run", "{app}", "nosuchjob"],
    "domains": ["domains", "{app}"],
    "domains:report": ["domains:report", "{app}"],
    "domains:add": ["domains:add", "{app}", "Not A Domain"],
    "domains:remove": ["domains:remove", "{app}", "nosuch.example.com"],
    "domains:set": ["domains:set", "{app}", "Not A Domain"],
    "domains:clear": ["domains:clear", "{gone}"],
    "events": ["events", "--app", "{app}", "-n", "1"],
    "logs": ["logs", "{app}", "-n", "1"],
    "maintenance:report": ["maintenance:report", "{app}"],
    "maintenance:on": ["maintenance:on", "{gone}"],
    "maintenance:off": ["maintenance:off", "{gone}"],
    "ps": ["ps", "{app}"],
    "ps:report": ["ps:report", "{app}"],
    "ps:restart": ["ps:restart", "{app}", "nosuchtype"],
    "ps:stop": ["ps:stop", "{gone}"],
    "ps:start": ["ps:start", "{gone}"],
    "ps:set": ["ps:set", "{app}", "no-such-property", "1"],
    "releases": ["releases", "{app}"],
    "releases:info": ["releases:info", "{app}", "v1"],
    "releases:rollback": ["releases:rollback", "{app}", "v99"],
    "repo:purge-cache": ["repo:purge-cache", "{gone}"],
    "resource:report": ["resource:report", "{app}"],
    "resource:limit": ["resource:limit", "{app}", "--memory", "1k"],
    "resource:limit-clear": ["resource:limit-clear", "{gone}"],
    "run": ["run", "{app}"],
    "storage:list": ["storage:list", "{app}"],
    "storage:mount": ["storage:mount", "{app}", "/nonexistent-dir:/data"],
    "storage:unmount": ["storage:unmount", "{app}", "/nonexistent-dir:/data"],
    "apps:exists": ["apps:exists", "{app}"],
    "apps:report": ["apps:report", "{app}"],
    "report": ["report", "{app}"],
    "url": ["url", "{app}"],
    "urls": ["urls", "{app}"],
    "config:keys": ["config:keys", "{app}"],
    "config:export": ["config:export", "{app}"],
    "config:clear": ["config:clear", "{gone}", "--no-restart"],
    "run:detached": ["run:detached", "{app}"],
    "enter": ["enter", "{app}", "nosuchtype"],
    "ps:rebuild": ["ps:rebuild", "{gone}"],
    "certs:report": ["certs:report", "{app}"],
    "certs:add": ["certs:add", "{app}", "/no/such.crt", "/no/such.key"],
    "certs:update": ["certs:update", "{app}", "/no/such.crt", "/no/such.key"],
    "certs:remove": ["certs:remove", "{gone}"],
    "certs:generate": ["certs:generate", "{gone}"],
    "certs:redirect": ["certs:redirect", "{gone}", "off"],
    "certs:hsts": ["certs:hsts", "{gone}", "off"],
    "letsencrypt:enable": ["letsencrypt:enable", "{gone}"],  # ACME on loopback port 9: refused
    "letsencrypt:disable": ["letsencrypt:disable", "{gone}"],
    "letsencrypt:auto-renew": ["letsencrypt:auto-renew", "{gone}"],
    "scheduler:report": ["scheduler:report", "{app}"],
    "scheduler:set": ["scheduler:set", "{gone}", "no-such-scheduler"],
    "storage:ensure-directory": ["storage:ensure-directory", "Not_A_Name", "--app", "{app}"],
    "postgres:link": ["postgres:link", "nosuchdb", "{app}"],
    "postgres:unlink": ["postgres:unlink", "nosuchdb", "{app}"],
    "redis:link": ["redis:link", "nosuchdb", "{app}"],
    "redis:unlink": ["redis:unlink", "nosuchdb", "{app}"],
    "review-apps:list": ["review-apps:list", "{app}"],
    "review-apps:enable": ["review-apps:enable", "{app}", "--stale-days", "soon"],
    "review-apps:disable": ["review-apps:disable", "{gone}"],
    "review-apps:destroy": ["review-apps:destroy", "{app}"],  # not a review app: refused after the check
    "git:report": ["git:report", "{app}"],
    "builder:report": ["builder:report", "{app}"],
    "builder-herokuish:report": ["builder-herokuish:report", "{app}"],
    "app-json:report": ["app-json:report", "{app}"],
    "buildpacks:report": ["buildpacks:report", "{app}"],
    "buildpacks:list": ["buildpacks:list", "{app}"],
    "git:set": ["git:set", "{app}", "no-such-property", "1"],
    "git:from-archive": ["git:from-archive", "{app}", "ftp://nowhere/x.tar"],
    "git:from-image": ["git:from-image", "{app}", "Not_An_Image"],
    "builder:set": ["builder:set", "{app}", "selected", "no-such-builder"],
    "builder-herokuish:set": ["builder-herokuish:set", "{app}", "allowed", "maybe"],
    "app-json:set": ["app-json:set", "{app}", "appjson-path", "/not/relative"],
    "buildpacks:add": ["buildpacks:add", "{app}", "not-a-buildpack"],
    "buildpacks:set": ["buildpacks:set", "{app}", "not-a-buildpack"],
    "buildpacks:remove": ["buildpacks:remove", "{app}", "heroku/nosuch"],
    "buildpacks:clear": ["buildpacks:clear", "{gone}"],
    "repo:gc": ["repo:gc", "{gone}"],
    "cleanup": ["cleanup", "{gone}"],
    "nginx:report": ["nginx:report", "{app}"],
    "nginx:set": ["nginx:set", "{app}", "client-max-body-size", "lots"],
    # The metrics and notifications plugins' commands (their argv were missing here since they came in).
    "checks:watch": ["checks:watch", "{app}", "--window", "5"],
    "notifications:add": ["notifications:add", "{app}", "not-a-url"],
    "notifications:list": ["notifications:list", "{app}"],
    "notifications:remove": ["notifications:remove", "{app}", "999"],
    "notifications:test": ["notifications:test", "{gone}"],
    "notifications:log": ["notifications:log", "{app}"],
    "checks:skip": ["checks:skip", "{app}", "nosuchtype"],
    "checks:run": ["checks:run", "{app}", "nosuchtype"],
}
# Operations that are no command: git over SSH, and what only the API or a command's output shows.
NOT_COMMANDS = {"git:push", "git:fetch", "config:values", "metrics"}

# Every API operation on an app: method, path, body, and the table's operation.
API_OPS: list[tuple[str, str, object, str]] = [
    ("GET", "/apps/{app}", None, "apps:info"),
    ("DELETE", "/apps/{doomed}", None, "apps:destroy"),
    ("GET", "/apps/{app}/config", None, "config"),
    ("PATCH", "/apps/{app}/config", {"NOT A KEY": "x"}, "config:set"),
    ("GET", "/apps/{app}/formation", None, "ps"),
    ("PATCH", "/apps/{app}/formation", {"updates": [{"type": "nosuchtype", "quantity": 1}]}, "ps:scale"),
    ("PATCH", "/apps/{app}/formation/nosuchtype", {"quantity": 1}, "ps:scale"),
    ("GET", "/apps/{app}/dynos", None, "ps"),
    ("DELETE", "/apps/{app}/dynos?type=nosuchtype", None, "ps:restart"),
    ("GET", "/apps/{app}/releases", None, "releases"),
    ("POST", "/apps/{app}/releases", {"release": "v99"}, "releases:rollback"),
    ("GET", "/apps/{app}/releases/v1", None, "releases:info"),
    ("GET", "/apps/{app}/releases/v1/build-output", None, "builds:output"),
    ("GET", "/apps/{app}/domains", None, "domains"),
    ("POST", "/apps/{app}/domains", {"hostname": "Not A Domain"}, "domains:add"),
    ("DELETE", "/apps/{app}/domains/nosuch.example.com", None, "domains:remove"),
    ("GET", "/apps/{app}/logs?lines=1", None, "logs"),
    ("GET", "/apps/{app}/log-stream?lines=1", None, "logs"),
    ("GET", "/apps/{app}/metrics?seconds=60", None, "metrics"),
    # A job is looked up by those who may view the app (then it needs what the job ran).
    ("GET", "/apps/{app}/jobs/0123456789abcdef", None, "apps:info"),
    ("GET", "/apps/{app}/jobs/0123456789abcdef/stream", None, "apps:info"),
]


def allowed(role: str, operation: str) -> bool:
    if operation in access.ADMIN_ONLY:
        return role == "admin"
    needed = access.OPERATIONS[operation]
    return role in ("owner", "admin") or (role != "none" and needed in ("view", role))


def denial(role: str, operation: str, app: str) -> str | None:
    """The one line the table says this role gets (None: no denial)."""
    if allowed(role, operation):
        return None
    if operation in access.ADMIN_ONLY:
        return f"only an admin may run {operation}"
    if role == "none":
        return f"app '{app}' does not exist"
    return f"you need the '{access.OPERATIONS[operation]}' permission on '{app}'"


class Team:
    def __init__(self, paas: PaasServer, app: str) -> None:
        self.paas, self.app = paas, app
        self.keys: dict[str, Path] = {"admin": paas.key}
        self.tokens: dict[str, str] = {}
        self.gone: dict[str, str] = {}  # a spare app per role, for what changes an app
        self.remote = f"paas@127.0.0.1:{app}"
        self.doomed: dict[str, str] = {}  # apps the API test may destroy

    def ssh(self, role: str, *args: str, timeout: float = 120) -> Result:
        return self.paas.ssh(*args, key=self.keys[role], timeout=timeout)

    def git_env(self, role: str) -> dict[str, str]:
        ssh = (
            f"ssh -F /dev/null -p {self.paas.ssh_port} -i {self.keys[role]} -o IdentitiesOnly=yes"
            f" -o StrictHostKeyChecking=no -o UserKnownHostsFile={self.paas.root / 'known_hosts'}"
            " -o BatchMode=yes -o LogLevel=ERROR"
        )
        return {**self.paas.env, "GIT_SSH_COMMAND": ssh}

    def git(self, role: str, cwd: Path, *args: str) -> Result:
        p = subprocess.run(
            ["git", *args], cwd=cwd, env=self.git_env(role), capture_output=True, text=True, timeout=600
        )
        return Result(p.returncode, p.stdout, p.stderr)

    def api(self, role: str, method: str, path: str, body: object = None) -> tuple[int, dict | None]:
        conn = http.client.HTTPConnection("127.0.0.1", self.paas.http_port, timeout=120)
        headers = {"Host": "paas.localhost", "Content-Type": "application/json"}
        headers["Authorization"] = f"Bearer {self.tokens[role]}"
        try:
            conn.request(method, "/api/v1" + path, json.dumps(body) if body is not None else None, headers)
            resp = conn.getresponse()
            if resp.getheader("Content-Type", "").startswith("text/event-stream"):
                return resp.status, None  # a live stream: its status is the answer
            data = resp.read().decode()
            try:
                return resp.status, json.loads(data) if data else None
            except ValueError:
                return resp.status, {"message": data}
        finally:
            conn.close()


def add_user_with_key(paas: PaasServer, team: Team, name: str) -> None:
    key = paas.root / f"key-{name}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    added = paas.host("ssh-keys:add", name, f"{key}.pub")
    assert added.returncode == 0, added.output
    team.keys[name] = key


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with running_server(tmp_path_factory.mktemp("teams"), key_name="admin") as paas:
        app = f"shop-{uuid.uuid4().hex[:6]}"
        t = Team(paas, app)
        for role in access.ROLES:
            if role != "admin":
                add_user_with_key(paas, t, role)
        for role in access.ROLES:
            t.tokens[role] = paas.token(role)
        # The owner makes an app per role and per API role (15): past the default apps quota.
        assert paas.host("quota:set", "owner", "apps=50").returncode == 0
        # The owner creates the app with a first push, as any user may (PAAS_APP_CREATE=everyone).
        src = paas.make_repo("cmd-app", app)
        paas.git(src, "remote", "add", "paas", f"paas:{app}")
        pushed = t.git("owner", src, "push", t.remote, "main")
        assert pushed.returncode == 0, pushed.output
        t.src = src  # type: ignore[attr-defined]
        for perm in access.PERMISSIONS:
            given = t.ssh("owner", "access:add", app, perm, "--permissions", perm)
            assert given.returncode == 0, given.output
        for role in access.ROLES:
            gone = f"gone-{role}-{uuid.uuid4().hex[:4]}"
            assert t.ssh("owner", "apps:create", gone).returncode == 0
            if role in access.PERMISSIONS:
                assert t.ssh("owner", "access:add", gone, role, "--permissions", role).returncode == 0
            t.gone[role] = gone
        yield t


def test_every_command_over_ssh_answers_as_the_table_says(team: Team) -> None:
    assert set(SSH_ARGV) == set(access.OPERATIONS) - NOT_COMMANDS, "give each new operation its SSH argv"

    def one_role(role: str) -> list[str]:
        wrong = []
        for operation, argv in SSH_ARGV.items():
            app = team.gone[role] if "{gone}" in argv else team.app
            words = [w.format(app=team.app, gone=team.gone[role]) for w in argv]
            r = team.ssh(role, *words)
            expected = denial(role, operation, app)
            if expected is not None:
                if r.returncode != 1 or r.stderr != f"error: {expected}\n" or r.stdout:
                    wrong.append(
                        f"{role} {' '.join(words)}: wanted {expected!r}, got {r.returncode} {r.output!r}"
                    )
            elif "does not exist" in r.stderr and f"'{app}'" in r.stderr or "you need the" in r.stderr:
                wrong.append(f"{role} {' '.join(words)}: denied: {r.output!r}")
        return wrong

    with ThreadPoolExecutor(max_workers=4) as pool:
        wrong = [w for ws in pool.map(one_role, access.ROLES) for w in ws]
    assert wrong == [], "\n".join(wrong)


def test_every_api_operation_answers_as_the_table_says(team: Team) -> None:
    status, spec = team.api("admin", "GET", "/openapi.json")
    assert status == 200 and spec is not None
    methods = {"get", "post", "put", "patch", "delete"}
    documented = {
        (m.upper(), p) for p, ops in spec["paths"].items() if "{app}" in p for m in ops if m in methods
    }
    covered = {(m, p.split("?")[0].replace("{doomed}", "{app}")) for m, p, _, _ in API_OPS}
    covered = {(m, p.replace("/nosuchtype", "/{type}").replace("/v1", "/{version}")) for m, p in covered}
    covered = {(m, p.replace("/nosuch.example.com", "/{hostname}")) for m, p in covered}
    covered = {(m, p.replace("/0123456789abcdef", "/{job_id}")) for m, p in covered}
    assert documented == covered, "give each new API operation its entry in API_OPS"

    doomed = team.doomed
    for role in access.ROLES:  # DELETE /apps/<app> destroys: each role gets one of its own
        doomed[role] = f"doomed-{role}-{uuid.uuid4().hex[:4]}"
        assert team.ssh("owner", "apps:create", doomed[role]).returncode == 0
        if role in access.PERMISSIONS:
            assert team.ssh("owner", "access:add", doomed[role], role, "--permissions", role).returncode == 0
    wrong = []
    for role in access.ROLES:
        for method, path, body, operation in API_OPS:
            app = doomed[role] if "{doomed}" in path else team.app
            status, answer = team.api(role, method, path.format(app=team.app, doomed=doomed[role]), body)
            expected = denial(role, operation, app)
            message = (answer or {}).get("message", "") if isinstance(answer, dict) else ""
            if expected is not None:
                want = 404 if role == "none" else 403
                if status != want or message != expected:
                    wrong.append(
                        f"{role} {method} {path}: wanted {want} {expected!r}, got {status} {answer!r}"
                    )
            elif status in (403, 404) and ("does not exist" in message or "you need the" in message):
                wrong.append(f"{role} {method} {path}: denied: {status} {answer!r}")
    assert wrong == [], "\n".join(wrong)


def test_git_push_and_fetch_follow_deploy(team: Team) -> None:
    src: Path = team.src  # type: ignore[attr-defined]
    for role in access.ROLES:
        fetched = team.git(role, src, "ls-remote", team.remote)
        pushed = team.git(role, src, "push", team.remote, "main")
        expected = denial(role, "git:push", team.app)
        if expected is None:
            assert fetched.returncode == 0 and "refs/heads/main" in fetched.stdout, (role, fetched.output)
            assert pushed.returncode == 0, (role, pushed.output)
        else:
            assert fetched.returncode != 0 and f"error: {expected}" in fetched.stderr, (role, fetched.output)
            assert pushed.returncode != 0 and f"error: {expected}" in pushed.stderr, (role, pushed.output)
    # A new commit from someone who may only view is refused before any of it is taken in.
    (src / "team.txt").write_text("x\n")
    team.paas.git(src, "add", "team.txt")
    team.paas.git(src, "commit", "-q", "-m", "viewer's change")
    refused = team.git("view", src, "push", team.remote, "main")
    assert refused.returncode != 0 and f"you need the 'deploy' permission on '{team.app}'" in refused.stderr
    releases = json.loads(team.ssh("admin", "releases", team.app, "--format", "json").stdout)
    assert len([r for r in releases if r["description"].startswith("Deploy")]) == 1
    team.paas.git(src, "reset", "-q", "--hard", "HEAD~1")


def test_config_values_are_hidden_from_viewers(team: Team) -> None:
    assert team.ssh("admin", "config:set", team.app, "--no-restart", "SECRET_TOKEN=hunter22").returncode == 0
    for role in access.ROLES:
        r = team.ssh(role, "config", team.app, "--format", "json")
        status, body = team.api(role, "GET", f"/apps/{team.app}/config")
        if role == "none":
            assert r.returncode == 1 and status == 404
            continue
        shown = json.loads(r.stdout)
        assert "SECRET_TOKEN" in shown and "SECRET_TOKEN" in (body or {}), role
        sees = allowed(role, "config:values")
        assert (shown["SECRET_TOKEN"] == "hunter22") is sees and (body["SECRET_TOKEN"] == "hunter22") is sees  # type: ignore[index]
        assert ("hunter22" in r.stdout) is sees


def test_lists_and_events_show_only_viewable_apps(team: Team) -> None:
    for role in access.ROLES:
        names = {a["name"] for a in json.loads(team.ssh(role, "apps:list", "--format", "json").stdout)}
        status, api_apps = team.api(role, "GET", "/apps")
        assert status == 200 and {a["name"] for a in api_apps} == names  # type: ignore[union-attr]
        if role == "none":
            assert names == set()
        elif role in ("owner", "admin"):
            assert {team.app, *team.gone.values()} <= names
        else:
            kept = {team.doomed[role]} if role in team.doomed and not allowed(role, "apps:destroy") else set()
            assert names == {team.app, team.gone[role], *kept}
        seen = json.loads(team.ssh(role, "events", "-n", "500", "--format", "json").stdout)
        if role == "admin":
            assert {"access:add", "access:denied"} <= {e["action"] for e in seen}
        else:
            assert all(e["app"] in names for e in seen), role
    owner_events = json.loads(team.ssh("admin", "events", "--app", team.app, "--format", "json").stdout)
    assert {e["user"] for e in owner_events if e["action"] == "apps:create"} == {"owner"}


def _follow_logs(team: Team, role: str) -> subprocess.Popen:
    key = team.keys[role]
    proc = subprocess.Popen(
        [
            "ssh", "-F", "/dev/null", "-p", str(team.paas.ssh_port), "-i", str(key),
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={team.paas.root / 'known_hosts'}", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR", "paas@127.0.0.1", "logs", team.app, "-t", "-n", "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(2)
    assert proc.poll() is None, proc.communicate()
    return proc


def test_a_removed_collaborator_loses_the_open_session_and_the_token(team: Team) -> None:
    add_user_with_key(team.paas, team, "eve")
    team.tokens["eve"] = team.paas.token("eve")
    assert team.ssh("owner", "access:add", team.app, "eve").returncode == 0
    assert team.api("eve", "GET", f"/apps/{team.app}")[0] == 200
    following = _follow_logs(team, "eve")
    removed = team.ssh("owner", "access:remove", team.app, "eve")
    assert removed.returncode == 0, removed.output
    started = time.monotonic()
    _, err = following.communicate(timeout=15)
    assert time.monotonic() - started < 10 and "session ended: access to the app was removed" in err
    status, body = team.api("eve", "GET", f"/apps/{team.app}")
    assert status == 404 and body == {"id": "not_found", "message": f"app '{team.app}' does not exist"}
    again = team.ssh("eve", "logs", team.app, "-n", "1")
    assert again.returncode == 1 and again.stderr == f"error: app '{team.app}' does not exist\n"


def test_a_removed_key_loses_its_open_session(team: Team) -> None:
    add_user_with_key(team.paas, team, "mallory")
    assert team.ssh("owner", "access:add", team.app, "mallory", "--permissions", "view").returncode == 0
    following = _follow_logs(team, "mallory")
    assert team.paas.host("ssh-keys:remove", "mallory").returncode == 0
    _, err = following.communicate(timeout=15)
    assert "session ended: the key was removed" in err
    assert wait_for(lambda: team.ssh("mallory", "apps:list").returncode == 255, timeout=5)


def test_creating_apps_can_be_kept_to_admins(tmp_path: Path) -> None:
    with running_server(tmp_path, key_name="root") as paas:
        team = Team(paas, "unused")
        team.keys["root"] = paas.key
        add_user_with_key(paas, team, "dev")
        paas.stop()
        paas.env["PAAS_APP_CREATE"] = "admins"
        paas.start()
        refused = team.ssh("dev", "apps:create", "devapp")
        assert refused.returncode == 1
        assert refused.stderr == "error: only an admin may create apps here (PAAS_APP_CREATE=admins)\n"
        src = paas.make_repo("cmd-app", "devapp")
        pushed = team.git("dev", src, "push", "paas@127.0.0.1:devapp", "main")
        assert pushed.returncode != 0 and "only an admin may create apps" in pushed.stderr
        assert paas.ssh("apps:create", "devapp").returncode == 0  # root, the first key, is an admin
        assert team.ssh("dev", "apps:info", "devapp").stderr == "error: app 'devapp' does not exist\n"
