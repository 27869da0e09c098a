"""Every name we give things on dockerd and on disk, in one place (as Piku names its paths).

Labels let the state on dockerd be rebuilt into, and compared with, the store; the instance
label keeps two PaaS instances on one engine apart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from paas.settings import Settings

LABEL_APP = "paas.app"
LABEL_RELEASE = "paas.release"
LABEL_TYPE = "paas.process_type"
LABEL_INDEX = "paas.index"
LABEL_ROLE = "paas.role"
LABEL_INSTANCE = "paas.instance"
LABEL_PORT = "paas.port"
LABEL_BUILD = "paas.build"
LABEL_STACK = "paas.stack"

# paas.role values: what a container or image is for
ROLE_PROCESS = "process"  # a Procfile process of a release (web.1, worker.2, ...)
ROLE_RUN = "run"  # `run` one-offs
ROLE_ONEOFF = "oneoff"  # release phase, postdeploy, cron
ROLE_CRON = "cron"  # cron plugin runs: kept after they exit (until the next run) for `logs -p cron`
ROLE_BUILD = "build"
ROLE_APP_IMAGE = "app-image"
ROLE_DEPS = "deps"  # a dependency-layer image (see buildpacks/layers.py)
ROLE_NETWORK = "network"

APP_PORT = 5000  # $PORT unless a Dockerfile EXPOSEs another
APP_UID = 1000  # the unprivileged `app` user of every stack and app image


def image_repository(app: str) -> str:
    return f"paas/app-{app}"


def cache_volume(instance: str, app: str) -> str:
    return f"paas-cache-{instance}-{app}"


def repo_path(settings: Settings, app: str) -> Path:
    return settings.repos_dir / f"{app}.git"


# In an app's repository: every push holds it shared; a repack or `repo:gc` holds it exclusive.
REPO_PUSH_LOCK = "paas-push.lock"


def app_labels(instance: str, app: str, role: str, **more: str) -> dict[str, str]:
    """The labels every container of an app carries, plus role-specific ones."""
    return {LABEL_INSTANCE: instance, LABEL_APP: app, LABEL_ROLE: role, **more}


def label_filter(instance: str, app: str | None = None, role: str | None = None) -> list[str]:
    """A docker `label` filter for our containers (of one app, of one role)."""
    out = [f"{LABEL_INSTANCE}={instance}"]
    if app is not None:
        out.append(f"{LABEL_APP}={app}")
    if role is not None:
        out.append(f"{LABEL_ROLE}={role}")
    return out


def app_network(instance: str, app: str) -> str:
    """The app's own bridge network: its processes and linked services, nobody else."""
    return f"paas-{instance}-{app}"


SWARM_NAME_MAX = 63  # swarm services and overlay networks (a DNS label); docker refuses longer


def _fit(prefix: str, app: str, suffix: str) -> str:
    """`prefix + app + suffix` when it fits a swarm name; else the app part cut and followed by
    a hash of the whole name, so that no two apps (or process types) share one."""
    name = prefix + app + suffix
    if len(name) <= SWARM_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    room = SWARM_NAME_MAX - len(prefix) - len(suffix) - len(digest) - 1
    if room < 1:  # the suffix alone is too long (a long process type): prefix and hash only
        return f"{prefix}{digest}{suffix[-(SWARM_NAME_MAX - len(prefix) - len(digest)) :]}"[:SWARM_NAME_MAX]
    return f"{prefix}{app[:room]}-{digest}{suffix}"


def app_overlay(instance: str, app: str) -> str:
    """The network of an app the swarm runs: an attachable overlay, so its services on every node,
    its one-offs and its linked backing services on the manager all reach each other."""
    return _fit(f"paas-{instance}-", app, "-overlay")


SCHEDULER_LOCAL = "docker-local"
SCHEDULER_SWARM = "swarm"
SCHEDULERS = (SCHEDULER_LOCAL, SCHEDULER_SWARM)
LABEL_SWARM_SERVICE = "com.docker.swarm.service.id"  # docker's own, on every task's container
LABEL_SWARM_TASK = "com.docker.swarm.task.name"  # `<service>.<slot>.<task id>`


def swarm_service(instance: str, app: str, process_type: str, release: int, token: str) -> str:
    """One swarm service per process type and deploy (the deploy that starts it owns it; the
    token keeps a restart of the same release apart from what runs). Docker allows 63 characters."""
    return _fit(f"paas-{instance}-", app, f"-{process_type}-v{release}-{token}")


def build_network(instance: str, app: str) -> str:
    """Builds of the app run apart from every app's processes (build code is untrusted too)."""
    return f"paas-{instance}-{app}-build"


LABEL_OWNER = "paas.owner"  # `run` containers: the process that attached to it (pid:start time)
DETACHED = "detached"  # the owner of a `run:detached` container: nobody


