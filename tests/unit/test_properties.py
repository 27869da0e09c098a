"""Dokku's property model: one store, one report, the commands Dokku's scripts call."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from paas import commands
from paas.buildpacks import detect
from paas.core.context import Context
from paas.errors import PaasError, PermissionDenied
from paas.services import builders, checks, git, properties
from paas.settings import Settings


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, on_host=True, disconnected=lambda: True)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    ctx = Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)
    ctx.store.create_app("myapp")
    return ctx


def value_of(ctx: Context, *argv: str) -> str:
    code, out, err = run(ctx, *argv)
    assert code == 0, err
    return out.rstrip("\n")


def test_raw_global_and_computed_values(ctx: Context) -> None:
    flag = ("git:report", "myapp")
    assert value_of(ctx, *flag, "--git-deploy-branch") == ""
    assert value_of(ctx, *flag, "--git-computed-deploy-branch") == "master"
    assert run(ctx, "git:set", "--global", "deploy-branch", "main")[0] == 0
    assert value_of(ctx, *flag, "--git-global-deploy-branch") == "main"
    assert value_of(ctx, *flag, "--git-computed-deploy-branch") == "main"
    assert run(ctx, "git:set", "myapp", "deploy-branch", "release")[0] == 0
    assert value_of(ctx, *flag, "--git-deploy-branch") == "release"
    assert value_of(ctx, *flag, "--git-computed-deploy-branch") == "release"
    assert git.deploy_branches(ctx, "myapp") == ("release",)
    # No value unsets: back to the global, then to the default.
    assert run(ctx, "git:set", "myapp", "deploy-branch")[0] == 0
    assert value_of(ctx, *flag, "--git-computed-deploy-branch") == "main"
    assert run(ctx, "git:set", "--global", "deploy-branch")[0] == 0
    assert value_of(ctx, *flag, "--git-computed-deploy-branch") == "master"
    assert git.deploy_branches(ctx, "myapp") == ("main", "master")


def test_an_emptied_rev_env_var_turns_it_off(ctx: Context) -> None:
    app = ctx.store.get_app("myapp")
    assert properties.value(ctx, app, "git", "rev-env-var") == "GIT_REV"
    properties.set_value(ctx, "git", "myapp", "rev-env-var", None)
    assert properties.value(ctx, app, "git", "rev-env-var") == ""
    assert "GIT_REV" not in git.with_rev_env(ctx, app, {}, "a" * 40)
    properties.set_value(ctx, "git", "myapp", "rev-env-var", "COMMIT_SHA")
    assert git.with_rev_env(ctx, app, {"A": "1"}, "b" * 40) == {"A": "1", "COMMIT_SHA": "b" * 40}
    assert ctx.store.get_config(app.id) == {}  # the push stores it, with a release that went live


def test_json_has_both_spellings_and_global_has_no_app_keys(ctx: Context) -> None:
    data = json.loads(value_of(ctx, "scheduler:report", "myapp", "--format", "json"))
    assert data["scheduler-selected"] == data["selected"] == ""
    assert data["scheduler-computed-selected"] == data["computed-selected"] == "docker-local"
    server = json.loads(value_of(ctx, "scheduler:report", "--global", "--format", "json"))
    assert "scheduler-selected" not in server and server["scheduler-global-selected"] == ""


def test_text_report_is_dokkus_layout(ctx: Context) -> None:
    out = value_of(ctx, "app-json:report", "myapp")
    # Each `Key:` padded to the longest flag (`--app-json-computed-appjson-path`, 32), at least 31.
    assert out.splitlines() == [
        "=====> myapp app-json information",
        "       App json appjson path:" + " " * 10,
        "       App json computed appjson path: app.json",
        "       App json global appjson path:" + " " * 3,
    ]
    assert value_of(ctx, "checks:report", "--global").startswith("=====> global checks information")
    # --quiet drops the header, as Dokku's does.
    assert "=====>" not in value_of(ctx, "--quiet", "app-json:report", "myapp")


def test_an_unknown_flag_lists_the_valid_ones(ctx: Context) -> None:
    code, _, err = run(ctx, "builder-herokuish:report", "myapp", "--builder-herokuish-invalid-flag")
    assert code == 1 and err.startswith(
        " !     Invalid flag passed, valid flags: --builder-herokuish-allowed"
    )
    code, _, err = run(ctx, "git:report", "myapp", "--format", "json", "--git-sha")
    assert code == 1 and "--format flag cannot be specified" in err


def test_no_app_reports_every_app_or_says_there_is_none(tmp_path: Path) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)
    code, out, _ = run(ctx, "git:report")
    assert code == 0 and "You haven't deployed any applications yet" in out
    ctx.store.create_app("one")
    ctx.store.create_app("two")
    out = value_of(ctx, "git:report")
    assert "=====> one git information" in out and "=====> two git information" in out


def test_bad_values_and_keys_are_one_line_and_store_nothing(ctx: Context) -> None:
    for argv, words in (
        (("git:set", "myapp", "deploy-branch", "../x"), "invalid branch name"),
        (("git:set", "myapp", "keep-git-dir", "yes"), "true or false"),
        (("git:set", "myapp", "rev-env-var", "NOT A KEY"), "invalid config key"),
        (("git:set", "myapp", "no-such-key", "1"), "unknown git property 'no-such-key'"),
        (("git:set", "myapp", "archive-max-files", "5"), "cannot be set for an app"),
        (("git:set", "--global", "archive-max-files", "0"), "whole number from 1"),
        (("builder:set", "myapp", "build-dir", "/etc"), "invalid path"),
        (("builder:set", "myapp", "build-dir", "a/../../b"), "invalid path"),
        (("builder:set", "myapp", "selected", "pack"), "unknown builder"),
        (("ps:set", "myapp", "stop-timeout-seconds", "abc"), "whole number of seconds"),
        (("scheduler:set", "myapp", "selected", "nowhere"), "unknown scheduler"),
        (("app-json:set", "myapp", "appjson-path", "x\x1by"), "printable"),
    ):
        code, out, err = run(ctx, *argv)
        assert code == 1 and words in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert ctx.store.get_setting(ctx.store.get_app("myapp").id, "git.deploy-branch") is None


def test_global_values_are_for_admins_and_app_values_need_the_permission(ctx: Context) -> None:
    uid = ctx.store.add_key_user("bob", False, "2026-01-01T00:00:00Z")
    bob = ctx.for_actor("bob", False, user_id=uid)
    with pytest.raises(PermissionDenied, match="only an admin may set global git"):
        properties.set_value(bob, "git", None, "deploy-branch", "main")
    with pytest.raises(PaasError, match="does not exist"):
        properties.set_value(bob, "git", "myapp", "deploy-branch", "main")
    with pytest.raises(PaasError, match="does not exist"):
        properties.report(bob, "git", "myapp")
    # Not even a tenant's own app lifts the server's archive caps.
    own = ctx.store.create_app("bobs", owner_id=uid)
    assert own.name == "bobs"
    with pytest.raises(PaasError, match="cannot be set for an app"):
        properties.set_value(bob, "git", "bobs", "archive-max-size", str(1 << 40))
    properties.set_value(bob, "git", "bobs", "deploy-branch", "main")


def test_ps_set_keeps_the_stop_timeout_where_the_scheduler_reads_it(ctx: Context) -> None:
    app = ctx.store.get_app("myapp")
    assert value_of(ctx, "ps:report", "myapp", "--ps-computed-stop-timeout-seconds") == "30"
    assert run(ctx, "ps:set", "myapp", "stop-timeout-seconds", "7")[0] == 0
    assert ctx.store.get_setting(app.id, "stop_timeout") == "7"
    assert run(ctx, "ps:set", "--global", "stop-timeout-seconds", "12")[0] == 0
    assert run(ctx, "ps:set", "myapp", "stop-timeout-seconds")[0] == 0
    assert value_of(ctx, "ps:report", "myapp", "--ps-computed-stop-timeout-seconds") == "12"


def test_scheduler_set_keeps_its_short_form(ctx: Context) -> None:
    code, _, err = run(ctx, "scheduler:set", "myapp", "nowhere")
    assert code == 1 and "unknown scheduler 'nowhere'" in err


def test_checks_disable_and_skip_share_out_the_types(ctx: Context) -> None:
    report = ("checks:report", "myapp")
    assert run(ctx, "checks:disable", "myapp", "web,worker,urgentworker,notifications")[0] == 0
    assert value_of(ctx, *report, "--checks-disabled-list") == "web,worker,urgentworker,notifications"
    assert value_of(ctx, *report, "--checks-skipped-list") == "none"
    assert run(ctx, "checks:skip", "myapp", "urgentworker,worker")[0] == 0
    assert value_of(ctx, *report, "--checks-skipped-list") == "urgentworker,worker"
    assert value_of(ctx, *report, "--checks-disabled-list") == "web,notifications"
    app = ctx.store.get_app("myapp")
    assert checks.disabled_types(ctx, app) == {"web", "worker", "urgentworker", "notifications"}
    assert checks.downtime_types(ctx, app) == {"web", "notifications"}
    assert run(ctx, "checks:skip", "myapp")[0] == 0
    assert value_of(ctx, *report, "--checks-skipped-list") == "_all_"
    assert value_of(ctx, *report, "--checks-disabled-list") == "none"
    assert run(ctx, "checks:enable", "myapp")[0] == 0
    assert checks.disabled_types(ctx, app) == set()
    code, _, err = run(ctx, "checks:disable", "myapp", "web,Bad Type")
    assert code == 1 and "invalid process type" in err


def test_namespace_help_and_version(ctx: Context) -> None:
    for ns, words in (("checks", "Manage zero-downtime settings"), ("git", "Manage app deploys via git")):
        bare, named = value_of(ctx, ns), value_of(ctx, f"{ns}:help")
        assert bare == named and words in bare
    assert value_of(ctx, "version") == value_of(ctx, "-v") == value_of(ctx, "--version")
    assert value_of(ctx, "version").startswith("paas ")


def test_buildpack_list_commands(ctx: Context) -> None:
    def listed() -> list[str]:
        return value_of(ctx, "--quiet", "buildpacks:list", "myapp").split()

    heroku = "https://github.com/heroku/heroku-buildpack-{}.git".format
    for argv in (
        ("buildpacks:add", "myapp", "heroku/nodejs"),
        ("buildpacks:add", "myapp", "heroku/ruby"),
        ("buildpacks:add", "--index", "1", "myapp", "heroku/golang"),
        ("buildpacks:add", "--index", "100", "myapp", "heroku/php"),
    ):
        assert run(ctx, *argv)[0] == 0
    assert listed() == [heroku("golang"), heroku("nodejs"), heroku("ruby"), heroku("php")]
    for bad in ("nodejs", "/nodejs", "http://nodejs", "heroku/nodejs", "--x"):
        assert run(ctx, "buildpacks:add", "myapp", bad)[0] == 1, bad
    assert run(ctx, "buildpacks:set", "--index", "2", "myapp", "heroku/python")[0] == 0
    assert run(ctx, "buildpacks:remove", "myapp", "--index", "1")[0] == 0
    assert run(ctx, "buildpacks:remove", "myapp", "heroku/php")[0] == 0
    assert listed() == [heroku("python"), heroku("ruby")]
    assert run(ctx, "buildpacks:remove", "myapp", "heroku/php")[0] == 1
    data = json.loads(value_of(ctx, "buildpacks:report", "myapp", "--format", "json"))
    assert data["list"] == data["buildpacks-list"] == f"{heroku('python')},{heroku('ruby')}"
    assert run(ctx, "buildpacks:clear", "myapp")[0] == 0
    assert run(ctx, "buildpacks:clear", "myapp")[0] == 0
    assert listed() == []


class Tree:
    """A SourceTree stand-in: the files at the root of a commit."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read(self, path: str, limit: int = 0) -> str | None:
        return self.files.get(path)

    def is_file(self, path: str) -> bool:
        return path in self.files


