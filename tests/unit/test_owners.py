"""Owners (issue 26): every shared resource has one, and a second, non-admin user can take nothing
that is not theirs. Each test here is an attack that worked on main before the issue (storage
folders, app.json addons, platform-wide certificate renewal, a re-created app name); they drive
the front doors (the command dispatcher, the push's hook) with the real store and files."""

from __future__ import annotations

import importlib
import time
from dataclasses import replace
from pathlib import Path

import pytest

from paas.core.output import BuildLog
from paas.errors import NotFound, PaasError
from paas.plugins import plugins
from paas.services import apps, events, jobs, quotas
from tests.unit.test_access import as_user, make_team, run

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
PG = importlib.import_module("paas_plugins.datastores.postgres").KIND
backing = importlib.import_module("paas_plugins.datastores.service")
Record = backing.Record
storage = importlib.import_module("paas_plugins.storage.service")
certs = importlib.import_module("paas_plugins.certs.service")
letsencrypt = importlib.import_module("paas_plugins.certs.letsencrypt")
pem = importlib.import_module("paas_plugins.certs.pem")


@pytest.fixture
def team(tmp_path: Path):  # type: ignore[no-untyped-def]
    """admin, owner (owns `shop`), one user per permission on `shop`, and `none`, who owns
    `bobapp` and nothing of shop."""
    ctx = make_team(tmp_path)
    apps.create_app(as_user(ctx, "none"), "bobapp")
    return ctx


# storage folders


def test_a_user_cannot_mount_another_users_storage_folder(team) -> None:  # type: ignore[no-untyped-def]
    alice, bob = as_user(team, "owner"), as_user(team, "none")
    assert run(alice, "storage:ensure-directory", "alicesecret")[0] == 0
    secret = team.settings.storage_dir / "alicesecret"
    code, _, err = run(bob, "storage:mount", "bobapp", f"{secret}:/x")
    assert code == 1 and err == "error: storage directory 'alicesecret' does not exist\n"
    assert (
        run(bob, "storage:mount", "bobapp", f"{team.settings.storage_dir}/../storage/alicesecret:/x")[0] == 1
    )
    assert storage.list_mounts(team, team.store.get_app("bobapp")) == []
    # ... nor take the name over (ensure-directory of an existing folder gives it to the caller)
    code, _, err = run(bob, "storage:ensure-directory", "alicesecret")
    assert code == 1 and "taken" in err
    # its owner mounts it into her own app; an admin may mount it anywhere
    assert run(alice, "storage:mount", "shop", f"{secret}:/data")[0] == 0
    assert run(as_user(team, "admin"), "storage:mount", "bobapp", f"{secret}:/data")[0] == 0


def test_a_folder_made_for_an_app_is_mounted_by_its_managers_into_that_app_only(team) -> None:  # type: ignore[no-untyped-def]
    manager = as_user(team, "manage")
    code, out, err = run(manager, "storage:ensure-directory", "shop-data", "--app", "shop")
    assert code == 0, err
    folder = team.settings.storage_dir / "shop-data"
    assert run(as_user(team, "owner"), "storage:mount", "shop", f"{folder}:/data")[0] == 0
    code, _, err = run(as_user(team, "none"), "storage:mount", "bobapp", f"{folder}:/data")
    assert code == 1 and "does not exist" in err
    # making a folder for an app needs manage on it
    code, _, err = run(as_user(team, "deploy"), "storage:ensure-directory", "sneaky", "--app", "shop")
    assert code == 1 and err == "error: you need the 'manage' permission on 'shop'\n"
    assert not (team.settings.storage_dir / "sneaky").exists()


# app.json addons


@pytest.fixture
def no_containers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Service containers that start and answer at once (the rules are under test, not docker)."""
    started: list[str] = []
    monkeypatch.setattr(
        backing, "_start_container", lambda ctx, kind, record, log: started.append(record.name)
    )
    monkeypatch.setattr(backing, "_running", lambda ctx, kind, record: object())
    monkeypatch.setattr(backing, "_join_network", lambda *a: "net")
    monkeypatch.setattr(backing, "wait_healthy", lambda *a, **k: None)
    return started


def _service(ctx, name: str, **kw) -> Record:  # type: ignore[no-untyped-def]
    rec = Record(kind="postgres", name=name, password="s3cret" * 8, created_at=backing.now_iso(), **kw)
    backing._save(ctx, rec)
    return rec


def test_app_json_addons_never_hand_an_existing_service_to_a_pusher(team, no_containers) -> None:  # type: ignore[no-untyped-def]
    """The issue's attack: an admin's `shared-db`; a non-admin pushes a new app `shared` whose
    app.json asks for the addon as DB, and read the admin's URL with the password."""
    _service(team, "shared-db")
    bob = as_user(team, "none")
    app = apps.create_app(bob, "shared")
    with pytest.raises(PaasError, match="postgres service shared-db exists"):
        backing.provision_addons(bob, PG, app, [{"plan": "heroku-postgresql", "as": "DB"}], BuildLog())
    assert "DB_URL" not in team.store.get_config(app.id)
    assert backing.load(team, PG, "shared-db").links == []  # type: ignore[union-attr]


