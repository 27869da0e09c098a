"""Backing services on the dashboard belong to their owner (issue 26): a non-admin sees neither
the list of everyone's services nor another owner's service page or backups."""

from __future__ import annotations

import importlib

from paas.plugins import plugins
from tests.web.conftest import Site

plugins(set())
PG = importlib.import_module("paas_plugins.datastores.postgres").KIND
backing = importlib.import_module("paas_plugins.datastores.service")
Record = backing.Record


def test_a_non_admin_sees_no_service_of_anyone_else(site: Site) -> None:
    """The issue's attack: bob, no admin, opened /services and the admin's service page."""
    backing._save(site.ctx, Record(kind="postgres", name="admindb", password="pw" * 24, created_at="x"))
    folder = backing._backups_dir(site.ctx, PG, "admindb")
    folder.mkdir(parents=True)
    backup_id = "admindb-20260101T000000Z.dump"
    (folder / backup_id).write_bytes(b"secret rows")
    bob = site.login("bob")
    listing = bob.get("/services")
    assert listing.status_code == 200 and "admindb" not in listing.text
    page = bob.get("/services/postgres/admindb")
    assert page.status_code == 404 and "admindb&#39; does not exist" in page.text
    assert bob.get(f"/services/postgres/admindb/backups/{backup_id}").status_code == 404
    admin = site.login("alice")
    assert "admindb" in admin.get("/services").text
    assert admin.get("/services/postgres/admindb").status_code == 200
