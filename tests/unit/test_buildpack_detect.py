"""Detection order, overrides, the dependency layer's inputs and `.slugignore`, on real git trees."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from dulwich.repo import Repo

from paas.buildpacks import detect, layers, slugignore
from paas.buildpacks.source import SourceTree
from paas.errors import PaasError
from paas.settings import Settings

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "PATH": "/usr/bin:/bin",
}


def make_tree(root: Path, files: dict[str, str], links: dict[str, str] | None = None) -> SourceTree:
    """A one-commit git repo with `files` (and symlinks), read back as the builder reads pushes."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name, target in (links or {}).items():
        os.symlink(target, root / name)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x", "--allow-empty"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=GIT_ENV)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return SourceTree(Repo(str(root)), sha)


@pytest.mark.parametrize(
    ("files", "kind", "name", "buildpack"),
    [
        ({"requirements.txt": "flask"}, "builtin", "Python", "python"),
        ({"pyproject.toml": ""}, "builtin", "Python", "python"),
        ({"uv.lock": ""}, "builtin", "Python", "python"),
        ({"package.json": "{}"}, "builtin", "Node.js", "nodejs"),
        ({"index.html": "<h1>"}, "builtin", "Static HTML", "static"),
        ({".static": ""}, "builtin", "Static HTML", "static"),
        ({"Procfile": "web: ./run"}, "builtin", "Procfile", "procfile"),
        # the first match wins: Python before Node.js before static
        ({"requirements.txt": "", "package.json": "{}", "index.html": ""}, "builtin", "Python", "python"),
        ({"package.json": "{}", "index.html": ""}, "builtin", "Node.js", "nodejs"),
        # a Dockerfile only when no buildpack marker matched, but before Procfile-only
        ({"Dockerfile": "FROM x", "requirements.txt": ""}, "builtin", "Python", "python"),
        ({"Dockerfile": "FROM x", "Procfile": "web: x"}, "dockerfile", "Dockerfile", None),
    ],
)
def test_detection_order(tmp_path: Path, files: dict, kind: str, name: str, buildpack: str | None) -> None:
    plan = detect.detect(make_tree(tmp_path / "r", files))
    assert (plan.kind, plan.name) == (kind, name)
    assert [b.value for b in plan.buildpacks] == ([buildpack] if buildpack else [])


def test_markers_must_be_regular_files_at_the_root(tmp_path: Path) -> None:
    tree = make_tree(
        tmp_path / "r", {"sub/requirements.txt": "", "x": ""}, links={"package.json": "/etc/passwd"}
    )
    with pytest.raises(detect.DetectFailed, match="no buildpack recognised this app"):
        detect.detect(tree)


def test_python_runtime_pins_belong_to_the_python_buildpack(tmp_path: Path) -> None:
    assert detect.detect(make_tree(tmp_path / "a", {"requirements.txt": ""})).runtimes == ("python",)
    assert detect.detect(make_tree(tmp_path / "b", {"package.json": "{}"})).runtimes == ("node",)
    assert detect.detect(make_tree(tmp_path / "c", {"index.html": ""})).runtimes == ()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("PAAS_BUILDPACKS_DIR", raising=False)
    s = Settings(data_dir=tmp_path / "data")
    bp = s.data_dir / "buildpacks" / "mine" / "bin"
    bp.mkdir(parents=True)
    for script in ("detect", "compile"):
        (bp / script).write_text("#!/bin/sh\n")
    return s


def test_buildpack_url_wins_over_dot_buildpacks_and_detection(tmp_path: Path, settings: Settings) -> None:
    tree = make_tree(tmp_path / "r", {"requirements.txt": "", ".buildpacks": "nodejs\n"})
    plan = detect.plan(settings, tree, {"BUILDPACK_URL": "https://example.com/bp.git#v2"})
    assert plan.kind == "custom" and plan.buildpacks == (
        detect.Buildpack("git", "https://example.com/bp.git#v2"),
    )
    plan = detect.plan(settings, tree, {})
    assert plan.buildpacks == (detect.Buildpack("builtin", "nodejs"),) and plan.runtimes == ("node",)


def test_dot_buildpacks_lists_several_kinds(tmp_path: Path, settings: Settings) -> None:
    mine = settings.data_dir / "buildpacks" / "mine"
    text = f"# comment\nheroku/python\n\n{mine}\nfile://{mine}\ngit://example.com/x/y\n"
    plan = detect.plan(settings, make_tree(tmp_path / "r", {".buildpacks": text}), {})
    assert [(b.kind, b.value) for b in plan.buildpacks] == [
        ("builtin", "python"),
        ("dir", str(mine.resolve())),
        ("dir", str(mine.resolve())),
        ("git", "git://example.com/x/y"),
    ]
    assert plan.runtimes == ("python",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/etc", "/etc is not under"),
        ("{root}/../../etc", "is not a buildpack"),
        ("{root}/missing", "is not a buildpack (no bin/detect and bin/compile)"),
        ("ext::sh -c touch% /tmp/pwned", "is not a buildpack: use a built-in name"),
        ("https://example.com/x#--upload-pack=evil", "is not a buildpack"),
        ("ssh://git@example.com/x", "is not a buildpack"),
        ("https://example.com/x y", "is not a buildpack"),
        ("rm -rf /", "is not a buildpack"),
    ],
)
def test_bad_buildpack_entries_are_one_line_errors(settings: Settings, value: str, message: str) -> None:
    value = value.replace("{root}", str(settings.data_dir / "buildpacks"))
    with pytest.raises(detect.DetectFailed) as err:
        detect.parse_buildpack(settings, value, "BUILDPACK_URL")
    assert message in str(err.value) and str(err.value).startswith("BUILDPACK_URL: ")
    assert "\n" not in str(err.value)