def test_the_build_follows_the_apps_properties(ctx: Context) -> None:
    settings = ctx.settings
    both = Tree({"Dockerfile": "FROM x", "requirements.txt": "", ".buildpacks": "heroku/nodejs\n"})
    plan = detect.plan(settings, both, {}, detect.Options(builder="dockerfile"))
    assert plan.kind == "dockerfile"
    plan = detect.plan(settings, both, {}, detect.Options(buildpacks=(builders.HEROKU_URL.format("python"),)))
    assert [b.value for b in plan.buildpacks] == ["python"]  # Heroku's URL of a built-in: ours
    plan = detect.plan(settings, both, {"BUILDPACK_URL": "heroku/static"}, detect.Options(buildpacks=("x",)))
    assert [b.value for b in plan.buildpacks] == ["static"]  # BUILDPACK_URL first, as in Dokku
    dockerfile_only = Tree({"Dockerfile": "FROM x"})
    with pytest.raises(detect.DetectFailed, match="no buildpack recognised"):
        detect.plan(settings, dockerfile_only, {}, detect.Options(builder="herokuish"))
    with pytest.raises(detect.DetectFailed, match="not allowed for this app"):
        detect.plan(settings, Tree({"requirements.txt": ""}), {}, detect.Options(buildpacks_allowed=False))
    assert (
        detect.plan(settings, dockerfile_only, {}, detect.Options(buildpacks_allowed=False)).kind
        == "dockerfile"
    )
    with pytest.raises(detect.DetectFailed, match="there is no Dockerfile"):
        detect.plan(settings, Tree({}), {}, detect.Options(builder="dockerfile"))


