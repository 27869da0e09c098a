"""The storage plugin's rules: names, host directories, container paths, and each app's mounts."""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from paas import commands
from paas.core.container import ContainerSettings
from paas.core.context import Context
from paas.core.names import APP_UID
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.plugins import PluginError, plugins
from paas.settings import Settings
from paas.store import Release

plugins(set())  # loads the built-in plugins (the paas_plugins package)
service = importlib.import_module("paas_plugins.storage.service")


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context.open(Settings(data_dir=tmp_path / "data"), actor="test", is_admin=True)


@pytest.fixture
def root(ctx: Context) -> Path:
    """A storage dir with `data` (made by the plugin), `data/sub`, a hand-made `Upper`, a symlink
    to `data` and one out of the storage dir."""
    service.ensure_directory(ctx, "data")
    root = ctx.settings.storage_dir
    (root / "data" / "sub").mkdir()
    (root / "Upper").mkdir()
    outside = ctx.settings.data_dir / "elsewhere"
    outside.mkdir()
    (root / "link-in").symlink_to(root / "data")
    (root / "link-out").symlink_to(outside)
    (root / "link-up").symlink_to("..")
    return root


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, disconnected=lambda: True)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


def release(app_id: int) -> Release:
    return Release(1, app_id, 1, None, {}, {}, "", None, "succeeded", "")


# ensure-directory


def test_ensure_directory_makes_an_app_owned_directory_and_is_idempotent(ctx: Context) -> None:
    path, created = service.ensure_directory(ctx, "uploads")
    assert created and path == ctx.settings.storage_dir / "uploads"
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (APP_UID, APP_UID, 0o750)
    (path / "kept.txt").write_text("x")
    os.chmod(path, 0o700)
    path2, created2 = service.ensure_directory(ctx, "uploads")
    assert (path2, created2) == (path, False)
    assert path.stat().st_mode & 0o777 == 0o750  # owner and mode set again
    assert (path / "kept.txt").read_text() == "x"


@pytest.mark.parametrize(
    "name", ["", "..", ".", "a..b", ".hidden", "-x", "_x", "A", "a/b", "../x", "a b", "a\n", "x" * 65, "é"]
)
def test_ensure_directory_refuses_bad_names(ctx: Context, name: str) -> None:
    with pytest.raises(PaasError, match="invalid storage directory name"):
        service.ensure_directory(ctx, name)
    assert not ctx.settings.storage_dir.exists() or list(ctx.settings.storage_dir.iterdir()) == []


def test_ensure_directory_refuses_a_file_or_symlink_in_the_way(ctx: Context, root: Path) -> None:
    (root / "afile").write_text("")
    for name in ("afile", "link-out", "link-in"):
        with pytest.raises(PaasError, match="exists and is not a directory"):
            service.ensure_directory(ctx, name)
    assert (ctx.settings.data_dir / "elsewhere").stat().st_uid == 0  # the symlink's target untouched


# host directories


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("{root}/data", "{root}/data"),
        ("{root}/data/", "{root}/data"),
        ("{root}/data/sub/..", "{root}/data"),
        ("{root}/link-in", "{root}/data"),  # a symlink to a storage directory is that directory
        ("{root}/../storage/data", "{root}/data"),
        ("{root}/data/../../repos", "must be under {root}/"),
        ("{root}/..", "must be under {root}/"),
        ("{root}", "must be under {root}/"),
        ("{root}/link-out", "must be under {root}/"),  # a symlink escaping the storage dir
        ("{root}/link-up", "must be under {root}/"),
        ("{root}/link-up/elsewhere", "must be under {root}/"),
        ("/etc", "must be under {root}/"),
        ("/", "must be under {root}/"),
        ("data", "must be an absolute path under {root}/"),
        ("./data", "must be an absolute path under {root}/"),
        ("../storage/data", "must be an absolute path under {root}/"),
        ("", "must be an absolute path"),
        ("{root}/data/sub", "must be a storage directory itself"),
        ("{root}/Upper", "one made by storage:ensure-directory"),
        ("{root}/missing", "does not exist (storage:ensure-directory missing makes it)"),
        ("{root}/data\n", "must not contain control characters"),
    ],
)
def test_host_directory_rule(ctx: Context, root: Path, host: str, expected: str) -> None:
    host, expected = host.format(root=root), expected.format(root=root)
    if expected.startswith("/"):
        assert service.check_host_dir(ctx, host) == expected
    else:
        with pytest.raises(PaasError) as info:
            service.check_host_dir(ctx, host)
        assert expected in str(info.value)
        assert "\n" not in str(info.value)