def test_empty_or_long_dot_buildpacks_fail(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(PaasError, match=".buildpacks is empty"):
        detect.plan(settings, make_tree(tmp_path / "a", {".buildpacks": "# nothing\n"}), {})
    with pytest.raises(PaasError, match="at most 8"):
        detect.plan(settings, make_tree(tmp_path / "b", {".buildpacks": "python\n" * 9}), {})


def test_dependency_paths_follow_requirement_includes(tmp_path: Path) -> None:
    tree = make_tree(
        tmp_path / "r",
        {
            "requirements.txt": "-r requirements/base.txt\nflask  # web\n--constraint=constraints.txt\n",
            "requirements/base.txt": "-r common.txt\nrequests\n",
            "requirements/common.txt": "idna\n",
            "constraints.txt": "idna<4\n",
            "app.py": "",
            ".python-version": "3.13",
        },
    )
    assert layers.dependency_paths("python", tree) == [
        ".python-version",
        "constraints.txt",
        "requirements.txt",
        "requirements/base.txt",
        "requirements/common.txt",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "-e .",
        ".",
        "./libs/thing",
        "-e ./libs/thing",
        "pkg @ file:///app/x",
        "--find-links=./wheels",
        ".[dev]",
    ],
)
def test_local_paths_in_requirements_key_the_layer_on_the_whole_tree(tmp_path: Path, line: str) -> None:
    tree = make_tree(tmp_path / "r", {"requirements.txt": f"flask\n{line}\n"})
    assert layers.dependency_paths("python", tree) is layers.FULL_TREE


def test_remote_requirements_are_not_local(tmp_path: Path) -> None:
    tree = make_tree(
        tmp_path / "r",
        {"requirements.txt": "git+https://example.com/x.git#egg=x\npkg @ https://e.com/p.whl\n"},
    )
    assert layers.dependency_paths("python", tree) == ["requirements.txt"]


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        ('{"dependencies": {"express": "^5"}}', ["package-lock.json", "package.json"]),
        ('{"scripts": {"postinstall": "node setup.js"}}', None),
        ('{"dependencies": {"mine": "file:./lib"}}', None),
        ('{"workspaces": ["a"]}', None),
        ("not json", None),
    ],
)
def test_node_dependency_paths(tmp_path: Path, package: str, expected: list | None) -> None:
    tree = make_tree(tmp_path / "r", {"package.json": package, "package-lock.json": "{}", "server.js": ""})
    result = layers.dependency_paths("nodejs", tree)
    assert (sorted(result) if result is not None else None) == expected


def test_digest_changes_with_content_only(tmp_path: Path) -> None:
    a = make_tree(tmp_path / "a", {"requirements.txt": "flask\n", "app.py": "1"})
    b = make_tree(tmp_path / "b", {"requirements.txt": "flask\n", "app.py": "2"})
    c = make_tree(tmp_path / "c", {"requirements.txt": "django\n", "app.py": "1"})
    assert a.digest(["requirements.txt"]) == b.digest(["requirements.txt"]) != c.digest(["requirements.txt"])
    assert a.digest(["x"]) == b.digest(["x"])


@pytest.mark.parametrize(
    ("path", "removed"),
    [
        ("docs/manual.pdf", True),
        ("src/docs/inner.txt", True),  # a name without / matches at any depth
        ("big.psd", True),
        ("art/big.psd", True),
        ("tests/fixtures/data.bin", True),  # anchored pattern
        ("src/tests/fixtures/data.bin", False),
        ("app.py", False),
        ("documents.txt", False),
    ],
)
def test_slugignore_rules(path: str, removed: bool) -> None:
    keep = slugignore.keeper("# big things\ndocs/\n*.psd\n/tests/fixtures\n!app.py\n*\n/\n")
    assert keep is not None
    assert keep(path) is (not removed)


def test_no_slugignore_keeps_everything() -> None:
    assert slugignore.keeper(None) is None and slugignore.keeper("# only comments\n") is None


def test_tar_applies_the_filter_and_prefix(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "r", {"Dockerfile": "FROM x", "docs/a.txt": "a", "src/m.py": "m"})
    with (
        tree.tar(slugignore.keeper("docs"), launcher=False, prefix="") as fh,
        tarfile.open(fileobj=fh) as tar,
    ):
        names = sorted(tar.getnames())
    assert names == ["Dockerfile", "src", "src/m.py"]
