"""Run Dokku's own black-box test files (`tests/unit/*.bats` of dokku/dokku) against paas.

    python -m tests.dokku.run [--dokku DIR] [--online] [--tap FILE] [name.bats ...]

DIR is a checkout of dokku/dokku (default: .dokku at the repository root, which git ignores);
its `tests/unit/<name>.bats` files run unchanged with bats, and its `tests/apps` are the apps
they push. A fresh `paas server` (tests/e2e's PaasServer) serves them; `dokku` is a command that
runs the host CLI `paas` against it (Dokku's tests run `dokku` on the server, as root), and
`dokku@dokku.me:<app>` pushes to it over SSH. The helper the files `load` is ours
(tests/dokku/test_helper.bash): Dokku's own removes every container on the host.

Without --online, the one buildpack Dokku's sample apps name in `.buildpacks`
(github.com/dokku/buildpack-null, which does nothing) is replaced by a local copy, for hosts that
cannot reach GitHub; nothing else is changed. The files are not part of this repository: get
them from https://github.com/dokku/dokku. Prints one line per test and the pass count.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.e2e.conftest import PAAS_BIN, PaasServer, shutdown

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The files issue 34 measures (dokku/dokku tests/unit): those that look only at output and HTTP.
FILES = (
    "app-json-3",
    "app-json-4",
    "app-json-5",
    "archive-security",
    "build-env",
    "builder",
    "builder-herokuish",
    "builder-pack",
    "buildpacks",
    "checks",
    "docker-image-healthcheck",
    "events",
    "git_1",
    "nginx-vhosts_properties",
    "proxied-app",
    "repo",
    "report",
    "scheduler",
    "version",
)
NULL_BUILDPACK_URL = "https://github.com/dokku/buildpack-null.git"
NULL_BUILDPACK = {
    "bin/detect": '#!/bin/sh\necho "null"\n',
    "bin/compile": "#!/bin/sh\nexit 0\n",
    "bin/release": "#!/bin/sh\necho '--- {}'\n",
}
TAP_LINE = re.compile(r"^(ok|not ok) \d+ (.*?)(?: # skip.*)?$")
FILE_TIMEOUT = 3600


def workspace(root: Path, dokku: Path, names: list[str], online: bool, server: PaasServer) -> Path:
    """tests/unit (the chosen files and our helper) and tests/apps, laid out as bats expects."""
    unit = root / "tests" / "unit"
    unit.mkdir(parents=True)
    for name in names:
        shutil.copy(dokku / "tests" / "unit" / f"{name}.bats", unit)
    for extra in (dokku / "tests" / "unit").glob("*.tar"):  # fixtures some files read (certs)
        shutil.copy(extra, unit)
    shutil.copy(HERE / "test_helper.bash", unit)
    apps = root / "tests" / "apps"
    shutil.copytree(dokku / "tests" / "apps", apps, symlinks=True)
    if not online:
        null = server.data_dir / "buildpacks" / "null"
        for rel, text in NULL_BUILDPACK.items():
            (null / rel).parent.mkdir(parents=True, exist_ok=True)
            (null / rel).write_text(text)
            (null / rel).chmod(0o755)
        for listed in apps.rglob(".buildpacks"):
            listed.write_text(listed.read_text().replace(NULL_BUILDPACK_URL, str(null)))
    return root


def tools(root: Path, server: PaasServer) -> dict[str, str]:
    """A `dokku` command on PATH, SSH and git set up as a Dokku test host has them."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    env_lines = "".join(
        f"export {k}={shlex.quote(v)}\n" for k, v in server.env.items() if k.startswith("PAAS_")
    )
    dokku = bin_dir / "dokku"
    dokku.write_text(f'#!/bin/bash\n{env_lines}exec {shlex.quote(PAAS_BIN)} "$@"\n')
    dokku.chmod(0o755)
    ssh_config = root / "ssh_config"
    ssh_config.write_text(server.ssh_config.read_text().replace("Host paas\n", "Host paas dokku.me\n", 1))
    gitconfig = root / "gitconfig"
    gitconfig.write_text(
        "[init]\n\tdefaultBranch = master\n[user]\n\tname = Test Robot\n\temail = robot@example.com\n"
    )
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PAAS_"))},
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DOKKU_DOMAIN": "dokku.me",
        "DOKKU_ROOT": str(root / "dokku-root"),
        "GIT_SSH_COMMAND": f"ssh -F {ssh_config}",
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def run_file(path: Path, env: dict[str, str], tap: list[str]) -> list[tuple[str, str]]:
    """(result, test name) for each test of one file: ok, not ok or skip."""
    try:
        p = subprocess.run(
            ["bats", "--tap", str(path)], env=env, capture_output=True, text=True, timeout=FILE_TIMEOUT
        )
        out = p.stdout
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        out += f"not ok 0 {path.stem}: timed out after {FILE_TIMEOUT} s\n"
    tap.append(f"# {path.name}\n{out}")
    results = []
    for line in out.splitlines():
        m = TAP_LINE.match(line)
        if m:
            result = "skip" if "# skip" in line else m.group(1)
            results.append((result, m.group(2)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dokku", type=Path, default=REPO / ".dokku", help="a checkout of dokku/dokku")
    parser.add_argument("--online", action="store_true", help="keep GitHub buildpack URLs as they are")
    parser.add_argument("--tap", type=Path, help="also write the raw TAP output here")
    parser.add_argument("files", nargs="*", help="names of tests/unit/*.bats (default: issue 34's)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the server is still shut down and cleaned
    names = [n.removesuffix(".bats") for n in args.files] or list(FILES)
    missing = [n for n in names if not (args.dokku / "tests" / "unit" / f"{n}.bats").is_file()]
    if missing or shutil.which("bats") is None:
        why = f"no {', '.join(missing)} under {args.dokku}/tests/unit" if missing else "bats is not installed"
        print(f"error: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="paas-dokku-tests-") as tmp:
        root = Path(tmp)
        (root / "srv").mkdir()
        server = PaasServer(root / "srv")
        try:
            server.start_with_key("dokku")
            space = workspace(root / "space", args.dokku, names, args.online, server)
            env = tools(root, server)
            tap: list[str] = []
            counts = {"ok": 0, "not ok": 0, "skip": 0}
            for name in names:
                for result, test in run_file(space / "tests" / "unit" / f"{name}.bats", env, tap):
                    counts[result] += 1
                    print(f"{result:6} {name}: {test}", flush=True)
            if args.tap:
                args.tap.write_text("".join(tap))
        finally:
            shutdown(server)
    total = sum(counts.values())
    print(f"\n{counts['ok']} of {total} passed, {counts['not ok']} failed, {counts['skip']} skipped")
    return 0 if counts["not ok"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
