"""What a push may cost the host: tree walks, detection, pack ingestion, pruning, line splitting."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from paas.buildpacks import builder, detect, source
from paas.buildpacks.source import SourceTree, TreeTooBig
from paas.core.output import CUT_MARK, MAX_LINE, BuildLog, split_lines
from paas.errors import PaasError
from paas.git_receiver import pack_guard
from paas.git_receiver.pack_guard import GuardedIngest, PushLock, PushRefused
from paas.settings import Settings

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "PATH": "/usr/bin:/bin",
}


def _commit(repo: Repo, tree: Tree, *objects: Blob | Tree) -> str:
    for obj in (*objects, tree):
        repo.object_store.add_object(obj)
    commit = Commit()
    commit.tree = tree.id
    commit.author = commit.committer = b"t <t@t>"
    commit.author_time = commit.commit_time = 1_700_000_000
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"x"
    repo.object_store.add_object(commit)
    return commit.id.decode()


def _tree(entries: dict[bytes, tuple[int, bytes]]) -> Tree:
    tree = Tree()
    for name, (mode, sha) in entries.items():
        tree.add(name, mode, sha)
    return tree


def tree_bomb(repo: Repo, levels: int = 10, width: int = 10) -> str:
    """width**levels paths from levels + 3 objects: each level names one subtree width times."""
    leaf = Blob.from_string(b"x\n")
    reqs = Blob.from_string(b"flask\n")
    made: list[Blob | Tree] = [leaf, reqs]
    sub = _tree({f"f{i}".encode(): (0o100644, leaf.id) for i in range(width)})
    for _ in range(levels - 1):
        made.append(sub)
        sub = _tree({f"d{i}".encode(): (0o040000, sub.id) for i in range(width)})
    made.append(sub)
    root = _tree(
        {
            b"requirements.txt": (0o100644, reqs.id),
            **{f"d{i}".encode(): (0o040000, sub.id) for i in range(width)},
        }
    )
    return _commit(repo, root, *made)


@pytest.mark.alone  # it times itself: beside 4 workers of e2e tests it took 11.9 s of its 10 (full run)
def test_the_tree_bomb_is_refused_in_seconds_whatever_the_walk_keeps(tmp_path: Path) -> None:
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    tree = SourceTree(repo, tree_bomb(repo))
    start = time.monotonic()
    with pytest.raises(TreeTooBig, match=f"more than {source.MAX_TREE_ENTRIES} files and directories"):
        tree.tar(lambda path: path == "requirements.txt")  # what the dependency layer keeps
    assert time.monotonic() - start < 10


def test_directories_count_and_depth_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    empty = Tree()
    made: list[Blob | Tree] = [empty]
    sub = empty
    for _ in range(source.MAX_TREE_DEPTH + 1):  # one directory inside the next, no file at all
        sub = _tree({b"d": (0o040000, sub.id)})
        made.append(sub)
    root = _tree({b"d": (0o040000, sub.id)})
    tree = SourceTree(repo, _commit(repo, root, *made))
    with pytest.raises(TreeTooBig, match=f"deeper than {source.MAX_TREE_DEPTH} levels"):
        list(tree.walk())
    monkeypatch.setattr(source, "MAX_TREE_ENTRIES", 100)
    wide = _tree({f"d{i}".encode(): (0o040000, empty.id) for i in range(101)})  # empty directories only
    with pytest.raises(TreeTooBig, match="more than 100 files and directories"):
        list(SourceTree(repo, _commit(repo, wide, empty)).walk())


def test_a_walk_has_a_time_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    monkeypatch.setattr(source, "WALK_SECONDS", 0.0)
    with pytest.raises(TreeTooBig, match="took longer than 0 s"):
        list(SourceTree(repo, tree_bomb(repo, levels=3)).walk())


def test_a_tree_naming_dot_dot_is_refused(tmp_path: Path) -> None:
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    a = Blob.from_string(b"a")
    root = Tree()
    root.add(b"..", 0o100644, a.id)
    with pytest.raises(PaasError, match="names a file"):
        list(SourceTree(repo, _commit(repo, root, a)).walk())


def test_an_honest_tree_walks_as_before(tmp_path: Path) -> None:
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    a, b = Blob.from_string(b"a"), Blob.from_string(b"b")
    pkg = _tree({b"mod.py": (0o100644, b.id)})
    root = _tree({b"app.py": (0o100644, a.id), b"pkg": (0o040000, pkg.id)})
    tree = SourceTree(repo, _commit(repo, root, a, b, pkg))
    assert [(p, m) for p, m, _ in tree.walk()] == [
        ("app.py", 0o100644),
        ("pkg", 0o040000),
        ("pkg/mod.py", 0o100644),
    ]
    assert [p for p, _, _ in tree.files()] == ["app.py", "pkg/mod.py"]
    assert tree.read("pkg/mod.py") == "b" and tree.read("app.py/x") is None and tree.is_file("pkg") is False


def test_detection_writes_only_the_names_the_detect_scripts_test(tmp_path: Path) -> None:
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    big = Blob.from_string(b"x" * (200 << 10))
    root = _tree(
        {b"requirements.txt": (0o100644, big.id), **{f"f{i}".encode(): (0o100644, big.id) for i in range(50)}}
    )
    tree = SourceTree(repo, _commit(repo, root, big))
    dest = tmp_path / "detect"
    dest.mkdir()
    detect._materialise_root(tree, dest)
    assert [(p.name, p.stat().st_size) for p in dest.iterdir()] == [("requirements.txt", 0)]
    assert detect.detect(tree).name == "Python"


def test_detect_files_are_the_files_the_builtin_detect_scripts_test() -> None:
    tested: set[str] = set()
    for script in sorted(Path(str(detect.builtin_dir("python"))).parent.glob("*/bin/detect")):
        text = script.read_text()
        tested.update(re.findall(r'-f "\$1/([^"]+)"', text))
        for names in re.findall(r"^for f in (.+); do$", text, re.MULTILINE):
            tested.update(names.split())
    assert tested == set(detect.DETECT_FILES)


# Pack ingestion


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, input=stdin, capture_output=True, check=True
    ).stdout


def _pack_of(work: Path, files: dict[str, bytes], base: str | None = None) -> tuple[bytes, str]:
    """A commit of `files` in the work repo, and the (thin, when `base` is given) pack a push sends."""
    for name, data in files.items():
        (work / name).write_bytes(data)
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "x")
    head = _git(work, "rev-parse", "HEAD").decode().strip()
    revs = f"{head}\n" + (f"^{base}\n" if base else "")
    pack = _git(work, "pack-objects", "--revs", "--thin", "--stdout", "-q", stdin=revs.encode())
    return pack, head


def _settings(tmp_path: Path, **kw: int) -> Settings:
    return Settings(data_dir=tmp_path / "data", **kw)  # type: ignore[arg-type]


def _receive(repo: Repo, settings: Settings, pack: bytes) -> GuardedIngest:
    ingest = GuardedIngest(repo, settings)
    repo.object_store.add_thin_pack(io.BytesIO(pack).read, None)  # type: ignore[attr-defined]
    return ingest


def _stored(repo_path: Path) -> list[str]:
    objects = repo_path / "objects"
    return sorted(p.name for p in objects.rglob("*") if p.is_file() and "info" not in p.parts)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    w = tmp_path / "work"
    w.mkdir()
    _git(w, "init", "-q")
    return w


def test_an_object_that_inflates_past_the_limit_is_refused_before_it_is_inflated(
    tmp_path: Path, work: Path
) -> None:
    pack, _ = _pack_of(work, {"zeros": bytes(64 << 20)})
    assert len(pack) < 1 << 20  # 64 MiB of zeros packs to ~64 KiB
    repo_path = tmp_path / "r.git"
    repo = Repo.init_bare(str(repo_path), mkdir=True)
    with pytest.raises(
        PushRefused, match=r"^push refused: an object inflates past 1 MiB \(PAAS_MAX_OBJECT_BYTES\)$"
    ):
        _receive(repo, _settings(tmp_path, max_object_bytes=1 << 20), pack)
    assert _stored(repo_path) == []  # no temporary pack left behind
    assert pack_guard.dulwich.pack.read_zlib_chunks.__name__ == "read_zlib_chunks"  # the check is gone again


def test_a_delta_is_charged_with_what_it_builds(tmp_path: Path, work: Path) -> None:
    base = os.urandom(700 << 10)
    first, first_sha = _pack_of(work, {"data": base})
    # 1.1 MiB made of the first version: git sends it as a thin delta of a few bytes
    second, _ = _pack_of(work, {"data": base + base[: 400 << 10]}, base=first_sha)
    assert len(second) < 10 << 10
    repo_path = tmp_path / "r.git"
    repo = Repo.init_bare(str(repo_path), mkdir=True)
    settings = _settings(tmp_path, max_object_bytes=1 << 20)
    _receive(repo, settings, first)
    stored = _stored(repo_path)
    with pytest.raises(PushRefused, match="an object inflates past 1 MiB"):
        _receive(repo, settings, second)
    assert _stored(repo_path) == stored


def test_a_pack_is_refused_when_all_it_inflates_to_passes_the_push_limit(tmp_path: Path, work: Path) -> None:
    pack, _ = _pack_of(work, {f"z{i}": bytes(1 << 20) + bytes([i]) for i in range(5)})
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    settings = _settings(tmp_path, max_object_bytes=2 << 20, max_push_inflated_bytes=4 << 20)
    with pytest.raises(PushRefused, match=r"the pack inflates past 4 MiB \(PAAS_MAX_PUSH_INFLATED_BYTES\)"):
        _receive(repo, settings, pack)


def test_honest_packs_are_stored_and_remembered(tmp_path: Path, work: Path) -> None:
    pack, head = _pack_of(work, {"app.py": b"print(1)\n"})
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    ingest = _receive(repo, _settings(tmp_path), pack)
    assert ingest.new_pack is not None and ingest.new_pack.exists()
    assert head.encode() in repo.object_store


def test_running_out_of_memory_while_unpacking_is_a_refusal(tmp_path: Path, work: Path) -> None:
    """RLIMIT_DATA is the backstop when the size limits allow more than memory does."""
    pack, _ = _pack_of(work, {"zeros": bytes(300 << 20)})
    (tmp_path / "pack").write_bytes(pack)
    script = f"""
