"""Teams on the dashboard (issue 12) in a real browser (Debian's Chromium, headless, Playwright)
against a real server: a sample of the access matrix (none, view, deploy, manage, admin) for which
buttons show and that a POST forged with the page's own CSRF token is refused; the Access panel
used by a collaborator with `manage`; and an admin who adds a user with a pasted SSH key on the
Users page, after which that user logs in with the real OpenSSH client and sees only the app given.
Screenshots go to /tmp/teams-*.png (and artifacts/screenshots/) for a person to look at."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from paas.services import access
from tests.e2e.conftest import REPO_ROOT, PaasServer, running_server
from tests.e2e.test_dashboard import CHROMIUM, CHROMIUM_ARGS

PASSWORD = "team browser password"
ROLES = ("none", "view", "deploy", "manage", "admin")  # the sample of access.ROLES played here
SHOTS = REPO_ROOT / "artifacts" / "screenshots"


class Team:
    def __init__(self, paas: PaasServer, app: str, other: str) -> None:
        self.paas, self.app, self.other = paas, app, other

    def formation(self) -> tuple:
        """What a forged scale, stop or config change would alter."""
        shown = self.paas.host("apps:info", self.app, "--format", "json")
        assert shown.returncode == 0, shown.output
        info = json.loads(shown.stdout)
        return info["formation"], info["stopped"], info["release"]

    def grants(self) -> dict:
        shown = self.paas.host("access", self.app, "--format", "json")
        assert shown.returncode == 0, shown.output
        return json.loads(shown.stdout)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with running_server(tmp_path_factory.mktemp("teams-web"), key_name="admin") as paas:
        passwd = paas.host("users:passwd", "admin", input=PASSWORD + "\n")
        assert passwd.returncode == 0, passwd.output
        for role in ROLES:
            if role != "admin":
                paas.add_user(role, PASSWORD)
        app, other = f"team-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
        src = paas.make_repo("cmd-app", app)
        paas.git(src, "remote", "add", "paas", f"paas:{app}")
        pushed = paas.git(src, "push", "paas", "main")  # the admin's key: the admin owns it
        assert pushed.returncode == 0, pushed.output
        assert paas.ssh("config:set", app, "--no-restart", "SECRET_TOKEN=hunter22").returncode == 0
        assert paas.ssh("apps:create", other).returncode == 0
        for perm in ("view", "deploy", "manage"):
            given = paas.host("access:add", app, perm, "--permissions", perm)
            assert given.returncode == 0, given.output
        yield Team(paas, app, other)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Browser, team: Team) -> Iterator:
    contexts = []

    def make() -> Page:
        context = browser.new_context(
            base_url=f"http://paas.localhost:{team.paas.http_port}", viewport={"width": 1280, "height": 900}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return page

    yield make
    for context in contexts:
        context.close()


def shot(page: Page, name: str) -> None:
    """/tmp/teams-<name>.png, and a copy with the other screenshots in artifacts/."""
    path = Path(f"/tmp/teams-{name}.png")
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def log_in(page: Page, user: str) -> None:
    page.goto("/login")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/$"))


def flash(page: Page) -> str:
    return page.locator(".flash p").first.inner_text()


def allowed(role: str, operation: str) -> bool:
    return role == "admin" or (role != "none" and access.OPERATIONS[operation] in ("view", role))


# What each role may see on the app page: a locator, and the operation the table gives it.
BUTTONS: dict[str, tuple[str, str]] = {
    "Scale": (".ptype[data-type='web'] button:text-is('Scale')", "ps:scale"),
    "Restart all": ("#processes button:text-is('Restart all')", "ps:restart"),
    "Stop": ("#processes button:text-is('Stop')", "ps:stop"),
    "Reveal values": ("#reveal", "config:values"),
    "Add config var": ("form.add-config button", "config:set"),
    "Delete config var": ("tr[data-key='SECRET_TOKEN'] button:text-is('Delete')", "config:unset"),
    "Add domain": ("#domains button:text-is('Add domain')", "domains:add"),
    "Build output": ("#releases a:text-is('Build output')", "builds:output"),
    "Access panel": ("#access", "access"),
    "Transfer": ("#access details.transfer", "apps:transfer"),
    "Destroy": ("#destroy button.danger", "apps:destroy"),
}


YOUR_ACCESS = {
    "view": "view",
    "deploy": "view, deploy",
    "manage": "view, manage",
    "admin": "admin: every permission",
}


def test_each_role_sees_only_the_buttons_it_may_use(new_page, team: Team) -> None:  # type: ignore[no-untyped-def]
    for role in ROLES:
        page = new_page()
        log_in(page, role)
        row = page.locator(f"tr[data-app='{team.app}']")
        expect(page.locator("a.nav-users")).to_have_count(1 if role == "admin" else 0)
        expect(page.locator(f"tr[data-app='{team.other}']")).to_have_count(1 if role == "admin" else 0)
        if role == "none":
            expect(row).to_have_count(0)
            expect(page.locator("td.empty")).to_contain_text("No apps yet")
            page.goto(f"/apps/{team.app}")
            expect(page.locator("main")).to_contain_text(f"app '{team.app}' does not exist")
            shot(page, "none")
            continue
        expect(row).to_be_visible()
        expect(row.locator("summary", has_text="Destroy")).to_have_count(
            1 if allowed(role, "apps:destroy") else 0
        )
        page.goto(f"/apps/{team.app}")
        expect(page.locator("h1")).to_contain_text(team.app)
        wrong = []
        for name, (selector, operation) in BUTTONS.items():
            count = page.locator(selector).count()
            if (count > 0) is not allowed(role, operation):
                wrong.append(f"{name}: {count} shown")
        assert wrong == [], f"{role}: {wrong}"
        expect(page.locator("tr[data-key='SECRET_TOKEN']")).to_be_visible()  # keys for every viewer
        expect(page.locator("#your-access")).to_have_text(YOUR_ACCESS[role])
        page.goto(f"/apps/{team.app}?reveal=1")
        values = page.locator("#config").inner_text() + page.locator("#config").inner_html()
        assert ("hunter22" in values) is allowed(role, "config:values"), role
        if not allowed(role, "config:values"):
            expect(page.locator("#values-hidden")).to_have_text("values need the deploy permission")
        shot(page, role)


FORGE = """async ([path, form]) => {
    const token = document.querySelector("input[name=csrf_token]").value;
    const body = new URLSearchParams({csrf_token: token, ...form});
    const r = await fetch(path, {method: "POST", body, redirect: "manual", credentials: "same-origin"});
    return r.status;
}"""


def forge(page: Page, path: str, form: dict[str, str]) -> int:
    """POST from the page, as a script on it could, with the page's own CSRF token and session
    cookie: what a user can do without a button."""
    return page.evaluate(FORGE, [path, form])


def test_a_forged_post_is_refused_for_a_role_without_the_permission(new_page, team: Team) -> None:  # type: ignore[no-untyped-def]
    app = team.app
    before = (team.formation(), team.grants())
    cases = [
        ("none", f"/apps/{app}/scale", {"type": "web", "quantity": "3"}, 404),
        ("view", f"/apps/{app}/scale", {"type": "web", "quantity": "3"}, 403),
        ("view", f"/apps/{app}/config", {"key": "FORGED", "value": "1"}, 403),
        ("deploy", f"/apps/{app}/stop", {}, 403),
        ("deploy", f"/apps/{app}/access", {"user": "none", "permissions": "manage"}, 403),
        ("deploy", f"/apps/{app}/destroy", {"confirm": app}, 403),
        ("manage", f"/apps/{app}/transfer", {"user": "manage"}, 403),
        ("manage", "/users", {"name": "intruder", "password": PASSWORD, "admin": "1"}, 403),
        ("view", "/users/admin", {"name": "view", "admin": "1"}, 403),
        # The control: the same way, a role with the permission gets through to the service's own
        # checks (a bad name: a flash and a redirect, which fetch reports as status 0), and a
        # token that is not the page's is refused before any of it.
        ("manage", f"/apps/{app}/domains", {"hostname": "Not A Domain"}, 0),
        ("manage", f"/apps/{app}/domains", {"hostname": "x.example.com", "csrf_token": "forged"}, 400),
    ]
    pages: dict[str, Page] = {}
    for role, path, form, want in cases:
        if role not in pages:
            pages[role] = new_page()
            log_in(pages[role], role)
        assert forge(pages[role], path, form) == want, (role, path)
    # The same from the app page itself, where a viewer sees no Scale button.
    page = pages["view"]
    page.goto(f"/apps/{app}")
    expect(page.locator("button:text-is('Scale')")).to_have_count(0)
    assert forge(page, f"/apps/{app}/scale", {"type": "web", "quantity": "2"}) == 403
    page.goto(f"/apps/{app}/scale", wait_until="commit")  # a GET of an action is no action
    assert (team.formation(), team.grants()) == before
    shown = team.paas.host("config", app, "--format", "json")
    assert "FORGED" not in json.loads(shown.stdout)
    assert team.paas.host("users:list", "--format", "json").stdout.count("intruder") == 0
    events = json.loads(team.paas.host("events", "-n", "200", "--format", "json").stdout)
    assert {"none", "view", "deploy"} <= {e["user"] for e in events if e["action"] == "access:denied"}


def test_a_manager_changes_access_on_the_panel(new_page, team: Team) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    log_in(page, "manage")
    page.goto(f"/apps/{team.app}#access")
    panel = page.locator("#access")
    row = panel.locator("form.access-row[data-user='view']")
    expect(row.get_by_label("view for view")).to_be_checked()
    expect(row.get_by_label("view for view")).to_be_disabled()
    row.get_by_label("operate for view").check()
    row.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(rf"/apps/{team.app}#access$"))
    assert flash(page) == f"view may now view, operate {team.app}"
    expect(page.locator("form.access-row[data-user='view']").get_by_label("operate for view")).to_be_checked()
    # Add a collaborator with the default boxes, then take them away again.
    add = page.locator("form.access-row.add")
    add.get_by_label("Collaborator", exact=True).fill("none")
    expect(add.get_by_label("deploy for the new collaborator")).to_be_checked()
    add.get_by_label("deploy for the new collaborator").uncheck()
    add.get_by_role("button", name="Add collaborator").click()
    page.wait_for_url(re.compile(rf"/apps/{team.app}#access$"))
    assert flash(page) == f"none may now view, operate {team.app}"
    shot(page, "access-panel")
    assert {c["user"]: c["permissions"] for c in team.grants()["collaborators"]}["none"] == [
        "view",
        "operate",
    ]
    page.locator("form.access-row[data-user='none']").get_by_role("button", name="Remove none").click()
    page.wait_for_url(re.compile(rf"/apps/{team.app}#access$"))
    assert flash(page) == f"none has no access to {team.app} any more"
    # A name that is no user's: the service's one line, and nothing else changed.
    page.locator("form.access-row.add").get_by_label("Collaborator", exact=True).fill("nobody-here")
    page.locator("form.access-row.add").get_by_role("button", name="Add collaborator").click()
    page.wait_for_url(re.compile(rf"/apps/{team.app}#access$"))
    assert flash(page) == "no user named 'nobody-here'"
    expect(page.locator(".flash-error")).to_be_visible()
    page.locator("form.access-row[data-user='view']").get_by_label("operate for view").uncheck()
    page.locator("form.access-row[data-user='view']").get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(rf"/apps/{team.app}#access$"))
    grants = {c["user"]: c["permissions"] for c in team.grants()["collaborators"]}
    assert grants == {"view": ["view"], "deploy": ["view", "deploy"], "manage": ["view", "manage"]}


def test_an_admin_adds_a_user_with_a_key_who_then_sees_only_the_app_given(  # type: ignore[no-untyped-def]
    new_page, team: Team, tmp_path: Path
) -> None:
    paas, app = team.paas, team.app
    key = tmp_path / "id_dana"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dana@laptop", "-f", str(key)], check=True
    )
    page = new_page()
    log_in(page, "admin")
    page.locator("a.nav-users").click()
    expect(page.locator("h1")).to_contain_text("Users")
    # A user without a password (SSH only).
    page.get_by_label("Name").fill("dana")
    page.get_by_role("button", name="Add user").click()
    page.wait_for_url(re.compile(r"/users$"))
    assert flash(page) == "Added dana"
    row = page.locator("tr[data-user='dana']")
    expect(row.locator(".keys")).to_have_text("0")
    # Paste the key.
    row.locator("summary", has_text="Add SSH key").click()
    row.get_by_label("Public key for dana").fill(key.with_suffix(".pub").read_text())
    shot(page, "users-key-form")
    row.get_by_role("button", name="Add key").click()
    page.wait_for_url(re.compile(r"/users$"))
    assert re.fullmatch(r"Added key dana for dana \(SHA256:[A-Za-z0-9+/]{43}\)", flash(page)), flash(page)
    expect(page.locator("tr[data-user='dana'] .keys")).to_have_text("1")
    # A bad paste is one line, no traceback.
    row = page.locator("tr[data-user='dana']")
    row.locator("summary", has_text="Add SSH key").click()
    row.get_by_label("Public key for dana").fill("ssh-ed25519 not-a-key")
    row.get_by_role("button", name="Add key").click()
    page.wait_for_url(re.compile(r"/users$"))
    assert flash(page) == "not a valid 'ssh-ed25519' public key"
    shot(page, "users")

    # Before any access: dana's key gets in, and sees nothing.
    def dana(*args: str):  # type: ignore[no-untyped-def]
        return paas.ssh(*args, key=key)

    listed = dana("apps:list", "--format", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.output
    # The admin gives dana `view` on the app, on its Access panel.
    page.goto(f"/apps/{app}#access")
    add = page.locator("form.access-row.add")
    add.get_by_label("Collaborator", exact=True).fill("dana")
    for box in ("deploy", "operate"):
        add.get_by_label(f"{box} for the new collaborator").uncheck()
    add.get_by_role("button", name="Add collaborator").click()
    page.wait_for_url(re.compile(rf"/apps/{app}#access$"))
    assert flash(page) == f"dana may now view {app}"

    listed = dana("apps:list", "--format", "json")
    assert listed.returncode == 0, listed.output
    assert [a["name"] for a in json.loads(listed.stdout)] == [app]
    info = dana("apps:info", app)
    assert info.returncode == 0 and app in info.stdout, info.output
    hidden = dana("apps:info", team.other)
    assert (hidden.returncode, hidden.stderr) == (1, f"error: app '{team.other}' does not exist\n")
    refused = dana("config:set", app, "--no-restart", "X=1")
    assert (refused.returncode, refused.stderr) == (
        1,
        f"error: you need the 'deploy' permission on '{app}'\n",
    )

    # Make dana an admin, then not; then remove dana: the key stops working at once.
    page.goto("/users")
    page.locator("tr[data-user='dana']").get_by_role("button", name="Make admin").click()
    page.wait_for_url(re.compile(r"/users$"))
    assert flash(page) == "dana is now an admin"
    everything = dana("apps:list", "--format", "json")
    assert {a["name"] for a in json.loads(everything.stdout)} >= {app, team.other}
    page.locator("tr[data-user='dana']").get_by_role("button", name="Unmake admin").click()
    page.wait_for_url(re.compile(r"/users$"))
    assert flash(page) == "dana is no longer an admin"
    assert dana("apps:info", team.other).returncode == 1
    row = page.locator("tr[data-user='dana']")
    row.locator("summary", has_text="Remove").click()
    row.get_by_role("button", name="Remove dana").click()
    page.wait_for_url(re.compile(r"/users$"))
    assert flash(page) == "Removed dana with their keys, sessions and tokens"
    expect(page.locator("tr[data-user='dana']")).to_have_count(0)
    assert dana("apps:list").returncode == 255  # the key is no one's: OpenSSH is refused
