"""Third-party plugins: installed with pip, found by entry point, their hooks and commands live."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.conftest import PaasServer, shutdown, unique_app

PLUGINS = Path(__file__).parent / "plugins"
PLUGIN_SRC = PLUGINS / "paas-hello"


def pip_install(plugin: Path, tmp_path: Path) -> Path:
    """The plugin installed with pip into a folder of its own; the folder."""
    site = tmp_path / "site"
    src = tmp_path / "plugin-src"  # pip builds in the source folder: keep the repo clean
    shutil.copytree(plugin, src)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(src)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    return site


def with_site(site: Path) -> str:
    """The plugin's folder first, then the suite's own PYTHONPATH (a worktree's paas, if any)."""
    return os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)


def test_a_pip_installed_plugin_adds_a_command_and_sees_deploys(tmp_path: Path) -> None:
    site = pip_install(PLUGIN_SRC, tmp_path)
    (tmp_path / "server").mkdir()
    server = PaasServer(tmp_path / "server")
    server.env["PYTHONPATH"] = with_site(site)  # as if installed into the server's venv
    try:
        server.start_with_key()
        listed = server.ssh("plugins:list")
        assert listed.returncode == 0, listed.output
        line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("hello "))
        assert "1.2.3" in line and "paas-hello" in line
        assert "paas_post_deploy" in line and "paas_commands" in line and "paas_pre_build" in line
        assert "hello:deploys" in server.ssh("help").stdout

        app = unique_app("plug")
        src = server.make_repo("stdlib-web", app)
        server.git(src, "remote", "add", "paas", f"paas:{app}")
        pushed = server.git(src, "push", "paas", "main")
        assert pushed.returncode == 0, pushed.output
        seen = server.ssh("hello:deploys", app)
        assert seen.returncode == 0 and seen.stdout.strip() == f"{app} v1", seen.output

        # A pre-build hook refuses: one line naming the plugin, nothing deployed.
        (src / "REFUSE").write_text("x")
        server.git(src, "add", "-A")
        server.git(src, "commit", "-q", "-m", "refuse")
        refused = server.git(src, "push", "paas", "main")
        assert refused.returncode != 0
        assert "hello: this commit has a REFUSE file" in refused.output
        assert "Traceback" not in refused.output
        assert server.ssh("hello:deploys", app).stdout.strip() == f"{app} v1"
        assert "v2" not in server.ssh("releases", app).stdout

        # Turned off by the operator: gone from the list and the commands.
        server.stop()
        server.env["PAAS_DISABLED_PLUGINS"] = "hello"
        server.start()
        listed = server.ssh("plugins:list").stdout.splitlines()
        assert not any(ln.startswith("hello ") for ln in listed) and "disabled: hello" in listed[-1]
        off = server.ssh("hello:deploys", app)
        assert off.returncode == 1 and "unknown command" in off.stderr
    finally:
        shutdown(server)


def test_a_plain_click_plugin_prints_to_each_ssh_session(tmp_path: Path) -> None:
    """click.echo, click.secho(err=True) and print in a plugin's command reach the SSH session
    that ran it, even with two sessions at once; click's endings are exit statuses."""
    site = pip_install(PLUGINS / "paas-plainclick", tmp_path)
    (tmp_path / "server").mkdir()
    server = PaasServer(tmp_path / "server")
    server.env["PYTHONPATH"] = with_site(site)
    try:
        server.start_with_key()
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda w: server.ssh("plain:count", w, "--times", "300"), ["aa", "bb"]))
        for word, got in zip(["aa", "bb"], runs, strict=True):
            assert got.returncode == 0, got.output
            assert got.stdout.splitlines() == [f"{word} {i}" for i in range(300)] + [f"{word} done"]
            assert got.stderr == f"{word} warned\n"

        app = unique_app("plain")
        assert server.ssh("apps:create", app).returncode == 0
        said = server.ssh("plain:app", app)
        assert (said.returncode, said.stdout) == (0, f"app {app}\n"), said.output

        for how, status, line in [
            ("exit", 3, ""),
            ("sys", 4, ""),
            ("abort", 1, "error: aborted"),
            ("usage", 1, "error: bad usage"),
        ]:
            ended = server.ssh("plain:end", how)
            assert (ended.returncode, ended.stdout) == (status, "started\n"), (how, ended.output)
            assert ended.stderr.startswith(line) and "Traceback" not in ended.stderr, ended.stderr
        asked = subprocess.run(
            ["ssh", "-F", str(server.ssh_config), "paas", "plain:ask"],
            input="bob\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (asked.returncode, asked.stdout) == (0, "name: hello bob\n"), asked
        assert "aa 0" not in server.log_path.read_text()  # nothing went to the server's own output
    finally:
        shutdown(server)