# container paths


@pytest.mark.parametrize(
    "path", ["/app/storage", "/data", "/app/uploads", "/srv/files", "/var/data", "/tmp/x"]
)
def test_container_paths_allowed(path: str) -> None:
    assert service.check_container_path(path) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "must be absolute"),
        ("data", "must be absolute"),
        ("app/data", "must be absolute"),
        ("/", "must not be /"),
        ("/data/", "normalised"),
        ("//data", "normalised"),
        ("/data//x", "normalised"),
        ("/data/./x", "normalised"),
        ("/data/../etc", "normalised"),
        ("/proc", "/proc belongs to"),
        ("/proc/self", "/proc belongs to"),
        ("/sys/fs", "/sys belongs to"),
        ("/dev/shm", "/dev belongs to"),
        ("/etc", "/etc belongs to"),
        ("/etc/passwd", "/etc belongs to"),
        ("/usr/local/lib", "/usr belongs to"),
        ("/bin", "/bin belongs to"),
        ("/lib/x", "/lib belongs to"),
        ("/run/secrets", "/run belongs to"),
        ("/.paas", "/.paas belongs to"),
        ("/app/.paas/proc", "/app/.paas belongs to"),
        ("/app/.profile.d", "/app/.profile.d belongs to"),
        ("/app", "hides files of the image"),
        ("/var", "hides files of the image"),
        ("/da ta", "only letters"),
        ("/data;rm", "only letters"),
        ("/$HOME", "only letters"),
        ("/data\x00", "control characters"),
        ("/data\t", "control characters"),
        ("/" + "x" * 255, "only letters"),
    ],
)
def test_container_paths_refused(path: str, why: str) -> None:
    with pytest.raises(PaasError, match=None) as info:
        service.check_container_path(path)
    assert why in str(info.value)


@pytest.mark.parametrize(
    "spec", ["{root}/data", "{root}/data:/x:/y", "{root}/data:/x:rx", ":/x", "{root}/data:"]
)
def test_malformed_mount_specs(ctx: Context, root: Path, spec: str) -> None:
    with pytest.raises(PaasError, match=r"give <host-dir>:<container-path>\[:ro\]"):
        service.parse_mount(ctx, spec.format(root=root), ctx.store.create_app("web"))


# an app's mounts


def test_mount_list_unmount_and_the_containers_get_the_binds(ctx: Context, root: Path) -> None:
    app = ctx.store.create_app("web1")
    assert run(ctx, "storage:list", "web1", "--format", "json")[1].strip() == "[]"
    code, out, err = run(ctx, "storage:mount", "web1", f"{root}/link-in:/app/storage")
    assert code == 0, err
    assert f"Mounted {root}/data at /app/storage in web1" in out
    assert "takes effect on the next deploy or ps:restart" in out
    service.ensure_directory(ctx, "logs")
    assert run(ctx, "storage:mount", "web1", f"{root}/logs:/srv/logs:ro")[0] == 0
    code, out, _ = run(ctx, "storage:list", "web1", "--format", "json")
    assert json.loads(out) == [
        {"host_path": f"{root}/data", "container_path": "/app/storage", "volume_options": ""},
        {"host_path": f"{root}/logs", "container_path": "/srv/logs", "volume_options": "ro"},
    ]
    code, out, _ = run(ctx, "storage:list", "web1")
    assert out.splitlines()[1:] == [f"       {root}/data:/app/storage", f"       {root}/logs:/srv/logs:ro"]

    settings = ContainerSettings()
    ctx.plugins.call_pre("paas_pre_deploy", ctx=ctx, app=app, release=release(app.id), container=settings)
    assert [(str(b.source), b.target, b.read_only) for b in settings.binds] == [
        (f"{root}/data", "/app/storage", False),
        (f"{root}/logs", "/srv/logs", True),
    ]

    # One mount per container path; the same one twice is named as such.
    code, _, err = run(ctx, "storage:mount", "web1", f"{root}/data:/app/storage")
    assert code == 1 and err == f"error: web1 already mounts {root}/data at /app/storage\n"
    code, _, err = run(ctx, "storage:mount", "web1", f"{root}/logs:/app/storage")
    assert code == 1 and "already has a mount at /app/storage" in err

    code, out, _ = run(ctx, "storage:unmount", "web1", f"{root}/data:/app/storage")
    assert code == 0 and "takes effect on the next deploy" in out and "files stay" in out
    assert (root / "data").is_dir()
    code, _, err = run(ctx, "storage:unmount", "web1", f"{root}/data:/app/storage")
    assert code == 1 and err == f"error: web1 has no mount {root}/data:/app/storage\n"
    assert [m.container for m in service.list_mounts(ctx, app)] == ["/srv/logs"]
    run(ctx, "storage:unmount", "web1", f"{root}/logs:/srv/logs")
    assert ctx.store.get_setting(app.id, service.SETTING) is None


