import subprocess
from pathlib import Path

import pytest

from paas.core.context import Context
from paas.errors import Conflict, PaasError
from paas.services import keys
from paas.settings import Settings


def make_key(tmp_path: Path, name: str = "k") -> Path:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    _normalised, fp = keys.parse_public_key((tmp_path / "k.pub").read_text())
    out = subprocess.run(["ssh-keygen", "-lf", str(key) + ".pub"], capture_output=True, text=True).stdout
    assert out.split()[1] == fp


@pytest.mark.parametrize("text", ["", "garbage", "ssh-ed25519 notbase64!!", "ssh-ed25519 AAAA", "a\nb"])
def test_bad_keys_are_refused(text: str) -> None:
    with pytest.raises(PaasError):
        keys.parse_public_key(text)


def test_first_key_is_admin_and_duplicates_refused(tmp_path: Path) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path / "data"), on_host=True)
    first = keys.add_key(ctx, "alice", (make_key(tmp_path, "a").with_suffix(".pub")).read_text())
    second = keys.add_key(ctx, "bob", (make_key(tmp_path, "b").with_suffix(".pub")).read_text())
    assert first.is_admin and not second.is_admin
    with pytest.raises(Conflict):
        keys.add_key(ctx, "carol", (tmp_path / "a.pub").read_text())
    # A second key of alice's is attached to her (issue 12), under its own name.
    third = keys.add_key(ctx, "alice", (make_key(tmp_path, "c").with_suffix(".pub")).read_text())
    assert third.name == "alice-2" and third.user_id == first.user_id and third.is_admin


def test_keys_are_managed_on_the_host_only(tmp_path: Path) -> None:
    from paas.errors import PermissionDenied

    ctx = Context.open(Settings(data_dir=tmp_path / "data"))  # not on the host: an SSH session
    with pytest.raises(PermissionDenied, match="^only an admin may run ssh-keys:add$"):
        keys.add_key(ctx, "mallory", (make_key(tmp_path, "m").with_suffix(".pub")).read_text())
