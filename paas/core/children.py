"""Programs the PaaS starts to make things (a stack tree, its tar): with the umask and the memory
limit of a Debian system, not the ones a PaaS process chose for itself.

`paas` runs under umask 077 (its store, keys and logs are root's alone) and a push's pack process
under a heap limit meant for dulwich (`PAAS_PUSH_MEMORY`, RLIMIT_DATA). Both are inherited by every
child: a stack built under umask 077 had `/etc/paas` as 0700, unreadable to the build user, and a
debootstrap started by a push that needs a new stack aborted in node for want of address space.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
from typing import Any

UMASK = 0o022  # what a Debian login gets: files others may read, never write


def unlimited(cmd: list[str]) -> list[str]:
    """`cmd` with this process's soft heap limit lifted back to its hard limit (via prlimit, from
    util-linux, which Debian always has: a preexec_fn is not safe in a process with threads)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if soft == hard or shutil.which("prlimit") is None:
        return cmd
    value = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return ["prlimit", f"--data={value}:", "--", *cmd]


def popen(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    """subprocess.Popen for a program that makes files others use (images, trees)."""
    return subprocess.Popen(unlimited(cmd), umask=UMASK, **kwargs)  # noqa: S603 (argv, no shell)
