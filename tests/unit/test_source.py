import subprocess
import tarfile
from pathlib import Path

from dulwich.repo import Repo

from paas.buildpacks import source


def test_tree_is_exported_under_app_with_modes_links_and_the_launcher(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "Procfile").write_text("web: ./run.sh\n")
    (work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "run.sh").chmod(0o755)
    (work / "pkg").mkdir()
    (work / "pkg" / "mod.py").write_text("x = 1\n")
    (work / "link").symlink_to("pkg/mod.py")
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=work, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True
    ).stdout.strip()
    repo = Repo(str(work))
    assert source.read_file(repo, sha, "Procfile") == "web: ./run.sh\n"
    assert source.read_file(repo, sha, "missing") is None
    with source.source_tar(repo, sha) as fh, tarfile.open(fileobj=fh) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["app/run.sh"].mode == 0o755 and members["app/Procfile"].mode == 0o644
    assert members["app/pkg"].isdir() and members["app/pkg/mod.py"].uid == 1000
    assert members["app/link"].issym() and members["app/link"].linkname == "pkg/mod.py"
    assert members["start"].mode == 0o755 and members["start"].uid == 0
    assert not any(n.startswith("app/.git") for n in members)