def test_app_json_buildpacks_come_before_dot_buildpacks(ctx: Context) -> None:
    tree = Tree({".buildpacks": "heroku/nodejs\n", "requirements.txt": ""})
    url = builders.expand(ctx, "heroku/python")
    plan = detect.plan(ctx.settings, tree, {}, detect.Options(manifest_buildpacks=(url,)))
    assert [b.value for b in plan.buildpacks] == ["python"]
    assert plan.buildpacks[0].describe() == f"built-in python ({url})"  # as Dokku users wrote it
    listed = detect.Options(buildpacks=("heroku/static",), manifest_buildpacks=(url,))
    assert [b.value for b in detect.plan(ctx.settings, tree, {}, listed).buildpacks] == ["static"]


def test_wait_to_retire_is_dokkus_property(ctx: Context) -> None:
    assert value_of(ctx, "checks:report", "myapp", "--checks-wait-to-retire") == ""
    assert value_of(ctx, "checks:report", "myapp", "--checks-computed-wait-to-retire") == "60"
    assert run(ctx, "checks:set", "myapp", "wait-to-retire", "30")[0] == 0
    assert value_of(ctx, "checks:report", "myapp", "--checks-wait-to-retire") == "30"
    assert run(ctx, "checks:set", "--global", "wait-to-retire", "90")[0] == 0
    assert value_of(ctx, "checks:report", "--global", "--checks-computed-wait-to-retire") == "90"
    code, _, err = run(ctx, "checks:set", "myapp", "wait-to-retire", "soon")
    assert code == 1 and "whole number" in err
    # What an attacker would send is refused, and nothing is stored.
    for bad in ("30; return 200 x", "30\nx", "-1", "86401", "$remote_addr", "{", "1e3"):
        with pytest.raises(PaasError, match="whole number|one line"):
            properties.set_value(ctx, "checks", "myapp", "wait-to-retire", bad)
    assert value_of(ctx, "checks:report", "myapp", "--checks-wait-to-retire") == "30"


