"""git:from-archive's checks (attack tests: each archive below was accepted, or the command did not
exist, before them) and the commit an accepted archive becomes."""

from __future__ import annotations

import gzip
import io
import tarfile
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from dulwich.repo import Repo

from paas import commands
from paas.core import names
from paas.core.context import Context
from paas.errors import PaasError
from paas.services import push, sources
from paas.settings import Settings

CANARY = f"/tmp/paas-archive-canary-{uuid.uuid4().hex[:8]}.txt"


def member(name: str, data: bytes | None = None, **kw: object) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    if data is not None:
        info.size = len(data)
    return info, data


def link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return member(name, type=tarfile.SYMTYPE, linkname=target)


def tar(*members: tuple[tarfile.TarInfo, bytes | None], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def run(ctx: Context, argv: list[str], stdin: bytes) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(
        ctx=ctx, out=out, err=err, stdin=io.BytesIO(stdin), on_host=True, disconnected=lambda: True
    )
    return commands.dispatch(argv, env), out.getvalue(), err.getvalue()


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    ctx = Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)
    ctx.store.create_app("myapp")
    return ctx


CANARY_DIR, CANARY_NAME = CANARY.rsplit("/", 1)
ATTACKS = {
    "absolute symlink": (
        tar(link("pwn", CANARY_DIR), member(f"pwn/{CANARY_NAME}", b"canary\n"), member("README.md", b"#\n")),
        "Archive contains symlinks with absolute targets",
    ),
    "relative symlink out": (
        tar(link("pwn", "../../../../tmp"), member(f"pwn/{CANARY_NAME}", b"canary\n")),
        "Archive contains symlinks pointing outside extraction directory",
    ),
    "absolute path": (tar(member(CANARY, b"payload\n")), "Archive contains entries with absolute paths"),
    "parent traversal": (
        tar(member(f"../../..{CANARY}", b"payload\n")),
        "Archive contains entries with parent directory traversal",
    ),
    "file below a symlink": (
        tar(member("a/b", b"x"), link("c", "a"), member("c/d", b"y")),
        "Archive contains entries inside a symlinked folder",
    ),
    "hard link out": (
        tar(member("x", type=tarfile.LNKTYPE, linkname="/etc/shadow")),
        "Archive contains hard links to files outside the archive",
    ),
    "fifo": (tar(member("f", type=tarfile.FIFOTYPE)), "Archive contains special files"),
    "device": (
        tar(member("d", type=tarfile.CHRTYPE, devmajor=1, devminor=3)),
        "Archive contains special files",
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_dangerous_archive_is_refused_in_one_line(ctx: Context, name: str) -> None:
    data, message = ATTACKS[name]
    code, _, err = run(ctx, ["git:from-archive", "myapp", "--"], data)
    assert code == 1 and err == f"error: {message}" + err[len(f"error: {message}") :]
    assert message in err and err.count("\n") == 1, err
    assert not Path(CANARY).exists()
    assert not names.repo_path(ctx.settings, "myapp").exists()  # nothing was written


def test_tar_gz_is_checked_the_same(ctx: Context) -> None:
    data = tar(link("pwn", "/tmp"), member("pwn/x", b"x"), gz=True)
    code, _, err = run(ctx, ["git:from-archive", "--archive-type", "tar.gz", "myapp", "--"], data)
    assert code == 1 and "symlinks with absolute targets" in err
    code, _, err = run(ctx, ["git:from-archive", "myapp", "--"], data)  # gz sent as a plain tar
    assert code == 1 and "not a tar archive" in err


def test_the_caps(ctx: Context) -> None:
    many = tar(*(member(f"f{i}", b"") for i in range(20)))
    assert run(ctx, ["git:set", "--global", "archive-max-files", "10"], b"")[0] == 0
    code, _, err = run(ctx, ["git:from-archive", "myapp", "--"], many)
    assert code == 1 and "more than 10 entries, which exceeds the maximum of 10" in err
    big = tar(member("big", b"x" * 4096))
    assert run(ctx, ["git:set", "--global", "archive-max-size", "2048"], b"")[0] == 0
    code, _, err = run(ctx, ["git:from-archive", "myapp", "--"], big)
    assert code == 1 and "Archive exceeds maximum allowed size of 2048 bytes" in err
    # A bomb: 40 MB of zeros in 40 KB of gzip, past what the server unpacks.
    bomb = gzip.compress(tar(member("zeros", b"\0" * (40 << 20))))
    small = replace(ctx.settings, max_push_inflated_bytes=8 << 20, max_object_bytes=64 << 20)
    ctx2 = Context.open(small, actor="host", is_admin=True, on_host=True)
    assert run(ctx2, ["git:set", "--global", "archive-max-size"], b"")[0] == 0
    code, _, err = run(ctx2, ["git:from-archive", "--archive-type", "tar.gz", "myapp", "--"], bomb)
    assert code == 1 and "Archive unpacks to more than 8388608 bytes" in err
    code, _, err = run(ctx2, ["git:from-archive", "myapp", "--"], b"")
    assert code == 1 and "the archive is empty" in err


def test_an_archive_becomes_a_commit_on_the_deploy_branch(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed = []

    def fake_deploy(
        ctx: Context, app: str, repo: Repo, sha: str, log: object, image: object = None
    ) -> object:
        deployed.append(sha)
        if len(deployed) == 2:
            raise PaasError("deploy failed")
        return replace(ctx.store.create_release(1, None, {}, {}, "x", None))

    monkeypatch.setattr(push, "deploy_push", fake_deploy)
    data = tar(
        member("app-1.0/Procfile", b"web: ./run\n"),
        member("app-1.0/run", b"#!/bin/sh\n", mode=0o755),
        link("app-1.0/current", "run"),
        member("app-1.0/.git/config", b"[core]\n"),
        member("app-1.0/sub/dir/file.txt", b"deep"),
    )
    code, out, err = run(ctx, ["git:from-archive", "myapp", "--"], data)
    assert code == 0, err
    repo = Repo(str(names.repo_path(ctx.settings, "myapp")))
    head = repo.refs[b"refs/heads/master"]
    assert head.decode() == deployed[0] and repo.refs.follow(b"HEAD")[1] == head
    tree = repo[repo[head].tree]
    entries = {e.path.decode(): e.mode for e in repo.object_store.iter_tree_contents(tree.id)}
    assert entries == {  # the archive's one folder is its root; .git is left out
        "Procfile": 0o100644,
        "run": 0o100755,
        "current": 0o120000,
        "sub/dir/file.txt": 0o100644,
    }
    # A failed deploy leaves the branch where it was.
    code, _, err = run(ctx, ["git:from-archive", "myapp", "--"], tar(member("Procfile", b"web: x\n")))
    assert code == 1 and "deploy failed" in err
    assert Repo(str(names.repo_path(ctx.settings, "myapp"))).refs[b"refs/heads/master"] == head


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://127.0.0.1/app.tar", "not a public address"),
        ("http://localhost:8080/app.tar", "not a public address"),
        ("http://10.1.2.3/app.tar", "not a public address"),
        ("http://169.254.169.254/latest/meta-data", "not a public address"),
        ("http://[::1]/app.tar", "not a public address"),
        ("http://172.17.0.1:2375/x", "not a public address"),
        ("file:///etc/passwd", "http:// or https://"),
        ("ftp://example.com/app.tar", "http:// or https://"),
        ("https://user:secret@example.com/app.tar", "no user:password@"),
    ],
)
def test_a_url_that_reaches_the_server_itself_is_not_fetched(ctx: Context, url: str, words: str) -> None:
    with pytest.raises(PaasError, match=words.replace("(", r"\(").replace("/", "/")):
        sources.fetch(ctx, url, 1 << 20)
