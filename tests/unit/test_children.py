"""Programs the PaaS starts to make images get a Debian system's umask and memory limit, not the
ones a `paas` process chose for itself (umask 077; a push's RLIMIT_DATA)."""

from __future__ import annotations

import resource
import subprocess
import sys

from paas.buildpacks import stack
from paas.core import children

PROBE = "import os, resource; m = os.umask(0); print(oct(m), resource.getrlimit(resource.RLIMIT_DATA)[0])"


def _in_a_limited_process(code: str) -> str:
    """Run `code` in a Python that first sets umask 077 and a 256 MiB soft RLIMIT_DATA, as the
    pack process of a push does."""
    prelude = (
        "import os, resource\n"
        "os.umask(0o077)\n"
        "resource.setrlimit(resource.RLIMIT_DATA, (256 << 20, resource.getrlimit(resource.RLIMIT_DATA)[1]))\n"
    )
    out = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_child_started_for_a_build_gets_umask_022_and_the_hard_heap_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    code = (
        "import subprocess, sys\n"
        "from paas.core import children\n"
        f"p = children.popen([sys.executable, '-c', {PROBE!r}], stdout=subprocess.PIPE, text=True)\n"
        "print(p.communicate()[0].strip())\n"
        f"print(subprocess.run([sys.executable, '-c', {PROBE!r}], capture_output=True, text=True).stdout)\n"
    )
    ours, plain = _in_a_limited_process(code).splitlines()[:2]
    assert ours == f"0o22 {hard}"  # hard is RLIM_INFINITY (-1) on a stock machine
    assert plain == f"0o77 {256 << 20}"  # what every child inherited before


def test_an_unlimited_process_runs_the_command_as_given() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    assert soft == hard  # the test runner is not limited
    assert children.unlimited(["true"]) == ["true"]


def test_the_stack_recipe_sets_modes_whatever_the_builders_umask() -> None:
    """Machines that built the 0700 stack rebuild by themselves: the recipe (and so the tag) says
    umask 022 and the modes of the folders the build user needs."""
    for recipe in stack.STACKS:
        script = recipe.setup_script()
        assert script.startswith("umask 022\n")
        assert "chmod 0755 / /app /cache /env /etc/paas" in script
    assert stack.DEFAULT_STACK.tag != "trixie-23822d9be19d"  # the 0700 stack's tag