def test_app_json_addons_create_only_what_the_pusher_may_create(team, no_containers) -> None:  # type: ignore[no-untyped-def]
    bob = as_user(team, "none")
    app = team.store.get_app("bobapp")
    with pytest.raises(PaasError, match="only an admin may create postgres services here"):
        backing.provision_addons(bob, PG, app, ["heroku-postgresql"], BuildLog())
    assert no_containers == [] and backing.load(team, PG, "bobapp") is None
    assert "DATABASE_URL" not in team.store.get_config(app.id)


# certificates


@pytest.fixture
def orders(team, monkeypatch: pytest.MonkeyPatch) -> list[str]:  # type: ignore[no-untyped-def]
    """ACME on for `shop` and for the dashboard; each with a fresh certificate (not due). An
    order is recorded, never sent."""
    sent: list[str] = []

    def issue(ctx, s, reason, only_if_due=False):  # type: ignore[no-untyped-def]
        sent.append(s.name)
        raise PaasError("no ACME server in this test")

    monkeypatch.setattr(letsencrypt, "issue", issue)
    shop = certs.app_subject(team, team.store.get_app("shop"))
    dashboard = certs.all_subjects(team)[-1]
    for s in (shop, dashboard):
        certs.put(team, s, certs.S_ACME, "on")
        pair = pem.self_signed(list(s.hostnames))
        certs._ensure_folder(s.folder)
        certs._write_private(s.cert_path, pair.cert_pem)
        certs._write_private(s.key_path, pair.key_pem)
    return sent


def test_renewing_every_certificate_is_for_admins(team, orders) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(as_user(team, "owner"), "letsencrypt:auto-renew")
    assert code == 1 and err == "error: only an admin may run letsencrypt:auto-renew without an app\n"
    assert orders == []


def test_renewal_respects_the_due_date(team, orders) -> None:  # type: ignore[no-untyped-def]
    """A fresh certificate is not renewed on demand: a loop of auto-renew would burn the ACME
    server's duplicate-certificate limit."""
    for who, argv in (("manage", ["shop"]), ("admin", [])):
        code, out, err = run(as_user(team, who), "letsencrypt:auto-renew", *argv)
        assert code == 0, err
        assert "shop: not due" in out, out
    assert orders == []


# a name is not an identity


