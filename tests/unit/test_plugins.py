"""The hook manager: loading, turning off, and what each kind of hook does when a plugin raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.core.container import ContainerSettings
from paas.core.routes import RouteExtras
from paas.errors import PaasError
from paas.plugins import PluginError, Plugins, hookimpl
from paas.store import Store


class Refuser:
    @hookimpl
    def paas_pre_build(self, app):
        raise PaasError(f"no builds for {app}")


class Crasher:
    @hookimpl
    def paas_pre_deploy(self, container):
        raise KeyError("oops")

    @hookimpl
    def paas_post_deploy(self, release):
        raise RuntimeError("post boom")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def paas_post_deploy(self, app, release):
        self.seen.append(f"{app.name} {release}")

    @hookimpl
    def paas_pre_deploy(self, container: ContainerSettings):
        container.env["FROM_PLUGIN"] = "1"


class FakeApp:
    name = "shop"


class FakeCtx:
    def __init__(self, store: Store) -> None:
        self.store = store


def manager(tmp_path: Path, *plugins: object) -> Plugins:
    pm = Plugins(builtin_dir=tmp_path / "none")
    for i, p in enumerate(plugins):
        pm._register(p, f"p{i}", "1", "test")
    return pm


def test_a_refusing_pre_hook_fails_with_one_line_naming_the_plugin(tmp_path: Path) -> None:
    pm = manager(tmp_path, Refuser())
    with pytest.raises(PluginError, match=r"^p0: no builds for shop$"):
        pm.call_pre("paas_pre_build", app="shop", source=None, ctx=None, log=None)


def test_a_crashing_pre_hook_is_one_line_too(tmp_path: Path) -> None:
    pm = manager(tmp_path, Crasher())
    with pytest.raises(PluginError, match=r"^plugin p0 failed in paas_pre_deploy: KeyError$"):
        pm.call_pre("paas_pre_deploy", ctx=None, app=None, release=None, container=ContainerSettings())


def test_a_failing_post_hook_is_recorded_and_the_others_still_run(tmp_path: Path) -> None:
    recorder = Recorder()
    pm = manager(tmp_path, recorder, Crasher())
    store = Store(tmp_path / "db.sqlite")
    store.create_app("shop")
    pm.call_post("paas_post_deploy", ctx=FakeCtx(store), app=FakeApp(), release="v2", log=None)
    assert recorder.seen == ["shop v2"]
    events = store.list_events(app="shop")
    assert [(e["action"], e["detail"]) for e in events] == [
        ("plugin:failed", "p1 paas_post_deploy: post boom")
    ]


def test_pre_deploy_adds_container_settings(tmp_path: Path) -> None:
    pm = manager(tmp_path, Recorder())
    settings = ContainerSettings(env={"A": "b"})
    pm.call_pre("paas_pre_deploy", ctx=None, app=None, release=None, container=settings)
    assert settings.env == {"A": "b", "FROM_PLUGIN": "1"}


def test_builtin_plugins_load_from_the_folder_and_can_be_disabled(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    (folder / "greeter").mkdir(parents=True)
    (folder / "greeter" / "__init__.py").write_text(
        "from paas.plugins import hookimpl\n__version__ = '0.9'\n\n"
        "@hookimpl\ndef paas_reconcile(ctx):\n    pass\n"
    )
    (folder / "_private").mkdir()
    (folder / "_private" / "__init__.py").write_text("raise SystemExit('never imported')\n")
    loaded = Plugins(builtin_dir=folder)
    info = loaded.info["greeter"]
    assert (info.version, info.source, info.hooks) == ("0.9", "built-in", ["paas_reconcile"])
    assert "greeter" not in Plugins(disabled={"greeter"}, builtin_dir=folder).info


def test_a_folder_may_hold_several_plugins_each_known_by_its_name(tmp_path: Path) -> None:
    """`PAAS_PLUGINS` (the datastores' kinds): each is listed, ordered and turned off by its own name."""
    folder = tmp_path / "plugins"
    for name in ("kit", "mid"):
        (folder / name).mkdir(parents=True)
    (folder / "kit" / "__init__.py").write_text(
        "from paas.plugins import hookimpl\n\n"
        "class Kind:\n"
        "    def __init__(self, name):\n        self.name = name\n        self.__version__ = '2.0'\n\n"
        "    @hookimpl\n    def paas_reconcile(self, ctx):\n        ctx.append(self.name)\n\n"
        "PAAS_PLUGINS = {'zed': Kind('zed'), 'alpha': Kind('alpha')}\n"
    )
    (folder / "mid" / "__init__.py").write_text(
        "from paas.plugins import hookimpl\n\n@hookimpl\ndef paas_reconcile(ctx):\n    ctx.append('mid')\n"
    )
    loaded = Plugins(builtin_dir=folder)
    assert list(loaded.info) == ["alpha", "mid", "zed"]  # by name, not by folder
    assert (loaded.info["zed"].version, loaded.info["zed"].hooks) == ("2.0", ["paas_reconcile"])
    seen: list[str] = []
    loaded.call_post("paas_reconcile", ctx=seen)
    assert seen == ["zed", "mid", "alpha"]  # pluggy's order: the last registered first
    assert list(Plugins(disabled={"zed"}, builtin_dir=folder).info) == ["alpha", "mid"]
    assert list(Plugins(disabled={"kit"}, builtin_dir=folder).info) == ["mid"]


def test_route_extras_refuse_anything_but_plain_words() -> None:
    extras = RouteExtras()
    extras.add_location("/", ["return 503"])
    assert extras.replaces_proxy
    for bad in ["return 200 'x'", "proxy_pass http://$host", "a; b", "root /x }", "include /etc/x\n"]:
        with pytest.raises(PaasError):
            extras.add_directive(bad)
    with pytest.raises(PaasError):
        extras.add_location("~ .*", ["deny all"])


def test_every_hook_function_of_a_builtin_plugin_is_marked() -> None:
    """A `paas_*` function without @hookimpl is never called, silently (a merge once dropped the
    certs plugin's paas_post_deploy marker: review apps lost their parent's HTTPS)."""
    import ast

    root = Path(__file__).resolve().parents[2] / "plugins"
    unmarked = []
    for path in sorted(root.glob("*/*.py")):
        tree = ast.parse(path.read_text())
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]  # the datastores' KindPlugin
        for node in [*tree.body, *(n for c in classes for n in c.body)]:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("paas_"):
                names = {
                    getattr(d, "id", getattr(getattr(d, "func", None), "id", None))
                    for d in node.decorator_list
                }
                if "hookimpl" not in names:
                    unmarked.append(f"{path.relative_to(root)}:{node.name}")
    assert unmarked == []
