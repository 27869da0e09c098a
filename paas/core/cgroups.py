"""A container's CPU and memory read from its cgroup files, in the shape of docker's stats.

The metrics sampler reads every running process every 10 s. Through dockerd that is one stats
call per container, each making dockerd read these same files and answer over its API: with
200 apps, 200 calls every 10 s and the CPU of dockerd that goes with them (bench/scale.py).
When dockerd runs on this host (a unix socket) the files are here: reading them costs a few
file reads. Where they are depends on the cgroup version and driver; a container whose files
are not found (another layout, a remote engine) is asked through dockerd as before.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_TICKS = os.sysconf("SC_CLK_TCK")


# Where a container's folders are, as (version, CPU root, memory root, sub-folder template): the
# layouts of cgroup v1 and v2 with docker's cgroupfs or systemd driver. One engine uses one: the
# layout that last matched is tried first, so a round over 200 containers makes one or two
# existence checks each instead of up to six.
LAYOUTS: tuple[tuple[str, str, str, str], ...] = (
    ("v1", "cpu,cpuacct", "memory", "docker/{id}"),
    ("v1", "cpu,cpuacct", "memory", "system.slice/docker-{id}.scope"),
    ("v1", "cpuacct", "memory", "docker/{id}"),
    ("v1", "cpuacct", "memory", "system.slice/docker-{id}.scope"),
    ("v2", "", "", "docker/{id}"),
    ("v2", "", "", "system.slice/docker-{id}.scope"),
)
_last = {"layout": 0}


def _dirs(container_id: str) -> tuple[str, Path, Path] | None:
    """(version, the CPU folder, the memory folder) of the container, or None."""
    first = _last["layout"]
    for i in (first, *(i for i in range(len(LAYOUTS)) if i != first)):
        version, cpu_root, mem_root, template = LAYOUTS[i]
        sub = template.format(id=container_id)
        cpu_dir, mem_dir = ROOT / cpu_root / sub, ROOT / mem_root / sub
        if version == "v1":
            found = (cpu_dir / "cpuacct.usage").exists() and mem_dir.is_dir()
        else:
            found = (cpu_dir / "cpu.stat").exists()
        if found:
            _last["layout"] = i
            return version, cpu_dir, mem_dir
    return None


def _fields(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def system_cpu_usage() -> int:
    """The host's CPU time in nanoseconds, as dockerd computes it (/proc/stat's first line,
    user to steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    return sum(int(f) for f in fields) * 1_000_000_000 // _TICKS


def host_memory() -> int:
    """The host's memory in bytes (a container without a limit may use it all)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


class Host:
    """What every container's stats compare against, read once for a round over many: the
    host's CPU time and memory (two /proc reads per container before, a third of the files a
    round read)."""

    def __init__(self) -> None:
        self.system_cpu = system_cpu_usage()
        self.memory = host_memory()
        self.cpus = os.cpu_count() or 1


def stats(container_id: str, host: Host | None = None) -> dict | None:
    """docker's one-shot stats (the parts the sampler reads) from the cgroup files, or None
    when they cannot be read here. `host`: read once by the caller for many containers."""
    if not all(c in "0123456789abcdef" for c in container_id) or len(container_id) != 64:
        return None  # only a full id names a folder
    found = _dirs(container_id)
    if found is None:
        return None
    version, cpu_dir, mem_dir = found
    try:
        if version == "v1":
            cpu = int((cpu_dir / "cpuacct.usage").read_text())
            usage = int((mem_dir / "memory.usage_in_bytes").read_text())
            limit = int((mem_dir / "memory.limit_in_bytes").read_text())
        else:
            cpu = _fields(cpu_dir / "cpu.stat").get("usage_usec", 0) * 1000
            usage = int((mem_dir / "memory.current").read_text())
            text = (mem_dir / "memory.max").read_text().strip()
            limit = int(text) if text.isdigit() else 0
        memory_stat = _fields(mem_dir / "memory.stat")
        host = host or Host()
    except (OSError, ValueError):
        return None  # gone meanwhile
    return {
        "cpu_stats": {
            "cpu_usage": {"total_usage": cpu},
            "system_cpu_usage": host.system_cpu,
            "online_cpus": host.cpus,
        },
        "memory_stats": {
            "usage": usage,
            "limit": min(limit, host.memory) if limit and host.memory else (limit or host.memory),
            "stats": memory_stat,
        },
    }