def _wait(ctx, app: str, job_id: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not jobs.get(ctx, app, job_id).done:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_new_app_of_an_old_name_inherits_no_events(team) -> None:  # type: ignore[no-untyped-def]
    owner = as_user(team, "owner")
    assert run(owner, "config:set", "shop", "--no-restart", "K=v")[0] == 0
    team.store.add_event("shop", "owner", "run", "python manage.py changepassword hunter2")
    apps.destroy_app(owner, "shop", "shop")
    newcomer = as_user(team, "none")
    apps.create_app(newcomer, "shop")
    seen = events.list_events(newcomer, 1000, "shop")
    assert [e["action"] for e in seen] == ["apps:create"]
    assert all("hunter2" not in e["detail"] for e in events.list_events(newcomer, 1000))
    # admins still see the old app's history in the audit log
    old = [e for e in events.list_events(as_user(team, "admin"), 1000) if "hunter2" in e["detail"]]
    assert [e["app"] for e in old] == ["shop"]


def test_a_new_app_of_an_old_name_inherits_no_jobs(team) -> None:  # type: ignore[no-untyped-def]
    owner = as_user(team, "owner")

    def work(log: BuildLog) -> str:
        log.step("DATABASE_URL=postgres://secret")
        return "done"

    job = jobs.start(owner, "shop", "config:set", "Set", work)
    _wait(owner, "shop", job.id)
    apps.rename_app(owner, "shop", "old-shop")
    apps.create_app(as_user(team, "none"), "shop")
    with pytest.raises(NotFound):
        jobs.get(as_user(team, "none"), "shop", job.id)
    assert jobs.get(owner, "old-shop", job.id).done  # the job follows its app


def test_an_id_is_never_given_twice(team) -> None:  # type: ignore[no-untyped-def]
    """SQLite gives a new row the largest id + 1: the newest app's id (or user's) came back after
    it went, with everything keyed by it."""
    newest = apps.create_app(as_user(team, "owner"), "newest")
    team.store.add_event(newest, "owner", "run", "secret of newest")
    team.store.delete_app(newest.id)
    again = apps.create_app(as_user(team, "none"), "another")
    assert again.id > newest.id
    assert [e["action"] for e in events.list_events(as_user(team, "none"), 100, "another")] == ["apps:create"]
    last = team.store.add_user("last", "", False, "now")
    team.store.remove_user(last.id)
    assert team.store.add_user("next", "", False, "now").id > last.id
    assert team.store.add_key_user("keyed", False, "now") > last.id + 1


def test_a_new_app_of_an_old_name_inherits_no_links(team, no_containers) -> None:  # type: ignore[no-untyped-def]
    """A destroy that stopped after the app's records went (a crash before the plugins' hooks ran)
    left the service's link by name: the next app of that name must not be linked."""
    old = team.store.get_app("shop")
    _service(team, "shopdb")
    backing.link(team, PG, "shopdb", "shop", None, BuildLog())
    assert [s["name"] for s in backing.links_of_app(team, [PG], "shop")] == ["shopdb"]
    team.store.delete_app(old.id)
    apps.create_app(as_user(team, "none"), "shop")
    assert backing.links_of_app(as_user(team, "none"), [PG], "shop") == []
    assert backing.links_of_app(team, [PG], "shop") == []


# services of one's own


def _users_create_services(team, most: int) -> None:  # type: ignore[no-untyped-def]
    team.settings = replace(team.settings, service_create="users", services_per_user=most)


def test_with_service_create_users_each_user_owns_a_few_services(team, no_containers) -> None:  # type: ignore[no-untyped-def]
    _users_create_services(team, 1)
    bob, alice = as_user(team, "none"), as_user(team, "owner")
    assert run(bob, "postgres:create", "bobdb")[0] == 0
    assert backing.get(team, PG, "bobdb").owner_id == team.store.get_user("none").id
    code, _, err = run(bob, "postgres:create", "bobdb2")
    assert code == 1 and "over the services quota of none (1): they own 1 backing service(s) already" in err
    assert [s["name"] for s in backing.list_services(bob, PG)] == ["bobdb"]
    # `services` is a quota like the others: an admin raises one user's, the report counts them.
    bob_id = team.store.get_user("none").id
    team.store.set_user_quotas(bob_id, {"services": 2})
    assert run(bob, "postgres:create", "bobdb2")[0] == 0
    (mine,) = quotas.report(bob)
    assert mine["quotas"]["services"] == {"limit": 2, "used": 2, "default": False}
    assert run(bob, "postgres:create", "bobdb3")[0] == 1
    assert backing.list_services(alice, PG) == []
    for argv in (
        ["postgres:info", "bobdb"],
        ["postgres:backups", "bobdb"],
        ["postgres:link", "bobdb", "shop"],
    ):
        code, _, err = run(alice, *argv)  # alice owns shop, not bobdb
        assert (code, err) == (1, "error: postgres service 'bobdb' does not exist\n"), argv
    code, _, err = run(as_user(team, "manage"), "postgres:link", "bobdb", "shop")
    assert (code, err) == (1, "error: postgres service 'bobdb' does not exist\n")
    assert run(bob, "postgres:link", "bobdb", "bobapp")[0] == 0  # his service, his app
    assert team.store.get_config(team.store.get_app("bobapp").id)["DATABASE_URL"].startswith("postgres://")
    code, _, err = run(bob, "postgres:link", "bobdb", "shop")  # his service, not his app
    assert (code, err) == (1, "error: app 'shop' does not exist\n")


def test_a_user_pushes_an_addon_of_their_own_and_is_told_when_a_name_is_taken(team, no_containers) -> None:  # type: ignore[no-untyped-def]
    _users_create_services(team, 2)
    bob = as_user(team, "none")
    app = team.store.get_app("bobapp")
    assert backing.provision_addons(bob, PG, app, ["heroku-postgresql"], BuildLog()) == ["bobapp"]
    assert backing.get(team, PG, "bobapp").owner_id == team.store.get_user("none").id
    assert team.store.get_config(app.id)["DATABASE_URL"].startswith("postgres://")


def test_destroying_an_app_keeps_its_services_for_their_owner_with_a_final_backup(
    team, no_containers, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    _users_create_services(team, 2)
    owner = as_user(team, "owner")
    assert run(owner, "postgres:create", "shop")[0] == 0
    assert run(owner, "postgres:link", "shop", "shop")[0] == 0
    monkeypatch.setattr(backing, "_export", lambda ctx, kind, record, out: out(b"PGDMP rows"))
    said: list[str] = []
    apps.destroy_app(owner, "shop", "shop", BuildLog(said.append))
    kept = [line for line in said if "Kept postgres" in line]
    assert len(kept) == 1 and kept[0].startswith(
        "-----> Kept postgres service shop for owner, with a final backup"
    )
    assert "destroy it with postgres:destroy shop" in kept[0]
    assert backing.get(team, PG, "shop").links == []
    [final] = backing.list_backups(owner, PG, "shop")
    assert final.owner_id == team.store.get_user("owner").id
    # ... and it stays hers: a new `shop` of someone else's gets neither the service nor the backup
    bob = as_user(team, "none")
    app = apps.create_app(bob, "shop")
    with pytest.raises(PaasError, match="postgres service shop exists and is not yours"):
        backing.provision_addons(bob, PG, app, ["heroku-postgresql"], BuildLog())
    assert "DATABASE_URL" not in team.store.get_config(app.id)
    with pytest.raises(NotFound):
        backing.backup_path(bob, PG, "shop", final.id)
