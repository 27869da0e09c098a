"""Which `run` containers a reconcile pass removes: a session's once its process is gone, a
`run:detached` one once it has exited, never one that is being started. `run:detached` creates
its container and then starts it; a pass that looked in between removed it as soon as it ran
(CI, stop 37: `run:detached app yes` vanished seconds after it started)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from paas.core import names
from paas.services import reconcile


class Found:
    def __init__(self, owner: str, status: str, created: float) -> None:
        self.labels = {names.LABEL_OWNER: owner}
        self.status = status
        # docker's own spelling: nanoseconds and a Z
        stamp = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        self.attrs = {"Created": f"{stamp}123Z"}


def test_a_detached_one_off_being_started_is_kept() -> None:
    assert reconcile._owner_alive(Found(names.DETACHED, "created", time.time() - 1))
    assert reconcile._owner_alive(Found(names.DETACHED, "running", time.time() - 86400))


def test_a_detached_one_off_that_ended_or_never_started_goes() -> None:
    assert not reconcile._owner_alive(Found(names.DETACHED, "exited", time.time() - 1))
    never = time.time() - reconcile.DETACHED_START_SECONDS - 5  # its starter died in between
    assert not reconcile._owner_alive(Found(names.DETACHED, "created", never))
    unknown = Found(names.DETACHED, "created", time.time())
    unknown.attrs = {}
    assert not reconcile._owner_alive(unknown)


def test_a_session_goes_with_its_process() -> None:
    mine = names.process_token(os.getpid()) or ""
    assert reconcile._owner_alive(Found(mine, "running", time.time()))
    assert not reconcile._owner_alive(Found("999999999:1", "running", time.time()))
