"""Review apps end to end (issue 32), on a real server: a branch pushed to an app becomes a review
app at its own URL, built from that branch, with a Postgres of its own while the parent keeps
serving main with its own; pushing the branch again redeploys it; deleting the branch destroys it
and its database; a collaborator with only `view` cannot push a branch (one with `deploy` can);
odd branch names get a safe name or a clear refusal; the stale timer removes what nobody pushed.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import docker
import pytest
import requests
from dulwich.client import SSHGitClient, SubprocessSSHVendor
from dulwich.repo import Repo

from paas.settings import Settings
from tests.e2e.conftest import PaasServer, Result, shutdown, unique_app, wait_for
from tests.e2e.test_https import CA, cert_tar, curl, fingerprint, served_fingerprint, ssh_stdin
from tests.e2e.test_postgres import cleanup_services

FIXTURE = Path(__file__).resolve().parents[2] / "plugins" / "datastores" / "fixtures" / "django-pg"
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")


def ok(result: Result) -> str:
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def refused(result: Result, text: str) -> None:
    assert result.returncode != 0, result.output
    assert "Traceback" not in result.output
    assert text in result.output, result.output


def review_of(pushed: Result, parent: str) -> tuple[str, str]:
    """(name, URL) of the review app a push names in its last lines."""
    found = re.search(
        rf"Review app of {parent} for branch .*: (http://([a-z0-9-]+)\.localhost:\d+)", pushed.stderr
    )
    assert found, pushed.output
    return found.group(2), found.group(1)


def listed(paas: PaasServer, app: str) -> dict:
    return json.loads(ok(paas.ssh("review-apps:list", app, "--format", "json")))


def commit(paas: PaasServer, src: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (src / name).write_text(text)
    ok(paas.git(src, "add", "-A"))
    ok(paas.git(src, "commit", "-qm", message))


def add_user_with_key(paas: PaasServer, name: str) -> dict[str, str]:
    """A user with an SSH key of their own; the environment that pushes with it."""
    key = paas.root / f"key-{name}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ok(paas.host("ssh-keys:add", name, f"{key}.pub"))
    ssh = (
        f"ssh -F /dev/null -p {paas.ssh_port} -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no"
        f" -o UserKnownHostsFile={paas.root / 'known_hosts'} -o BatchMode=yes -o LogLevel=ERROR"
    )
    return {**paas.env, "GIT_SSH_COMMAND": ssh}


def git_as(paas: PaasServer, env: dict[str, str], cwd: Path, *args: str) -> Result:
    p = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return Result(p.returncode, p.stdout, p.stderr)


def containers_of(paas: PaasServer, app: str) -> list:
    instance = Settings(data_dir=paas.data_dir).instance_id
    return docker.from_env().containers.list(
        all=True, filters={"label": [f"paas.instance={instance}", f"paas.app={app}"]}
    )


# ---------------------------------------------------------------- a light app: names, access, stale


@pytest.fixture(scope="module")
def light(paas: PaasServer) -> dict:
    """A dependency-free parent app with review apps turned on."""
    app, src = paas.deploy_new_repo("stdlib-web", "rv")
    enabled = ok(paas.ssh("review-apps:enable", app))
    assert f"Review apps enabled for {app}" in enabled and "after 5 day(s)" in enabled
    return {"app": app, "src": src}


def test_a_branch_needs_review_apps_turned_on(paas: PaasServer) -> None:
    app, src = paas.deploy_new_repo("stdlib-web", "off")
    ok(paas.git(src, "checkout", "-qb", "feature"))
    pushed = paas.git(src, "push", "paas", "feature")
    refused(pushed, "only main or master deploys: use 'git push paas feature:main'")
    assert f"review-apps:enable {app}" in pushed.stderr
    assert listed(paas, app)["review_apps"] == []


def test_odd_branch_names_get_a_safe_name(paas: PaasServer, light: dict) -> None:
    app, src = light["app"], light["src"]
    names = []
    for branch, version in (("feat/ÄÖ-x", "ao"), ("b/" + "long-" * 39 + "end", "long")):
        assert len(branch) in (9, 200)
        ok(paas.git(src, "checkout", "-q", "-b", branch, "main"))
        commit(paas, src, {"VERSION": version}, f"branch {version}")
        pushed = paas.git(src, "push", "paas", branch)
        assert pushed.returncode == 0, pushed.output
        name, url = review_of(pushed, app)
        assert NAME_RE.fullmatch(name) and not name.endswith("-") and name.startswith(f"{app}-"), name
        assert f"Creating review app {name} of {app} for branch {branch}" in pushed.stderr
        assert paas.get(f"{name}.localhost") == (200, f"version {version} web.1\n")
        names.append(name)
    assert names[0].startswith(f"{app}-feat-ao-x-")  # folded to ASCII, a hash of the whole branch after it
    assert len(names[1]) <= 30
    assert paas.get(f"{app}.localhost") == (200, "version 1 web.1\n")  # the parent still serves main
    rows = {r["branch"]: r for r in listed(paas, app)["review_apps"]}
    assert {rows["feat/ÄÖ-x"]["name"], rows["b/" + "long-" * 39 + "end"]["name"]} == set(names)
    for name in names:  # pushed to the parent: a review app has no repo of its own
        info = json.loads(ok(paas.ssh("apps:info", name, "--format", "json")))
        assert info["parent"] == app and info["git_remote"] == f"paas:{app}"
    # Pushing to a review app by its own name is refused with where to push instead.
    direct = paas.git(src, "push", f"paas:{names[0]}", "HEAD:main")
    refused(direct, f"{names[0]} is the review app of {app}'s branch 'feat/ÄÖ-x'")


def test_branch_names_git_could_not_make_are_refused_in_one_line(paas: PaasServer, light: dict) -> None:
    """`feat/ÄÖ..x` is no git branch name (git check-ref-format), nor is one too long for a file,
    nor one that is not UTF-8: the git client will not send them, so dulwich's client sends them
    as any other client could. Each is refused with one line, and makes no review app."""
    app, src = light["app"], light["src"]
    repo = Repo(str(src))
    head = repo.refs[b"refs/heads/main"]
    client = SSHGitClient(
        "127.0.0.1",
        port=paas.ssh_port,
        username="paas",
        vendor=SubprocessSSHVendor(),
        key_filename=str(paas.key),
        ssh_command=(
            f"ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile={paas.root / 'known_hosts'}"
            " -o BatchMode=yes -o LogLevel=ERROR -o IdentitiesOnly=yes"
        ),
    )
    refs = {
        "refs/heads/feat/ÄÖ..x".encode(): "funny refname",  # git's own words (its receive-pack's too)
        b"refs/heads/b/" + b"x" * 300: "branch name too long (302 bytes, at most 240)",
        b"refs/heads/caf\xe9": "invalid branch name 'caf\ufffd': not UTF-8",
    }
    try:
        for ref, words in refs.items():
            result = client.send_pack(
                f"/{app}".encode(), lambda old, ref=ref: {**old, ref: head}, repo.generate_pack_data
            )
            said = result.ref_status.get(ref)
            assert said is not None and words in said and "\n" not in said, (ref, result.ref_status)
    finally:
        repo.close()
    branches = {r["branch"] for r in listed(paas, app)["review_apps"]}
    assert not any(".." in b or "xxxx" in b or b.startswith("caf") for b in branches), branches


def test_only_collaborators_who_may_deploy_push_branches(paas: PaasServer, light: dict) -> None:
    app, src = light["app"], light["src"]
    viewer = add_user_with_key(paas, f"viewer-{app}")
    deployer = add_user_with_key(paas, f"deployer-{app}")
    ok(paas.ssh("access:add", app, f"viewer-{app}", "--permissions", "view"))
    ok(paas.ssh("access:add", app, f"deployer-{app}", "--permissions", "view,deploy"))
    remote = f"paas@127.0.0.1:{app}"
    ok(paas.git(src, "checkout", "-q", "-b", "by-viewer", "main"))
    commit(paas, src, {"VERSION": "viewer"}, "viewer's")
    before = {r["name"] for r in listed(paas, app)["review_apps"]}
    pushed = git_as(paas, viewer, src, "push", remote, "by-viewer")
    refused(pushed, f"you need the 'deploy' permission on '{app}'")
    assert {r["name"] for r in listed(paas, app)["review_apps"]} == before
    # The same push by someone with deploy on the parent makes the review app, which they see.
    pushed = git_as(paas, deployer, src, "push", remote, "by-viewer")
    assert pushed.returncode == 0, pushed.output
    name, _ = review_of(pushed, app)
    assert paas.get(f"{name}.localhost") == (200, "version viewer web.1\n")
    # Its collaborators are the parent's, with the same permissions: the viewer sees it, cannot
    # destroy it or change its config; access is changed on the parent.
    seen = paas.ssh("apps:info", name, key=paas.root / f"key-viewer-{app}")
    assert seen.returncode == 0, seen.output
    refused(
        paas.ssh("review-apps:destroy", name, key=paas.root / f"key-viewer-{app}"),
        f"you need the 'deploy' permission on '{name}'",
    )
    refused(paas.ssh("access:add", name, f"viewer-{app}"), f"{name} is a review app of {app}")
    ok(paas.ssh("access:remove", app, f"viewer-{app}"))
    refused(paas.ssh("apps:info", name, key=paas.root / f"key-viewer-{app}"), f"app '{name}' does not exist")
    # The deployer may destroy it (as deleting the branch would).
    gone = paas.ssh("review-apps:destroy", name, key=paas.root / f"key-deployer-{app}")
    assert gone.returncode == 0, gone.output
    refused(paas.ssh("apps:info", name), f"app '{name}' does not exist")
    assert wait_for(lambda: paas.get(f"{name}.localhost")[0] == 404, timeout=10)


def test_a_review_app_nobody_pushed_goes_stale(paas: PaasServer, light: dict) -> None:
    app, src = light["app"], light["src"]
    ok(paas.git(src, "checkout", "-q", "-b", "old-idea", "main"))
    commit(paas, src, {"VERSION": "old"}, "old idea")
    pushed = paas.git(src, "push", "paas", "old-idea")
    assert pushed.returncode == 0, pushed.output
    name, _ = review_of(pushed, app)
    assert paas.get(f"{name}.localhost") == (200, "version old web.1\n")
    time.sleep(2)  # a few reconcile passes: nothing happens to a fresh one
    assert name in {r["name"] for r in listed(paas, app)["review_apps"]}
    db = sqlite3.connect(str(Settings(data_dir=paas.data_dir).db_path))
    with db:  # its last push, six days ago (the default is five)
        db.execute(
            "UPDATE review_apps SET pushed_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-6 days')"
            " WHERE app_id = (SELECT id FROM apps WHERE name = ?)",
            (name,),
        )
    db.close()
    assert wait_for(lambda: name not in {r["name"] for r in listed(paas, app)["review_apps"]}, timeout=60)
    assert wait_for(lambda: not containers_of(paas, name), timeout=30)
    assert paas.get(f"{app}.localhost") == (200, "version 1 web.1\n")
    events = json.loads(ok(paas.ssh("events", "-n", "200", "--format", "json")))
    assert any(e["action"] == "review-apps:stale" and e["app"] == name for e in events)


def test_a_failed_first_push_leaves_no_review_app(paas: PaasServer, light: dict) -> None:
    app, src = light["app"], light["src"]
    ok(paas.git(src, "checkout", "-q", "-b", "broken", "main"))
    commit(paas, src, {"HEALTH": "bad"}, "fails its health check")
    pushed = paas.git(src, "push", "paas", "broken")
    refused(pushed, "[remote rejected] broken -> broken (deploy failed)")
    name = re.search(r"Creating review app ([a-z0-9-]+) ", pushed.stderr).group(1)  # type: ignore[union-attr]
    assert f"removing the review app {name}: its first deploy failed" in pushed.stderr
    refused(paas.ssh("apps:info", name), f"app '{name}' does not exist")
    assert not containers_of(paas, name)
    assert "broken" not in {r["branch"] for r in listed(paas, app)["review_apps"]}
    assert ok(paas.git(src, "ls-remote", "paas", "broken")).strip() == ""


def test_destroying_the_parent_destroys_its_review_apps(paas: PaasServer, light: dict) -> None:
    app = light["app"]
    children = [r["name"] for r in listed(paas, app)["review_apps"]]
    assert children  # the safe names' review apps, at least
    gone = paas.ssh("apps:destroy", app, "--confirm", app)
    assert gone.returncode == 0, gone.output
    for name in children:
        assert f"Destroying review app {name} of {app}" in gone.stdout
        refused(paas.ssh("apps:info", name), f"app '{name}' does not exist")
        assert not containers_of(paas, name)


def test_a_parents_wildcard_certificate_serves_its_review_apps_over_https(tmp_path: Path) -> None:
    """Under a domain with a wildcard certificate on the parent (`*.rv.test`), the review app is
    served over HTTPS at once, with that certificate; the push says so."""
    server = PaasServer(tmp_path)
    server.env["PAAS_DOMAIN"] = "rv.test"
    try:
        server.start_with_key()
        app, src = server.deploy_new_repo("stdlib-web", "tls")
        ca = CA("review-ca")
        (tmp_path / "ca.pem").write_bytes(ca.pem)
        cert, key = ca.leaf(["*.rv.test"])
        ok(Result(*_completed(ssh_stdin(server, cert_tar(cert, key), "certs:add", app))))
        ok(server.ssh("review-apps:enable", app))
        ok(server.git(src, "checkout", "-qb", "secure"))
        commit(server, src, {"VERSION": "secure"}, "over https")
        pushed = server.git(src, "push", "paas", "secure")
        assert pushed.returncode == 0, pushed.output
        name = re.search(r"Creating review app ([a-z0-9-]+) ", pushed.stderr).group(1)  # type: ignore[union-attr]
        host = f"{name}.rv.test"
        assert f"HTTPS: https://{host}:{server.https_port} ({app}'s certificate covers it)" in pushed.stderr
        got = curl(server, host, "--cacert", str(tmp_path / "ca.pem"))
        assert (got.returncode, got.stdout) == (0, "version secure web.1\n"), got.stderr
        assert served_fingerprint(server, host) == fingerprint(cert)
        plain = curl(server, host, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", https=False)
        assert plain.stdout == f"301 https://{host}:{server.https_port}/", (
            plain.stdout
        )  # the parent's redirect
    finally:
        shutdown(server)


def _completed(p: subprocess.CompletedProcess) -> tuple[int, str, str]:
    return p.returncode, p.stdout.decode(), p.stderr.decode()


# ---------------------------------------------------------------- Postgres: each app its own

VERSION_VIEW = """

