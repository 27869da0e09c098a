"""Guards found in review: build outputs, push refs, kept logs, version numbers."""

import os
from pathlib import Path

import pytest

from paas.buildpacks.builder import MAX_OUTPUT_BYTES, BuildFailed, read_build_output
from paas.core.output import KEEP_HEAD, KEEP_TAIL, BuildLog
from paas.errors import PaasError
from paas.services import push
from paas.services.releases import parse_version

ZERO = b"0" * 40


def test_build_outputs_never_follow_links_or_read_special_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host key")
    (tmp_path / "names").symlink_to(secret)
    with pytest.raises(BuildFailed, match="a link"):
        read_build_output(tmp_path, "names")
    os.mkfifo(tmp_path / "release.yml")
    with pytest.raises(BuildFailed, match="not a regular file"):
        read_build_output(tmp_path, "release.yml")
    (tmp_path / "big").write_bytes(b"x" * (MAX_OUTPUT_BYTES + 1))
    with pytest.raises(BuildFailed, match="larger than"):
        read_build_output(tmp_path, "big")
    (tmp_path / "ok").write_text("Python")
    assert read_build_output(tmp_path, "ok") == "Python"
    assert read_build_output(tmp_path, "missing") is None


def test_push_refs_that_may_deploy() -> None:
    assert push.check_push_ref("refs/heads/main", False, None) is True
    assert push.check_push_ref("refs/heads/master", False, None) is True
    # Another branch does not deploy the app: the plugins may take it (review apps), or not.
    assert push.check_push_ref("refs/heads/dev", False, None) is False
    assert push.check_push_ref("refs/heads/dev", True, "refs/heads/main") is False
    for ref, deleting, done, message in (
        ("refs/tags/v1", False, None, "only main or master deploys"),
        ("refs/heads/main", True, None, "deleting main is not allowed"),
        ("refs/heads/master", False, "refs/heads/main", "push one deploy branch at a time"),
    ):
        with pytest.raises(PaasError, match=message):
            push.check_push_ref(ref, deleting, done)


def test_a_branch_that_moved_while_the_push_waited_is_refused() -> None:
    a, b = b"a" * 40, b"b" * 40
    push.check_ref_unmoved("refs/heads/main", a, a, ZERO)
    push.check_ref_unmoved("refs/heads/main", ZERO, None, ZERO)
    for old, current in ((a, b), (ZERO, a), (a, None)):
        with pytest.raises(PaasError, match="main moved while this push waited"):
            push.check_ref_unmoved("refs/heads/main", old, current, ZERO)


def test_build_log_streams_everything_but_keeps_a_bounded_head_and_tail() -> None:
    seen: list[str] = []
    log = BuildLog(seen.append)
    total = KEEP_HEAD + KEEP_TAIL + 500
    for n in range(total):
        log.line(f"line {n}")
    log.line("x" * 100_000)
    assert len(seen) == total + 1
    kept = log.text().splitlines()
    assert kept[0] == "line 0" and "[... 501 lines not kept ...]" in kept[KEEP_HEAD]
    assert len(kept) == KEEP_HEAD + 1 + KEEP_TAIL
    assert kept[-1].endswith("[...]") and len(kept[-1]) < 9000


@pytest.mark.parametrize("text", ["v0", "vx", "v99999999999999999999", "", "-1"])
def test_bad_release_versions_are_clean_errors(text: str) -> None:
    with pytest.raises(PaasError, match="invalid release"):
        parse_version(text)