def process_token(pid: int) -> str | None:
    """`pid:start time` of a live process (a pid alone can be reused), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid}:{stat.rpartition(')')[2].split()[19]}"


# Backing services (plugins/datastores: postgres, redis; the rules in plugins/datastores/service.py)
LABEL_SERVICE = "paas.service"  # the service's name, on its container and volume
LABEL_SERVICE_KIND = "paas.service_kind"  # postgres, redis
ROLE_SERVICE = "service"
SERVICE_IMAGE_REPOSITORY = "paas/service"


def service_image(kind: str, digest: str) -> str:
    """A service image, named by the hash of its recipe (like the stack)."""
    return f"{SERVICE_IMAGE_REPOSITORY}:{kind}-{digest}"


def service_container(instance: str, kind: str, name: str) -> str:
    return f"paas-{instance}-{kind}-{name}"


def service_volume(instance: str, kind: str, name: str) -> str:
    return f"paas-{instance}-{kind}-{name}-data"


def service_host(kind: str, name: str) -> str:
    """The name linked apps reach the service by (a network alias on each app's network)."""
    return f"paas-{kind}-{name}"


def service_labels(instance: str, kind: str, name: str) -> dict[str, str]:
    return {LABEL_INSTANCE: instance, LABEL_ROLE: ROLE_SERVICE, LABEL_SERVICE_KIND: kind, LABEL_SERVICE: name}


def service_filter(instance: str, kind: str | None = None, name: str | None = None) -> list[str]:
    out = [f"{LABEL_INSTANCE}={instance}", f"{LABEL_ROLE}={ROLE_SERVICE}"]
    if kind is not None:
        out.append(f"{LABEL_SERVICE_KIND}={kind}")
    if name is not None:
        out.append(f"{LABEL_SERVICE}={name}")
    return out


def services_dir(settings: Settings, kind: str) -> Path:
    """Each service's record (0600, with its password) and backups live under here."""
    return settings.data_dir / "services" / kind


def service_dir(settings: Settings, kind: str, name: str) -> Path:
    return services_dir(settings, kind) / name


def service_backups_dir(settings: Settings, kind: str, name: str) -> Path:
    return service_dir(settings, kind, name) / "backups"


# More hosts (plugins/swarm/scheduler: swarm_cluster.py, registry.py): the registry the nodes pull from
ROLE_REGISTRY = "registry"
ROLE_NODE_GC = "node-gc"  # the global job that removes old app images on every node
ROLE_NODE_GUARD = "node-guard"  # the global service that keeps each worker's swarm ports to the nodes
LABEL_REGISTRY_ENDPOINT = "paas.registry.endpoint"  # addr:port the registry container publishes
REGISTRY_INTERNAL_PORT = 5000  # the proxy (nginx, mutual TLS, per-method rights) in the registry's container
REGISTRY_BACKEND_PORT = 5001  # docker-registry itself, on the container's loopback behind the proxy
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")  # dockerd reads a registry's CA and client cert here


def registry_container(instance: str) -> str:
    return f"paas-{instance}-registry"


def registry_volume(instance: str) -> str:
    return f"paas-{instance}-registry-data"


def registry_dir(settings: Settings) -> Path:
    """The registry's CA (its key), the manager's client certificate and the record of the
    nodes' certificates (0700, files 0600): never mounted anywhere."""
    return settings.data_dir / "registry"


def registry_proxy_dir(settings: Settings) -> Path:
    """What the registry's proxy reads (mounted read-only into its container): the CA
    certificate, the server's certificate and key, the CRL."""
    return registry_dir(settings) / "proxy"


def registry_certs_dir(endpoint: str) -> Path:
    """Where a docker engine looks for the CA and client certificate of registry `addr:port`."""
    return DOCKER_CERTS_DIR / endpoint


def node_gc_service(instance: str, stamp: str) -> str:
    return f"paas-{instance}-node-gc-{stamp}"


def node_guard_service(instance: str) -> str:
    return f"paas-{instance}-node-guard"


# The Procfile entry that runs once per release, before its processes start (Heroku's release
# phase): not a process type, never scaled, never given limits of its own.
RELEASE_PROCESS = "release"


def reconcile_record(settings: Settings) -> Path:
    """The last reconcile pass of the running server: when, how long, over how many apps
    (`doctor` reads it; so does bench/scale.py)."""
    return settings.data_dir / "reconcile.json"


def jobs_dir(settings: Settings, app_id: int) -> Path:
    """Background deploys started from the web (see services/jobs.py): state and output files,
    by the app's id (a rename keeps them; a new app of an old name starts with none)."""
    return settings.data_dir / "jobs" / str(int(app_id))


# Backups (plugins/backup): restic's repository cache and the scratch folders of a backup being
# made or restored live beside the data, never in what a backup reads.
BACKUP_TAG = "paas"  # every snapshot of a paas backup carries it
BACKUP_SCHEDULED_TAG = "scheduled"  # and the scheduled ones this (backup:schedule --keep prunes them)
BACKUP_STAGING = "backup-staging"  # in the data dir: the store's copy, the dumps, the manifest
BACKUP_DUMPS = "dumps"  # in the staging folder: one folder per plugin


def backup_staging_dir(settings: Settings) -> Path:
    return settings.data_dir / BACKUP_STAGING


def backup_cache_dir(settings: Settings) -> Path:
    return settings.data_dir / "backup-cache"


def backup_scratch_parent(settings: Settings) -> Path:
    """Where a restore or a verify lays a backup out (on the data dir's disk, so files move in)."""
    return settings.data_dir / "backup-scratch"


def backup_state_dir(settings: Settings) -> Path:
    """The backup plugin's own state (its schedule, the last restore's report): in every backup."""
    return settings.plugins_dir / "backup"


# nginx:set access-log-path / error-log-path: a file under this folder, or one of the streams
NGINX_LOG_DIR = Path("/var/log/nginx")
NGINX_LOG_STREAMS = ("/dev/stdout", "/dev/stderr", "/dev/null")