def test_the_scheduler_shell_is_what_enter_and_run_start(ctx: Context) -> None:
    from paas.services import moves

    app = ctx.store.get_app("myapp")
    assert moves.shell(ctx, app) == ""  # the image's own: bash through /start, else /bin/sh
    assert run(ctx, "scheduler:set", "--global", "shell", "sh")[0] == 0
    assert run(ctx, "scheduler:set", "myapp", "shell", "/bin/ash")[0] == 0
    data = json.loads(value_of(ctx, "scheduler:report", "myapp", "--format", "json"))
    assert (data["scheduler-shell"], data["scheduler-global-shell"]) == ("/bin/ash", "sh")
    assert data["scheduler-computed-shell"] == moves.shell(ctx, app) == "/bin/ash"
    for bad in ("bash -x", "-i", "sh;reboot", "$(id)"):
        code, _, err = run(ctx, "scheduler:set", "myapp", "shell", bad)
        assert code == 1 and "not a program name or path" in err, (bad, err)
    assert moves.shell(ctx, app) == "/bin/ash"


def test_builder_skip_cleanup_reaches_the_build_options(ctx: Context) -> None:
    app = ctx.store.get_app("myapp")
    assert value_of(ctx, "builder:report", "myapp", "--builder-computed-skip-cleanup") == "false"
    assert builders.options(ctx, app).keep_containers is False
    assert run(ctx, "builder:set", "--global", "skip-cleanup", "true")[0] == 0
    assert builders.options(ctx, app).keep_containers is True
    assert run(ctx, "builder:set", "myapp", "skip-cleanup", "false")[0] == 0
    assert builders.skip_cleanup(ctx, app) is False
    assert run(ctx, "builder:set", "myapp", "skip-cleanup", "yes")[0] == 1