import io, sys
from dulwich.repo import Repo
from paas.git_receiver import pack_guard
from paas.settings import Settings
repo = Repo.init_bare({str(tmp_path / "r.git")!r}, mkdir=True)
settings = Settings(push_memory=200 << 20, max_object_bytes=1 << 30)
pack_guard.limit_memory(settings.push_memory)
pack_guard.GuardedIngest(repo, settings)
try:
    repo.object_store.add_thin_pack(io.BytesIO(open({str(tmp_path / "pack")!r}, "rb").read()).read, None)
except pack_guard.PushRefused as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "push refused: unpacking needs over 200 MiB of memory (PAAS_PUSH_MEMORY)", (
        out
    )
    assert _stored(tmp_path / "r.git") == []


def test_a_refused_pack_is_pruned_only_when_no_other_push_is_in_flight(tmp_path: Path, work: Path) -> None:
    pack, _ = _pack_of(work, {"app.py": b"x\n"})
    repo_path = tmp_path / "r.git"
    repo = Repo.init_bare(str(repo_path), mkdir=True)
    ingest = _receive(repo, _settings(tmp_path), pack)
    assert ingest.new_pack is not None
    ours, other = PushLock(repo_path), PushLock(repo_path)
    ours.acquire_shared()
    other.acquire_shared()  # another push, still running: its pack may be this very one
    pack_guard.after_push(repo_path, ours, ingest.new_pack)
    assert ingest.new_pack.exists()
    other.release()
    pack_guard.after_push(repo_path, ours, ingest.new_pack)
    assert not ingest.new_pack.exists() and _stored(repo_path) == []
    ours.release()


