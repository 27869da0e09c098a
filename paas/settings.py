"""Settings come from environment variables, each with a default (documented in the README)."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from docker.utils import parse_bytes


def _int(name: str, default: int, env: Mapping[str, str] = os.environ) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"error: {name} must be an integer, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"error: {name} must be a number, got {raw!r}") from None


def _size(name: str, default: str) -> int:
    """Bytes from docker's size syntax (`512m`, `2g`, `100k`, or plain bytes)."""
    raw = (os.environ.get(name) or default).strip().lower()
    try:
        return parse_bytes(raw)
    except Exception:  # docker's parser raises its own error type for anything malformed
        raise SystemExit(f"error: {name} must be a size like 512m or 2g, got {raw!r}") from None


# The checks below read `name` from `env` (the environment; a plugin passes `Settings.extra`, so
# its own settings are checked by the same rules) and exit with one line saying what is wrong.


def cidrs(name: str, env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """Comma-separated networks, each checked (they reach nginx's config)."""
    out = []
    for part in env.get(name, "").split(","):
        if part.strip():
            try:
                out.append(str(ipaddress.ip_network(part.strip(), strict=False)))
            except ValueError:
                raise SystemExit(f"error: {name}: {part.strip()!r} is not an address or CIDR") from None
    return tuple(out)


IMAGE_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*(?::[0-9]{1,5})?/(?:[a-z0-9._-]+/)*$")


def _image_sources(name: str) -> tuple[str, ...]:
    """Comma-separated image reference prefixes ending in `/` (`registry.example.com/team/`):
    a whole registry host or a path in it, never a bare name that `docker.io` would complete."""
    out = []
    for part in os.environ.get(name, "").split(","):
        if part.strip():
            if not IMAGE_SOURCE_RE.fullmatch(part.strip()):
                raise SystemExit(
                    f"error: {name}: {part.strip()!r} is not a prefix like registry.example.com/team/"
                )
            out.append(part.strip())
    return tuple(out)


def _choice(name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default)."""
    raw = (os.environ.get(name) or choices[0]).strip().lower()
    if raw not in choices:
        raise SystemExit(f"error: {name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


SCHEDULER_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,29}")


def _scheduler(name: str) -> str:
    """A scheduler's name: docker-local, or one a plugin gives (`swarm`); apps:create refuses
    one that no plugin loaded gives (services.moves.default_scheduler)."""
    raw = (os.environ.get(name) or "docker-local").strip().lower()
    if not SCHEDULER_NAME_RE.fullmatch(raw):
        raise SystemExit(f"error: {name} must be a scheduler's name like docker-local or swarm, got {raw!r}")
    return raw


def address(name: str, env: Mapping[str, str] = os.environ) -> str | None:
    """An IP address or nothing (it reaches shell lines and registry names)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise SystemExit(f"error: {name} must be an IP address, got {raw!r}") from None


def port(name: str, default: int, env: Mapping[str, str] = os.environ) -> int:
    value = _int(name, default, env)
    if not 1 <= value <= 65535:
        raise SystemExit(f"error: {name} must be a port (1-65535), got {value}")
    return value


def port_range(name: str, default: tuple[int, int], env: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """`LOW-HIGH`, both ports, LOW <= HIGH."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    low, sep, high = raw.partition("-")
    try:
        pair = (int(low), int(high)) if sep else (int(low), int(low))
    except ValueError:
        raise SystemExit(f"error: {name} must be a port range like 32768-60999, got {raw!r}") from None
    if not (1 <= pair[0] <= pair[1] <= 65535):
        raise SystemExit(f"error: {name} must be a port range like 32768-60999, got {raw!r}")
    return pair


@functools.lru_cache(maxsize=64)
def _instance_id(data_dir: Path) -> str:
    """Resolved once per data dir: a reconcile pass asks twice per app, and resolving walks the
    path's every folder (a fifth of a pass with 100 apps on a busy disk, profiled)."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Settings:
    """Every knob of a running PaaS; read once, passed down explicitly."""

    data_dir: Path = Path("/var/lib/paas")
    ssh_port: int = 2222
    ssh_bind: str = "0.0.0.0"
    http_port: int = 80
    http_bind: str = "0.0.0.0"
    web_port: int = 5000  # 0 turns the dashboard off
    web_bind: str = "127.0.0.1"
    web_workers: int = 2
    web_threads: int = 8
    domain: str = "localhost"
    dashboard_hostname: str | None = None  # PAAS_DASHBOARD_HOST; default paas.<domain>
    build_ca_bundle: str | None = None
    debian_mirror: str = "http://deb.debian.org/debian"
    boot_timeout: float = 60.0
    stop_timeout: int = 30
    settle_seconds: float = 0.5
    keep_releases: int = 5
    keep_build_outputs: int = 10
    log_max_bytes: int = 10 << 20  # each log file rotates past this
    log_keep: int = 5  # rotated files kept per log: the total stays under (log_keep + 1) x max
    log_rotate_seconds: float = 60.0
    min_free_disk: int = 2 << 30  # pushes are refused below this much free space
    disk_reserve: int = 1 << 30  # below this, the apps that write the most are stopped (the store's room)
    build_timeout: float = 1800.0
    max_push_bytes: int = 1 << 30
    max_object_bytes: int = 100 << 20  # one object, inflated (GitHub refuses files over 100 MiB too)
    max_push_inflated_bytes: int = 4 << 30  # all of a push's objects, inflated
    push_memory: int = 512 << 20  # RLIMIT_DATA of the pack process (ingest, build, deploy)
    reconcile_seconds: float = 5.0
    # An app nothing happened to (its containers, releases, formation, lock) is still visited
    # by a pass this often; 0: every app on every pass.
    reconcile_full_seconds: float = 30.0
    nginx_bin: str = "/usr/sbin/nginx"
    disabled_plugins: frozenset[str] = frozenset()
    # What every app container gets unless `resource:limit` says otherwise (sized for 2 cores).
    default_memory: str = "512m"
    default_cpus: float = 1.0
    default_pids: int = 256
    # Build containers (pip, npm, compilers) need more room; they still have a ceiling.
    build_memory: str = "2g"
    build_cpus: float = 0.0  # 0: no CPU limit (builds are what the pusher waits for)
    build_pids: int = 1024
    # Ceilings of one process that only an admin may pass with `resource:limit` (0 CPUs: the
    # machine's cores), and what each user may hold unless `quota:set` says otherwise.
    max_memory: int = 4 << 30
    max_cpus: float = 0.0
    max_pids: int = 4096
    quota_apps: int = 10
    quota_processes: int = 10
    quota_memory: int = 4 << 30  # the memory limits of a user's running processes, summed
    quota_oneoffs: int = 3  # `run`/`run:detached` containers at once
    quota_disk: int = 5 << 30  # repos, build caches, images (above the stack), containers, logs
    disk_check_seconds: float = 30.0  # how often `paas server` measures the apps' disk use
    network_pool: str = "10.199.0.0/16"  # app networks are /24s from here (not docker's small default pool)
    # TLS: the router's HTTPS listener (0 turns it off), proxies whose X-Forwarded-* are kept.
    https_port: int = 443
    https_bind: str = "0.0.0.0"
    trusted_proxies: tuple[str, ...] = ()
    app_create: str = "everyone"  # who may create apps (apps:create, a first push): everyone or admins
    service_create: str = "admins"  # who may create backing services (and app.json addons): admins or users
    services_per_user: int = 2  # how many backing services one non-admin user may own
    scheduler: str = "docker-local"  # what runs new apps: docker-local or a plugin's (scheduler:set per app)
    # Image references `git:from-image` may pull and deploy for anyone (prefixes such as
    # `registry.example.com/team/`); without one, only admins deploy images, and only local ones.
    image_sources: tuple[str, ...] = ()
    # docker-local's loopback ports: below the kernel's ephemeral range, where docker picks the
    # swarm tasks' host-mode ports (its allocator does not see a 127.0.0.1 port when it picks one
    # for 0.0.0.0: after a reboot both would start at 32768 and collide).
    local_ports: tuple[int, int] = (20000, 32767)
    # Every PAAS_* variable of the environment, as read at start: plugins keep their own settings
    # (PAAS_ACME_*, PAAS_BACKUP_*) and read them with `env` (a test passes them here).
    extra: dict[str, str] = field(default_factory=dict)
    # Locks over what every PaaS instance on this machine's engine shares (the stack and service
    # images): two instances (a test suite's servers) must not build the same image at once.
    engine_locks_dir: Path = Path("/run/lock/paas")
    # Private ranges builds and app containers may not reach (link-local never; see scheduler/egress.py).
    egress_deny: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Settings:
        ca = os.environ.get("PAAS_BUILD_CA_BUNDLE") or None
        return cls(
            data_dir=Path(os.environ.get("PAAS_DATA_DIR") or "/var/lib/paas"),
            ssh_port=_int("PAAS_SSH_PORT", 2222),
            ssh_bind=address("PAAS_SSH_BIND") or "0.0.0.0",
            http_port=_int("PAAS_HTTP_PORT", 80),
            http_bind=os.environ.get("PAAS_HTTP_BIND") or "0.0.0.0",
            web_port=_int("PAAS_WEB_PORT", 5000),
            web_bind=os.environ.get("PAAS_WEB_BIND") or "127.0.0.1",
            web_workers=max(1, _int("PAAS_WEB_WORKERS", 2)),
            web_threads=max(1, _int("PAAS_WEB_THREADS", 8)),
            domain=(os.environ.get("PAAS_DOMAIN") or "localhost").lower(),
            dashboard_hostname=(os.environ.get("PAAS_DASHBOARD_HOST") or "").strip().lower().rstrip(".")
            or None,
            build_ca_bundle=ca,
            debian_mirror=os.environ.get("PAAS_DEBIAN_MIRROR") or "http://deb.debian.org/debian",
            boot_timeout=_float("PAAS_BOOT_TIMEOUT", 60),
            stop_timeout=_int("PAAS_STOP_TIMEOUT", 30),
            settle_seconds=_float("PAAS_SETTLE_SECONDS", 0.5),
            keep_releases=max(1, _int("PAAS_KEEP_RELEASES", 5)),
            keep_build_outputs=max(1, _int("PAAS_KEEP_BUILD_OUTPUTS", 10)),
            log_max_bytes=max(4096, _size("PAAS_LOG_MAX_BYTES", "10m")),
            log_keep=max(1, _int("PAAS_LOG_KEEP", 5)),
            log_rotate_seconds=max(1.0, _float("PAAS_LOG_ROTATE_SECONDS", 60)),
            min_free_disk=_size("PAAS_MIN_FREE_DISK", "2g"),
            disk_reserve=_size("PAAS_DISK_RESERVE", "1g"),
            build_timeout=_float("PAAS_BUILD_TIMEOUT", 1800),
            max_push_bytes=_int("PAAS_MAX_PUSH_BYTES", 1 << 30),
            max_object_bytes=_int("PAAS_MAX_OBJECT_BYTES", 100 << 20),
            max_push_inflated_bytes=_int("PAAS_MAX_PUSH_INFLATED_BYTES", 4 << 30),
            push_memory=_int("PAAS_PUSH_MEMORY", 512 << 20),
            reconcile_seconds=_float("PAAS_RECONCILE_SECONDS", 5),
            reconcile_full_seconds=_float("PAAS_RECONCILE_FULL_SECONDS", 30),
            nginx_bin=os.environ.get("PAAS_NGINX_BIN") or "/usr/sbin/nginx",
            default_memory=os.environ.get("PAAS_DEFAULT_MEMORY") or "512m",
            default_cpus=_float("PAAS_DEFAULT_CPUS", 1.0),
            default_pids=_int("PAAS_DEFAULT_PIDS", 256),
            build_memory=os.environ.get("PAAS_BUILD_MEMORY") or "2g",
            build_cpus=_float("PAAS_BUILD_CPUS", 0.0),
            build_pids=_int("PAAS_BUILD_PIDS", 1024),
            max_memory=_size("PAAS_MAX_MEMORY", "4g"),
            max_cpus=max(0.0, _float("PAAS_MAX_CPUS", 0.0)),
            max_pids=max(1, _int("PAAS_MAX_PIDS", 4096)),
            quota_apps=max(0, _int("PAAS_QUOTA_APPS", 10)),
            quota_processes=max(0, _int("PAAS_QUOTA_PROCESSES", 10)),
            quota_memory=_size("PAAS_QUOTA_MEMORY", "4g"),
            quota_oneoffs=max(0, _int("PAAS_QUOTA_ONEOFFS", 3)),
            quota_disk=_size("PAAS_QUOTA_DISK", "5g"),
            disk_check_seconds=max(1.0, _float("PAAS_DISK_CHECK_SECONDS", 30)),
            network_pool=os.environ.get("PAAS_NETWORK_POOL") or "10.199.0.0/16",
            https_port=_int("PAAS_HTTPS_PORT", 443),
            https_bind=os.environ.get("PAAS_HTTPS_BIND") or "0.0.0.0",
            trusted_proxies=cidrs("PAAS_TRUSTED_PROXIES"),
            app_create=_choice("PAAS_APP_CREATE", ("everyone", "admins")),
            service_create=_choice("PAAS_SERVICE_CREATE", ("admins", "users")),
            services_per_user=max(0, _int("PAAS_SERVICES_PER_USER", 2)),
            scheduler=_scheduler("PAAS_SCHEDULER"),
            image_sources=_image_sources("PAAS_IMAGE_SOURCES"),
            local_ports=port_range("PAAS_LOCAL_PORTS", (20000, 32767)),
            disabled_plugins=frozenset(
                n.strip() for n in os.environ.get("PAAS_DISABLED_PLUGINS", "").split(",") if n.strip()
            ),
            engine_locks_dir=Path(os.environ.get("PAAS_ENGINE_LOCKS_DIR") or "/run/lock/paas"),
            egress_deny=cidrs("PAAS_EGRESS_DENY"),
            extra={k: v for k, v in os.environ.items() if k.startswith("PAAS_")},
        )

    def env(self, name: str, default: str | None = None) -> str | None:
        """A plugin's own setting: the PAAS_* variable `name` as the environment had it at start
        (empty counts as unset), else `default`."""
        return (self.extra.get(name) or "").strip() or default

    # Paths under the data dir, in one place so nobody builds them by hand.
    @property
    def db_path(self) -> Path:
        return self.data_dir / "paas.db"

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def nginx_dir(self) -> Path:
        return self.data_dir / "nginx"

    @property
    def metrics_log_path(self) -> Path:
        """The router's metrics lines (one per request, tagged with app and release), when the
        metrics plugin asks for them; rotated with nginx's other logs."""
        return self.nginx_dir / "logs" / "metrics.log"

    @property
    def locks_dir(self) -> Path:
        return self.data_dir / "locks"

    @property
    def host_key_path(self) -> Path:
        return self.data_dir / "ssh_host_ed25519_key"

    @property
    def instance_id(self) -> str:
        """Labels containers of this PaaS (by data dir), so two instances on one dockerd never mix."""
        return _instance_id(self.data_dir)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "paas.log"

    @property
    def web_log_path(self) -> Path:
        return self.data_dir / "web.log"

    @property
    def web_secret_path(self) -> Path:
        """The key that signs dashboard session cookies (made on first use, mode 0600)."""
        return self.data_dir / "web_secret_key"

    @property
    def dashboard_host(self) -> str:
        """The router sends this host to the dashboard: PAAS_DASHBOARD_HOST, else `paas.<domain>`
        (`paas` is a reserved app name)."""
        return self.dashboard_hostname or f"paas.{self.domain}"

    @property
    def storage_dir(self) -> Path:
        """Host directories apps may mount (the storage plugin creates them here)."""
        return self.data_dir / "storage"

    @property
    def plugins_dir(self) -> Path:
        """Where plugins keep their own files (one folder each)."""
        return self.data_dir / "plugins"

    @property
    def stack_work_dir(self) -> Path:
        return self.data_dir / "stack"

    def ensure_dirs(self) -> None:
        """The data dir and its folders, with their modes (also on installs made before them):
        the data dir can be traversed but not listed (nginx workers reach their folder through
        it), nginx's folder is readable, everything else is root's only."""
        for d in (self.data_dir, self.repos_dir, self.nginx_dir, self.locks_dir):
            d.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        self.data_dir.chmod(0o711)
        self.nginx_dir.chmod(0o755)
        for d in (self.repos_dir, self.locks_dir):
            d.chmod(0o700)
        for f in (
            self.db_path,
            self.db_path.with_name(self.db_path.name + "-wal"),
            self.db_path.with_name(self.db_path.name + "-shm"),
            self.log_path,
            self.web_log_path,
            self.host_key_path,
            self.web_secret_path,
        ):
            if f.exists() and not f.is_symlink():
                f.chmod(0o600)
