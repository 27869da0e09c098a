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


def _dirs(container_id: str) -> tuple[str, Path, Path] | None:
    """(version, the CPU folder, the memory folder) of the container, or None."""
    for cpu_root, mem_root in ((ROOT / "cpu,cpuacct", ROOT / "memory"), (ROOT / "cpuacct", ROOT / "memory")):
        for sub in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
            if (cpu_root / sub / "cpuacct.usage").exists() and (mem_root / sub).is_dir():
                return "v1", cpu_root / sub, mem_root / sub
    for sub in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
        if (ROOT / sub / "cpu.stat").exists():
            return "v2", ROOT / sub, ROOT / sub
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


def _host_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def stats(container_id: str) -> dict | None:
    """docker's one-shot stats (the parts the sampler reads) from the cgroup files, or None
    when they cannot be read here."""
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
        system = system_cpu_usage()
    except (OSError, ValueError):
        return None  # gone meanwhile
    host = _host_memory()
    return {
        "cpu_stats": {
            "cpu_usage": {"total_usage": cpu},
            "system_cpu_usage": system,
            "online_cpus": os.cpu_count() or 1,
        },
        "memory_stats": {
            "usage": usage,
            "limit": min(limit, host) if limit and host else (limit or host),
            "stats": memory_stat,
        },
    }
