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


# container id -> its folders: finding them cost two stat calls per container and round, the
# largest part of a round's file work (py-spy, 200 apps); dropped when a read fails (it is gone)
_found: dict[str, tuple[str, str, str]] = {}
FOUND_MAX = 4096


def _dirs(container_id: str) -> tuple[str, str, str] | None:
    """(version, the CPU folder, the memory folder) of the container, or None."""
    known = _found.get(container_id)
    if known is not None:
        return known
    first = _last["layout"]
    root = str(ROOT)
    for i in (first, *(i for i in range(len(LAYOUTS)) if i != first)):
        version, cpu_root, mem_root, template = LAYOUTS[i]
        sub = template.format(id=container_id)
        cpu_dir = f"{root}/{cpu_root}/{sub}" if cpu_root else f"{root}/{sub}"
        mem_dir = f"{root}/{mem_root}/{sub}" if mem_root else f"{root}/{sub}"
        if version == "v1":
            found = os.path.exists(f"{cpu_dir}/cpuacct.usage") and os.path.isdir(mem_dir)
        else:
            found = os.path.exists(f"{cpu_dir}/cpu.stat")
        if found:
            _last["layout"] = i
            if len(_found) >= FOUND_MAX:  # ids of containers long gone: start over
                _found.clear()
            _found[container_id] = (version, cpu_dir, mem_dir)
            return version, cpu_dir, mem_dir
    return None


def _read(path: str) -> bytes:
    """A small kernel file, read with one system call (pathlib's read_text cost three times the
    read itself, with 800 of them a round)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _fields(path: str) -> dict[str, int]:
    out = {}
    for line in _read(path).split(b"\n"):
        key, _, value = line.partition(b" ")
        if value.isdigit():
            out[key.decode()] = int(value)
    return out


def _keys(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    """Just `keys` of a flat-keyed file: memory.stat has about 40 lines, and parsing them all
    was most of a container's sample, with 200 of them a round."""
    text = b"\n" + _read(path)
    out = {}
    for key in keys:
        head = f"\n{key} ".encode()
        at = text.find(head)
        if at >= 0:
            value = text[at + len(head) :].split(b"\n", 1)[0]
            if value.isdigit():
                out[key] = int(value)
    return out


def system_cpu_usage() -> int:
    """The host's CPU time in nanoseconds, as dockerd computes it (/proc/stat's first line,
    user to steal)."""
    fields = _read("/proc/stat").split(b"\n", 1)[0].split()[1:9]
    return sum(int(f) for f in fields) * 1_000_000_000 // _TICKS


def host_memory() -> int:
    """The host's memory in bytes (a container without a limit may use it all)."""
    for line in _read("/proc/meminfo").split(b"\n"):
        if line.startswith(b"MemTotal:"):
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


# What the sampler reads of memory.stat: the page cache it leaves out of "used" (v2, v1).
MEMORY_STAT_KEYS = ("inactive_file", "total_inactive_file")


def stats(
    container_id: str, host: Host | None = None, keys: tuple[str, ...] = MEMORY_STAT_KEYS
) -> dict | None:
    """docker's one-shot stats (the parts the sampler reads) from the cgroup files, or None
    when they cannot be read here. `host`: read once by the caller for many containers;
    `keys`: the memory.stat keys wanted (the sampler's two by default)."""
    if not all(c in "0123456789abcdef" for c in container_id) or len(container_id) != 64:
        return None  # only a full id names a folder
    found = _dirs(container_id)
    if found is None:
        return None
    version, cpu_dir, mem_dir = found
    try:
        if version == "v1":
            cpu = int(_read(f"{cpu_dir}/cpuacct.usage"))
            usage = int(_read(f"{mem_dir}/memory.usage_in_bytes"))
            limit = int(_read(f"{mem_dir}/memory.limit_in_bytes"))
        else:
            cpu = _fields(f"{cpu_dir}/cpu.stat").get("usage_usec", 0) * 1000
            usage = int(_read(f"{mem_dir}/memory.current"))
            text = _read(f"{mem_dir}/memory.max").strip()
            limit = int(text) if text.isdigit() else 0
        memory_stat = _keys(f"{mem_dir}/memory.stat", keys)
        host = host or Host()
    except (OSError, ValueError):
        _found.pop(container_id, None)
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