def test_a_repo_with_many_packs_is_repacked_without_its_garbage(tmp_path: Path, work: Path) -> None:
    repo_path = tmp_path / "r.git"
    repo = Repo.init_bare(str(repo_path), mkdir=True)
    settings = _settings(tmp_path)
    head = ""
    for i in range(pack_guard.REPACK_PACKS):
        pack, head = _pack_of(work, {"app.py": f"v{i}\n".encode()}, base=head or None)
        _receive(repo, settings, pack)
    repo.refs[b"refs/heads/main"] = head.encode()
    garbage = Blob.from_string(b"refused")
    repo.object_store.add_objects([(garbage, None)])
    lock = PushLock(repo_path)
    lock.acquire_shared()
    pack_guard.after_push(repo_path, lock, None)
    lock.release()
    PushLock(repo_path).acquire_shared(wait=60)  # waits for the repack to end
    assert len(list((repo_path / "objects" / "pack").glob("*.pack"))) == 1
    fresh = Repo(str(repo_path))
    assert head.encode() in fresh.object_store and garbage.id not in fresh.object_store


# Line splitting


class _Container:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def logs(self, stream: bool, follow: bool):  # type: ignore[no-untyped-def]
        return iter(self.chunks)


def test_64_mib_without_a_newline_streams_in_linear_time_and_is_cut() -> None:
    chunk = b"x" * (16 << 10)
    container = _Container([chunk] * 4096 + [b"\nend\n"])  # 64 MiB, then a newline
    seen: list[str] = []
    start = time.process_time()
    builder.stream_lines(container, BuildLog(seen.append))  # type: ignore[arg-type]
    assert time.process_time() - start < 2
    assert seen == ["x" * MAX_LINE + CUT_MARK + "\n", "end\n"]


def test_lines_are_split_across_chunks() -> None:
    chunks = [b"ab", b"c\r\nde", b"\n", b"f" * 10 + b"\ng", b"h"]
    assert list(split_lines(chunks, max_line=4)) == ["abc", "de", "ffff" + CUT_MARK, "gh"]
    assert list(split_lines([b"abcd", b"\n"], max_line=4)) == ["abcd"]