import os  # noqa: E402
from pathlib import Path  # noqa: E402


def version(request):
    here = Path(__file__).resolve().parent.parent
    env = " ".join(os.environ.get(k, "-") for k in ("GREETING", "PROD_ONLY", "PLAIN"))
    return HttpResponse(f"{(here / 'VERSION').read_text().strip()} {env}\\n")


urlpatterns.append(path("version", version))
"""
COUNT = "from notes.models import Note; print('predestroy notes:', Note.objects.count())"
SEED = "from notes.models import Note; Note.objects.create(text='seeded')"
APP_JSON = {
    "addons": ["heroku-postgresql"],
    "scripts": {"pr-predestroy": f'python manage.py shell -c "{COUNT}"'},
    "environments": {
        "review": {
            "env": {"GREETING": "review", "PROD_ONLY": {"required": False}},
            "scripts": {"postdeploy": f'python manage.py shell -c "{SEED}"'},
        }
    },
}


def browser(paas: PaasServer, name: str, password: str) -> requests.Session:
    """A signed-in dashboard session through nginx."""
    web = requests.Session()
    web.headers["Host"] = f"paas.localhost:{paas.http_port}"
    base = f"http://127.0.0.1:{paas.http_port}"
    page = web.get(f"{base}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    login = web.post(
        f"{base}/login", data={"username": name, "password": password, "csrf_token": token}, timeout=30
    )
    assert login.status_code == 200, login.text
    return web


@pytest.fixture(scope="module")
def pg(paas: PaasServer):  # type: ignore[no-untyped-def]
    """A Django parent whose app.json asks for Postgres (and says what differs in review apps),
    serving main with a note in its database; then its branch `feature/pg` pushed once."""
    app = unique_app("rvpg")
    src = paas.root / "src" / app
    shutil.copytree(FIXTURE, src)
    (src / "app.json").write_text(json.dumps(APP_JSON))
    (src / "VERSION").write_text("main\n")
    with open(src / "mysite" / "urls.py", "a") as fh:
        fh.write(VERSION_VIEW)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
        ok(paas.git(src, *args))
    ok(paas.git(src, "remote", "add", "paas", f"paas:{app}"))
    ok(paas.git(src, "push", "paas", "main"))
    ok(paas.ssh("config:set", app, "GREETING=main", "PROD_ONLY=parent-secret", "PLAIN=kept"))
    assert paas.get(f"{app}.localhost", "/add/main-note") == (200, "added main-note\n")
    ok(paas.ssh("review-apps:enable", app, "--stale-days", "2"))
    ok(paas.git(src, "checkout", "-qb", "feature/pg"))
    commit(paas, src, {"VERSION": "feature-1\n"}, "feature, first")
    pushed = paas.git(src, "push", "paas", "feature/pg")
    assert pushed.returncode == 0, pushed.output
    name, url = review_of(pushed, app)
    yield {"app": app, "src": src, "name": name, "url": url, "push": pushed}
    cleanup_services(paas)


def test_a_branch_push_makes_a_review_app_with_a_postgres_of_its_own(paas: PaasServer, pg: dict) -> None:
    app, name, out = pg["app"], pg["name"], pg["push"].stderr
    assert pg["url"] == f"http://{name}.localhost:{paas.http_port}"
    assert f"remote: =====> Review app of {app} for branch feature/pg: {pg['url']}" in out
    assert f"app.json addon heroku-postgresql: linked postgres service {name} as DATABASE_URL" in out
    assert out.count("Running postdeploy") == 1
    # The branch's code and app.json's review environment; the parent keeps serving main.
    assert paas.get(f"{name}.localhost", "/version") == (200, "feature-1 review - kept\n")
    assert paas.get(f"{app}.localhost", "/version") == (200, "main main parent-secret kept\n")
    # Its own database: the postdeploy's seed, not the parent's note; what it adds stays its own.
    assert paas.get(f"{name}.localhost", "/notes") == (200, "seeded\n")
    assert paas.get(f"{name}.localhost", "/add/review-note") == (200, "added review-note\n")
    assert paas.get(f"{app}.localhost", "/notes") == (200, "main-note\n")
    parent_url = ok(paas.ssh("config:get", app, "DATABASE_URL")).strip()
    review_url = ok(paas.ssh("config:get", name, "DATABASE_URL")).strip()
    assert parent_url.endswith(f"@paas-postgres-{app}:5432/{app}")
    assert review_url.endswith(f"@paas-postgres-{name}:5432/{name}")
    info = json.loads(ok(paas.ssh("postgres:info", name, "--format", "json")))
    assert info["state"] == "running" and info["links"] == [{"app": name, "config_var": "DATABASE_URL"}]
    unset = paas.ssh("config:get", name, "PROD_ONLY")  # marked not to copy
    assert (unset.returncode, unset.output) == (1, "")  # Dokku's config:get of an unset key
    row = listed(paas, app)["review_apps"][0]
    assert (row["name"], row["branch"], row["url"], row["release"]) == (name, "feature/pg", pg["url"], 1)
    # The dashboard: the parent's page lists it, its own page names the parent.
    paas.add_user(f"web-{app}", "a long password", admin=True)
    web = browser(paas, f"web-{app}", "a long password")
    base = f"http://127.0.0.1:{paas.http_port}"
    page = web.get(f"{base}/apps/{app}", timeout=30).text
    panel = page[page.index('id="review-apps"') :]
    assert f'data-app="{name}"' in panel and "feature/pg" in panel and pg["url"] in panel
    assert "just now" in panel or "min ago" in panel  # last push, age
    own = web.get(f"{base}/apps/{name}", timeout=30).text
    assert f'The review app of <a href="/apps/{app}">{app}</a>' in own


def test_pushing_the_branch_again_redeploys_it(paas: PaasServer, pg: dict) -> None:
    app, name, src = pg["app"], pg["name"], pg["src"]
    commit(paas, src, {"VERSION": "feature-2\n"}, "feature, second")
    pushed = paas.git(src, "push", "paas", "feature/pg")
    assert pushed.returncode == 0, pushed.output
    assert review_of(pushed, app) == (name, pg["url"])
    assert "Creating review app" not in pushed.stderr and "Running postdeploy" not in pushed.stderr
    assert paas.get(f"{name}.localhost", "/version") == (200, "feature-2 review - kept\n")
    assert paas.get(f"{name}.localhost", "/notes") == (200, "seeded\nreview-note\n")  # seeded once
    assert [r["release"] for r in listed(paas, app)["review_apps"]] == [2]
    assert paas.get(f"{app}.localhost", "/version") == (200, "main main parent-secret kept\n")


def test_deleting_the_branch_destroys_the_review_app_and_its_database(paas: PaasServer, pg: dict) -> None:
    app, name, src = pg["app"], pg["name"], pg["src"]
    instance = Settings(data_dir=paas.data_dir).instance_id
    client = docker.from_env()
    volume = f"paas-{instance}-postgres-{name}"
    assert client.volumes.list(filters={"name": volume})
    pushed = paas.git(src, "push", "paas", ":feature/pg")
    assert pushed.returncode == 0, pushed.output
    out = pushed.stderr
    assert "Running pr-predestroy" in out and "predestroy notes: 2" in out, out  # before its database went
    assert f"Destroyed postgres service {name}, the review app's own" in out
    assert f"Destroyed review app {name} of {app}" in out
    refused(paas.ssh("apps:info", name), f"app '{name}' does not exist")
    refused(paas.ssh("postgres:info", name), f"postgres service '{name}' does not exist")
    assert not containers_of(paas, name)
    assert not client.containers.list(all=True, filters={"name": f"paas-{instance}-postgres-{name}"})
    assert not [v for v in client.volumes.list(filters={"name": volume}) if v.name == volume]
    assert paas.get(f"{name}.localhost", "/version")[0] == 404
    assert ok(paas.git(src, "ls-remote", "paas", "feature/pg")).strip() == ""
    assert listed(paas, app)["review_apps"] == []
    # The parent, its database and its data are untouched.
    assert paas.get(f"{app}.localhost", "/version") == (200, "main main parent-secret kept\n")
    assert paas.get(f"{app}.localhost", "/notes") == (200, "main-note\n")
    assert json.loads(ok(paas.ssh("postgres:info", app, "--format", "json")))["state"] == "running"
