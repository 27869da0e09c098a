"""Review apps (issue 32) without docker: names, branch names, app.json's review environment, the
access a review app takes from its parent, quotas, the config it starts with, the stale timer,
and a push whose review app name is another app's (refused before anything changed)."""

from __future__ import annotations

import importlib
import io
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from paas import commands
from paas.core import manifest, validation
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import Conflict, NotFound, PaasError, PermissionDenied, QuotaExceeded
from paas.plugins import plugins
from paas.services import access, apps, lookup, push, quotas
from paas.settings import Settings
from paas.store import App

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
review = importlib.import_module("paas_plugins.review_apps.service")


class Engine:
    """A docker client that refuses every use: these rules never need one."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"docker used: {name}")


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    host = Context.open(Settings(data_dir=tmp_path / "data"), actor="host", is_admin=True, on_host=True)
    host._extra["docker"] = Engine()
    for name in ("admin", "owner", "view", "deploy", "manage", "none", "other"):
        host.store.add_user(name, "", name == "admin", "2026-01-01T00:00:00Z")
    apps.create_app(as_user(host, "owner"), "shop")
    for perm in ("view", "deploy", "manage"):
        access.add_access(as_user(host, "owner"), "shop", perm, perm)
    return host


def as_user(ctx: Context, name: str) -> Context:
    user = ctx.store.get_user(name)
    assert user is not None
    return ctx.for_actor(user.name, user.is_admin, user_id=user.id)


def child_of(ctx: Context, parent: str, branch: str) -> App:
    """A review app as a branch push makes it (its rules are checked by the caller)."""
    return apps.create_review_app(ctx, ctx.store.get_app(parent), review.review_name(parent, branch), branch)  # type: ignore[arg-type]


def run(ctx: Context, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = commands.dispatch(list(argv), commands.CommandEnv(ctx=ctx, out=out, err=err))
    return code, out.getvalue() + err.getvalue()


# ---------------------------------------------------------------- names


def test_review_names_fit_the_app_name_rule_and_tell_branches_apart() -> None:
    odd = [
        "feature-x",
        "feat/ÄÖ-x",
        "Feat/X",
        "feat-x",
        "FEAT_X",
        "🙂",
        "-",
        "x" * 200,
        "a/" * 100,
        "ß" * 100,
        "feat/" + "é" * 117,
    ]
    for parent in ("shop", "a", "p" * 24, "q" * 29, "long-" * 5 + "name"[:4] + "x"):
        names = [review.review_name(parent, b) for b in odd]
        for name in names:
            assert validation.app_name(name) == name and len(name) <= 30 and name[0].isalpha()
            assert name.startswith(parent[:20]) and "--" not in name.removeprefix(parent)
        assert len(set(names)) == len(names), names  # the hash tells apart what folds alike
    assert review.review_name("shop", "feat/ÄÖ-x").startswith("shop-feat-ao-x-")
    assert review.review_name("shop", "feat/ÄÖ-x") == review.review_name("shop", "feat/ÄÖ-x")  # stable
    assert review.review_name("shop", "x") != review.review_name("shop2", "x")[:4] + "x"  # parent in hash


def test_pushed_branch_names_are_git_s_and_bounded() -> None:
    assert validation.branch_name("refs/heads/feat/ÄÖ-x".encode()) == "feat/ÄÖ-x"
    assert validation.branch_name(b"refs/heads/" + b"x" * 240) == "x" * 240
    for ref, words in (
        (b"refs/tags/v1", "only branches can be pushed"),
        ("refs/heads/feat/ÄÖ..x".encode(), "see git check-ref-format"),
        (b"refs/heads/a b", "see git check-ref-format"),
        (b"refs/heads/x.lock", "see git check-ref-format"),
        (b"refs/heads/caf\xe9", "not UTF-8"),
        (b"refs/heads/" + b"x" * 241, "branch name too long (241 bytes, at most 240)"),
        (b"refs/heads/a\xc2\x85b", "control characters"),  # NEL: valid UTF-8, not printable
    ):
        with pytest.raises(PaasError, match=re.escape(words)):
            validation.branch_name(ref)


def test_stale_days_are_whole_days() -> None:
    assert review.parse_stale_days(None) == 5
    assert review.parse_stale_days("0") == 0
    for bad in ("-1", "1.5", "soon", "٣", "99999"):
        with pytest.raises(PaasError, match="invalid --stale-days"):
            review.parse_stale_days(bad)


# ---------------------------------------------------------------- app.json


def test_the_review_environment_overrides_app_json_key_by_key() -> None:
    m = manifest.from_data(
        {
            "env": {"A": "top", "B": {"value": "b"}},
            "formation": {"web": {"quantity": 2}, "worker": {"quantity": 1}},
            "addons": ["heroku-postgresql", "heroku-redis"],
            "scripts": {"postdeploy": "seed", "pr-predestroy": "bye", "dokku": {"predeploy": "migrate"}},
            "environments": {
                "review": {
                    "env": {"A": "review", "C": {"required": False}},
                    "formation": {"worker": {"quantity": 0}},
                    "addons": ["heroku-postgresql"],
                    "scripts": {"postdeploy": "seed small"},
                    "buildpacks": [],
                },
                "test": {"env": {"CI": "1"}},
            },
        }
    )
    assert m.ignored_keys() == ["environments.review.buildpacks", "environments.test"]
    r = m.for_environment("review")
    assert {k: s.value for k, s in r.env.items()} == {"A": "review", "B": "b", "C": None}
    assert r.formation == {"web": 2, "worker": 0}
    assert r.addons == ["heroku-postgresql"]
    assert (r.postdeploy, r.predestroy, r.dokku_predeploy) == ("seed small", "bye", "migrate")
    assert manifest.from_data(r.data).for_environment("review") == manifest.from_data(
        r.data
    )  # kept as merged
    assert m.for_environment("nope") is m


@pytest.mark.parametrize(
    ("environments", "words"),
    [
        ([], "environments must be an object"),
        ({"review": []}, "environments.review must be an object"),
        ({"review": {"addons": {}}}, "environments.review.addons must be a list"),
        ({"review": {"formation": {"web": {"quantity": 500}}}}, "environments.review.formation.web.quantity"),
        ({"review": {"env": {"bad key": "x"}}}, "environments.review.env"),
        ({"review": {"scripts": {"pr-predestroy": 3}}}, "scripts.pr-predestroy must be a command string"),
    ],
)
def test_a_broken_review_environment_is_refused_where_it_is(environments: object, words: str) -> None:
    with pytest.raises(manifest.AppJsonError, match=words):
        manifest.from_data({"environments": environments})


# ---------------------------------------------------------------- access: the parent's


def test_a_review_app_has_its_parents_collaborators_no_more(ctx: Context) -> None:
    child = child_of(as_user(ctx, "deploy"), "shop", "feature")
    assert child.owner_id == ctx.store.get_user("owner").id  # type: ignore[union-attr]
    for role, granted in (
        ("owner", {"view", "deploy", "operate", "manage", "owner"}),
        ("admin", {"view", "deploy", "operate", "manage", "owner"}),
        ("view", {"view"}),
        ("deploy", {"view", "deploy"}),
        ("manage", {"view", "manage"}),
        ("none", set()),
        ("other", set()),
    ):
        c = as_user(ctx, role)
        assert access.permissions_of(c, child) == granted, role
        assert set(access.allowed_on_apps(c, [child])[child.name].granted) == granted, role
        assert (child.name in {a.name for a in lookup.list_apps(c)}) == bool(granted), role
    with pytest.raises(PermissionDenied, match=f"you need the 'deploy' permission on '{child.name}'"):
        access.authorize(as_user(ctx, "view"), child.name, "review-apps:destroy")
    with pytest.raises(NotFound, match=f"app '{child.name}' does not exist"):
        access.authorize(as_user(ctx, "other"), child.name, "apps:info")
    # Access is changed on the parent: a grant there is one on its review apps, at once.
    with pytest.raises(PaasError, match=f"{child.name} is a review app of shop and has its access"):
        access.add_access(as_user(ctx, "owner"), child.name, "other", "view,deploy")
    with pytest.raises(PaasError, match="run apps:transfer on shop"):
        apps.transfer(as_user(ctx, "owner"), child.name, "other")
    assert access.list_access(as_user(ctx, "manage"), child.name)["app"] == "shop"
    access.remove_access(as_user(ctx, "owner"), "shop", "view")
    with pytest.raises(NotFound):
        access.authorize(as_user(ctx, "view"), child.name, "apps:info")
    access.add_access(as_user(ctx, "owner"), "shop", "other", "view,deploy")
    assert access.permissions_of(as_user(ctx, "other"), child) == {"view", "deploy"}


def test_a_parents_transfer_takes_its_review_apps_within_the_new_owners_quotas(ctx: Context) -> None:
    child = child_of(as_user(ctx, "deploy"), "shop", "feature")
    ctx.store.set_user_quotas(ctx.store.get_user("other").id, {"apps": 1})  # type: ignore[union-attr]
    with pytest.raises(
        QuotaExceeded, match="they own 0 app\\(s\\) already; shop brings 2 with its review apps"
    ):
        apps.transfer(as_user(ctx, "owner"), "shop", "other")
    ctx.store.set_user_quotas(ctx.store.get_user("other").id, {"apps": 2})  # type: ignore[union-attr]
    apps.transfer(as_user(ctx, "owner"), "shop", "other")
    assert ctx.store.get_app_by_id(child.id).owner_id == ctx.store.get_user("other").id  # type: ignore[union-attr]


def test_review_apps_count_against_the_parent_owners_apps_quota(ctx: Context) -> None:
    ctx.store.set_user_quotas(ctx.store.get_user("owner").id, {"apps": 2})  # type: ignore[union-attr]
    child_of(as_user(ctx, "deploy"), "shop", "one")
    with pytest.raises(QuotaExceeded, match="over the apps quota of owner \\(2\\): they own 2 app"):
        child_of(as_user(ctx, "deploy"), "shop", "two")
    quotas.require_app_slot(as_user(ctx, "admin"), ctx.store.get_user("owner").id)  # admins are not held


def test_a_review_app_is_not_pushed_to_by_its_own_name(ctx: Context) -> None:
    child = child_of(ctx, "shop", "feature")
    with pytest.raises(PaasError, match=f"{child.name} is the review app of shop's branch 'feature'"):
        apps.ensure_app(as_user(ctx, "deploy"), child.name)


# ---------------------------------------------------------------- commands


def test_enable_list_disable(ctx: Context) -> None:
    owner = as_user(ctx, "owner")
    assert run(as_user(ctx, "deploy"), "review-apps:enable", "shop") == (
        1,
        "error: you need the 'manage' permission on 'shop'\n",
    )
    code, out = run(owner, "review-apps:enable", "shop", "--stale-days", "0")
    assert code == 0 and "stale review apps are destroyed never" in out
    child = child_of(owner, "shop", "feat/x")
    code, out = run(as_user(ctx, "view"), "review-apps:list", "shop")
    assert code == 0 and f"{child.name}  feat/x  http://{child.name}.localhost  -  last push" in out
    code, out = run(as_user(ctx, "view"), "review-apps:list", child.name)
    assert out == f"=====> {child.name} is the review app of shop, branch feat/x\n"
    assert (
        run(owner, "review-apps:enable", child.name)[1]
        == f"error: {child.name} is a review app: run review-apps:enable on shop\n"
    )
    assert run(owner, "review-apps:disable", "shop") == (0, "-----> Review apps disabled for shop\n")
    assert (
        run(owner, "review-apps:destroy", "shop")[1]
        == "error: shop is not a review app (apps:destroy destroys an app)\n"
    )


# ---------------------------------------------------------------- config


def test_a_review_app_starts_with_its_parents_config_but_its_services(ctx: Context) -> None:
    parent = ctx.store.get_app("shop")
    assert parent is not None
    ctx.store.replace_config(
        parent.id,
        {
            "DATABASE_URL": "postgres://parent",
            "REDIS_URL": "redis://parent",
            "SECRET": "s",
            "ONLY_PROD": "p",
            "A": "top",
        },
    )
    m = manifest.from_data(
        {
            "env": {"HEROKU_APP_NAME": {"required": True}, "HEROKU_BRANCH": {"required": True}},
            "environments": {"review": {"env": {"ONLY_PROD": {"required": False}, "A": "review"}}},
        }
    ).for_environment("review")
    config = review.review_config(ctx, parent, "shop-x-abcde", "x", m)
    assert config == {"SECRET": "s", "HEROKU_APP_NAME": "shop-x-abcde", "HEROKU_BRANCH": "x"}
    needs = manifest.from_data({"env": {"API_KEY": {"required": True}}})
    with pytest.raises(
        PaasError, match="app.json requires API_KEY: set it on shop \\(review apps copy its config\\)"
    ):
        review.review_config(ctx, parent, "shop-x-abcde", "x", needs)


# ---------------------------------------------------------------- the stale timer


def test_stale_review_apps_by_their_parents_days(ctx: Context) -> None:
    ctx.store.create_app("other-app", ctx.store.get_user("other").id)
    review.enable(as_user(ctx, "owner"), "shop", 3)
    review.enable(ctx, "other-app", 0)  # never
    fresh, old, ancient = (child_of(ctx, "shop", b) for b in ("fresh", "old", "ancient"))
    never = child_of(ctx, "other-app", "kept")
    now = datetime(2026, 6, 1, tzinfo=UTC)

    def pushed(app: App, days: float) -> None:
        stamp = (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ctx.store.review_app_pushed(app.id, stamp)

    for app, days in ((fresh, 2.9), (old, 3.1), (ancient, 40), (never, 400)):
        pushed(app, days)
    assert {r.name for r in review.stale(ctx, now)} == {old.name, ancient.name}
    conn = sqlite3.connect(str(ctx.settings.db_path))
    with conn:  # a review app whose parent is gone (its destroy failed half-way) goes too
        conn.execute("DELETE FROM apps WHERE name = 'other-app'")
    conn.close()
    assert {r.name for r in review.stale(ctx, now)} == {old.name, ancient.name, never.name}


# ---------------------------------------------------------------- a name that is another app's


def _repo(tmp_path: Path) -> tuple[Repo, str]:
    repo = Repo.init_bare(str(tmp_path / "shop.git"), mkdir=True)
    blob = Blob.from_string(b"web: python3 -m http.server $PORT\n")
    tree = Tree()
    tree.add(b"Procfile", 0o100644, blob.id)
    commit = Commit()
    commit.tree = tree.id
    commit.author = commit.committer = b"T <t@example.com>"
    commit.commit_time = commit.author_time = 0
    commit.commit_timezone = commit.author_timezone = 0
    commit.message = b"x"
    for obj in (blob, tree, commit):
        repo.object_store.add_object(obj)
    return repo, commit.id.decode()


def test_a_branch_whose_review_name_is_another_apps_is_refused_before_anything(
    ctx: Context, tmp_path: Path
) -> None:
    """An attacker with deploy on `shop` picks a branch whose review name is someone else's app
    (25 bits of hash: found offline in a minute): the push is refused, their app untouched."""
    review.enable(as_user(ctx, "owner"), "shop", None)
    victim = apps.create_app(as_user(ctx, "other"), review.review_name("shop", "hijack"))
    repo, sha = _repo(tmp_path)
    before = ctx.store.list_apps()
    with pytest.raises(
        Conflict, match=f"the review app name {victim.name} for branch 'hijack' is another app's"
    ):
        push.push_branch(as_user(ctx, "deploy"), "shop", b"refs/heads/hijack", None, sha, repo, BuildLog())
    assert ctx.store.list_apps() == before and ctx.store.review_apps_of(ctx.store.get_app("shop").id) == []  # type: ignore[union-attr]
    assert ctx.store.get_app(victim.name) == victim
    # And deleting that branch never destroys the victim: it is nobody's review app.
    said = push.push_branch(as_user(ctx, "deploy"), "shop", b"refs/heads/hijack", sha, None, repo, BuildLog())
    assert said == "Deleted branch hijack (it had no review app)" and ctx.store.get_app(victim.name) == victim
    repo.close()


# ---------------------------------------------------------------- HTTPS, as the parent has it

certs = importlib.import_module("paas_plugins.certs.service")
letsencrypt = importlib.import_module("paas_plugins.certs.letsencrypt")
pem = importlib.import_module("paas_plugins.certs.pem")


def _give_cert(ctx: Context, app: str, names: list[str]) -> None:
    s = certs.app_subject(ctx, ctx.store.get_app(app))
    pair = pem.self_signed(names)
    certs._ensure_folder(s.folder)
    certs._write_private(s.key_path, pair.key_pem)
    certs._write_private(s.cert_path, pair.cert_pem)


def test_a_parents_wildcard_certificate_serves_its_review_apps(ctx: Context) -> None:
    from paas.core.routes import RouteExtras

    child = child_of(ctx, "shop", "feature")
    extras = RouteExtras()
    certs.nginx_extras(ctx, certs.app_subject(ctx, child), extras)
    assert extras.tls is None  # the parent has none
    _give_cert(ctx, "shop", ["shop.localhost"])  # not a wildcard: does not cover the review app
    certs.nginx_extras(ctx, certs.app_subject(ctx, child), extras)
    assert extras.tls is None
    _give_cert(ctx, "shop", ["*.localhost"])
    certs.nginx_extras(ctx, certs.app_subject(ctx, child), extras)
    parent = certs.app_subject(ctx, ctx.store.get_app("shop"))
    assert extras.tls is not None and extras.tls.cert_path == str(parent.cert_path)
    lines: list[str] = []
    letsencrypt.follow_parent(ctx, child, BuildLog(lines.append))
    assert lines == [f"-----> HTTPS: https://{child.name}.localhost (shop's certificate covers it)\n"]
    letsencrypt.follow_parent(ctx, child, BuildLog(lines.append))
    assert len(lines) == 1  # decided once
    # Its own certificate, once it has one, wins.
    _give_cert(ctx, child.name, [f"{child.name}.localhost"])
    certs.nginx_extras(ctx, certs.app_subject(ctx, child), extras)
    assert extras.tls.cert_path == str(certs.app_subject(ctx, child).cert_path)  # type: ignore[union-attr]


def test_a_parent_on_acme_gets_its_review_apps_ordered_by_the_renewal_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = Context.open(
        Settings(data_dir=tmp_path / "data", domain="apps.example.com"),
        actor="host",
        is_admin=True,
        on_host=True,
    )
    monkeypatch.setattr(certs, "sync", lambda c, s: None)  # no router here
    ctx.store.create_app("shop")
    certs.put(ctx, certs.app_subject(ctx, ctx.store.get_app("shop")), certs.S_ACME, "on")
    child = child_of(ctx, "shop", "feature")
    lines: list[str] = []
    letsencrypt.follow_parent(ctx, child, BuildLog(lines.append))
    s = certs.app_subject(ctx, child)
    assert certs.get(ctx, s, certs.S_ACME) == "on" and letsencrypt.due(ctx, s)
    assert s in letsencrypt.enabled(ctx)
    assert "is being ordered from ACME, as shop has one" in lines[0]
    plain = child_of(ctx, "shop", "other")
    certs.put(ctx, certs.app_subject(ctx, ctx.store.get_app("shop")), certs.S_ACME, None)
    letsencrypt.follow_parent(ctx, plain, BuildLog(lines.append))
    assert certs.get(ctx, certs.app_subject(ctx, plain), certs.S_ACME) is None and len(lines) == 1


def test_a_new_review_app_whose_postdeploy_failed_is_kept_and_named(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its release is live (the postdeploy ran after it): the push fails, as Dokku's does, but
    the review app is not removed as a failed first deploy's is, and the pusher learns its URL."""
    from paas.services.release_phase import PostdeployFailed

    def live_then_failed(*args: object, **kwargs: object) -> None:
        raise PostdeployFailed("Execution of first deploy postdeploy task failed (exit status 1)")

    monkeypatch.setattr(push, "build_and_deploy", live_then_failed)
    review.enable(as_user(ctx, "owner"), "shop", None)
    repo, sha = _repo(tmp_path)
    lines: list[str] = []
    with pytest.raises(PostdeployFailed):
        push.push_branch(
            as_user(ctx, "deploy"), "shop", b"refs/heads/feat", None, sha, repo, BuildLog(lines.append)
        )
    name = review.review_name("shop", "feat")
    [kept] = ctx.store.review_apps_of(ctx.store.get_app("shop").id)  # type: ignore[union-attr]
    assert kept.name == name and kept.pushed_at and ctx.store.get_app(name) is not None
    assert any(lookup.app_url(ctx, name) in line for line in lines), lines
    repo.close()