def test_command_errors_are_one_line(ctx: Context, root: Path) -> None:
    ctx.store.create_app("web1")
    for spec, message in [
        (f"{root}/link-out:/data", f"error: host directory must be under {root}/\n"),
        ("/tmp:/data", f"error: host directory must be under {root}/\n"),
        (
            f"{root}/data:/etc",
            "error: container path /etc is refused: /etc belongs to the image or the kernel\n",
        ),
    ]:
        code, out, err = run(ctx, "storage:mount", "web1", spec)
        assert (code, out, err) == (1, "", message)
    assert run(ctx, "storage:mount", "nope", f"{root}/data:/data")[2] == "error: app 'nope' does not exist\n"
    assert run(ctx, "storage:ensure-directory", "../x")[0] == 1


def test_mounts_survive_a_rename_and_are_checked_again_before_a_deploy(ctx: Context, root: Path) -> None:
    app = ctx.store.create_app("web1")
    service.mount(ctx, "web1", f"{root}/data:/app/storage")
    ctx.store.rename_app(app.id, "web2")
    renamed = ctx.store.get_app("web2")
    assert [m.host for m in service.list_mounts(ctx, renamed)] == [f"{root}/data"]
    # The directory went away (or became a symlink out): the deploy fails, naming the mount.
    shutil.rmtree(root / "data")
    (root / "data").symlink_to(ctx.settings.data_dir / "elsewhere")
    with pytest.raises(PluginError) as info:
        ctx.plugins.call_pre(
            "paas_pre_deploy", ctx=ctx, app=renamed, release=release(app.id), container=ContainerSettings()
        )
    assert str(info.value) == (
        f"storage: mount {root}/data:/app/storage: host directory must be under {root}/"
        f" (or storage:unmount web2 {root}/data:/app/storage)"
    )
    # It can still be unmounted.
    assert service.unmount(ctx, "web2", f"{root}/data:/app/storage").container == "/app/storage"


def test_a_bind_clash_with_another_plugin_is_one_line(ctx: Context, root: Path) -> None:
    app = ctx.store.create_app("web1")
    service.mount(ctx, "web1", f"{root}/data:/app/storage")
    settings = ContainerSettings()
    settings.add_bind(Path("/srv"), "/app/storage")
    with pytest.raises(PluginError, match="storage: mount .* two mounts at /app/storage"):
        ctx.plugins.call_pre("paas_pre_deploy", ctx=ctx, app=app, release=release(app.id), container=settings)


def test_destroy_says_which_directories_are_kept(ctx: Context, root: Path) -> None:
    a, _ = ctx.store.create_app("a"), ctx.store.create_app("b")
    service.ensure_directory(ctx, "shared")
    service.mount(ctx, "a", f"{root}/data:/data")
    service.mount(ctx, "a", f"{root}/shared:/shared")
    service.mount(ctx, "b", f"{root}/shared:/shared")
    ctx.store.delete_app(a.id)
    log = BuildLog()
    ctx.plugins.call_post("paas_app_destroyed", ctx=ctx, app=a, log=log)
    text = log.text()
    assert f"-----> Storage kept: {root}/data (no app mounts it now; remove it by hand)\n" in text
    assert f"{root}/shared" not in text  # b still mounts it
    assert (root / "data").is_dir()
