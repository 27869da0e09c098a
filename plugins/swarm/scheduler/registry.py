"""The private registry every swarm node pulls app images from, run by the PaaS itself.

Why a registry and not copying images to each node (`docker save | docker load`): a node that
joins later, or a task rescheduled onto a node after another died, pulls what it needs by itself,
at the moment Swarm places the task; layers shared by every app image (the stack) travel once per
node; and Swarm's own pull-on-schedule logic stays in charge.

It is Debian's `docker-registry` package in an image built locally on the stack (no outside
registry), one container on the manager published on the advertise address only. The registry
itself cannot tell one client's rights from another's, so Debian's nginx in the same container
sits in front of it (the registry listens on the container's loopback): it speaks TLS with a CA
of this PaaS and asks every client for a certificate that CA signed and its CRL does not list
(mutual TLS), and lets only the manager's certificate push or delete. Each node's join lines
install the CA and a certificate of its own (registry_pki), pull only; `nodes:remove` revokes it,
so a removed host cannot even pull. The manager's own engine gets its own certificate (it pushes).
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.models.containers
import docker.models.services
import requests
from docker.types import Mount, RestartPolicy, ServiceMode

from paas.buildpacks import stack
from paas.buildpacks.service_images import ServiceImageRecipe, ensure_image, image_for
from paas.core import names
from paas.core.container import LOG_OPTIONS, log_config
from paas.plugin_api import PaasError, Settings

from ..settings import swarm_settings
from . import node_guard, registry_pki

CONFIG_PATH = "/etc/paas-registry.yml"
PROXY_CONFIG_PATH = "/etc/paas-registry-nginx.conf"
ENTRYPOINT_PATH = "/usr/local/bin/paas-registry"
CERTS_IN_CONTAINER = "/certs"
STORAGE_IN_CONTAINER = "/var/lib/docker-registry"
PROXY_PID = "/tmp/nginx.pid"

# docker-registry itself: plain HTTP on the container's loopback, reached only through the proxy.
CONFIG = f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {STORAGE_IN_CONTAINER}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{names.REGISTRY_BACKEND_PORT}
  relativeurls: true
"""

# The proxy in front of it: mutual TLS on the published port (a certificate the CA signed and the
# CRL does not list), then rights by subject: GET and HEAD for every certificate, every other
# method (a push: POST, PUT, PATCH; a delete) only for the manager's. Its workers stay root (the
# container has no capability to become another user, but SETGID for the master to set their
# groups); `SIGHUP` makes it read the CRL again (new workers; the old ones finish their requests).
DENIED = json.dumps(
    {"errors": [{"code": "DENIED", "message": "this node may pull only: the PaaS server pushes"}]}
)
PROXY_CONFIG = f"""daemon off;
user root;
worker_processes 2;
pid {PROXY_PID};
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  client_body_temp_path /tmp/nginx-body;
  proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fastcgi;
  uwsgi_temp_path /tmp/nginx-uwsgi;
  scgi_temp_path /tmp/nginx-scgi;
  log_format paas '$remote_addr "$ssl_client_s_dn" $request_method $uri $status';
  access_log /dev/stdout paas;
  server_tokens off;
  map $request_method $paas_writes {{ GET 0; HEAD 0; default 1; }}
  map $ssl_client_s_dn $paas_pusher {{ "{registry_pki.manager_dn()}" 1; default 0; }}
  map "$paas_writes$paas_pusher" $paas_refused {{ "10" 1; default 0; }}
  server {{
    listen {names.REGISTRY_INTERNAL_PORT} ssl;
    ssl_certificate {CERTS_IN_CONTAINER}/server.crt;
    ssl_certificate_key {CERTS_IN_CONTAINER}/server.key;
    ssl_client_certificate {CERTS_IN_CONTAINER}/ca.crt;
    ssl_crl {CERTS_IN_CONTAINER}/crl.pem;
    ssl_verify_client on;
    ssl_verify_depth 1;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size 0;
    chunked_transfer_encoding on;
    default_type application/json;
    location /v2/ {{
      if ($paas_refused) {{
        add_header Docker-Distribution-Api-Version registry/2.0 always;
        return 403 '{DENIED}';
      }}
      proxy_pass http://127.0.0.1:{names.REGISTRY_BACKEND_PORT};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 900;
    }}
    location / {{ return 404; }}
  }}
}}
"""

# Both processes; when either ends the container ends, and its restart policy starts both again.
ENTRYPOINT = f"""#!/bin/bash
set -u
/usr/bin/docker-registry serve {CONFIG_PATH} &
nginx -e stderr -c {PROXY_CONFIG_PATH} &
wait -n
exit 1
"""

RECIPE = ServiceImageRecipe(
    kind="registry",
    packages=("docker-registry", "nginx"),
    files=(
        (CONFIG_PATH, 0o644, CONFIG),
        (PROXY_CONFIG_PATH, 0o644, PROXY_CONFIG),
        (ENTRYPOINT_PATH, 0o755, ENTRYPOINT),
    ),
    # root in the container, but with no capability at all (it reads the 0600 certificates)
    after=f"mkdir -p {STORAGE_IN_CONTAINER} && chown root:root {STORAGE_IN_CONTAINER}"
    f" && chmod 700 {STORAGE_IN_CONTAINER}",
    entrypoint=(ENTRYPOINT_PATH,),
)

# Run on every node by the GC job (the stack's python3, docker's API on its socket): remove the
# registry's app tags no kept release uses. A tag still used by a container is refused by docker
# and stays; the manager's own `paas/app-*` tags are never touched (docker-local keeps them).
NODE_GC_SCRIPT = r"""
import http.client, json, os, socket, urllib.parse
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect("/var/run/docker.sock")
def call(method, path):
    c = C("docker"); c.request(method, path); r = c.getresponse(); body = r.read(); c.close()
    return r.status, body
prefix, keep = os.environ["PAAS_PREFIX"], set(json.loads(os.environ["PAAS_KEEP"]))
status, body = call("GET", "/images/json")
for image in json.loads(body):
    for tag in image.get("RepoTags") or []:
        if tag.startswith(prefix) and tag not in keep:
            status, _ = call("DELETE", "/images/" + urllib.parse.quote(tag, safe=""))
            print(tag, status)
"""


@dataclass(frozen=True)
class RegistryAccess:
    """Where the registry is (`addr:port`) and the CA certificate to trust it by."""

    endpoint: str
    ca_pem: bytes


def endpoint(settings: Settings, address: str) -> str:
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return f"{host}:{swarm_settings(settings).registry_port}"


def ensure_certificates(settings: Settings, address: str) -> Path:
    """The CA, the server certificate for `address`, the manager's and the CRL (registry_pki)."""
    with _lock(settings):
        return registry_pki.ensure(settings, address)


def access(settings: Settings, address: str) -> RegistryAccess:
    d = ensure_certificates(settings, address)
    return RegistryAccess(endpoint=endpoint(settings, address), ca_pem=(d / "ca.crt").read_bytes())


def node_certificate(settings: Settings, address: str, name: str) -> tuple[bytes, bytes]:
    """A new pull-only client certificate and key for the node `name` (its join lines carry them)."""
    ensure_certificates(settings, address)
    with _lock(settings):
        return registry_pki.issue_node(settings, name)


def revoke_node(settings: Settings, client: docker.DockerClient, address: str, name: str) -> bool:
    """Revoke the certificates of node `name` (the shared one of older joins too, when it has none
    of its own) and make the running proxy read the new CRL. Returns whether the shared one was."""
    ensure_certificates(settings, address)
    with _lock(settings):
        _serials, legacy = registry_pki.revoke_node(settings, name)
    reload_proxy(settings, client)
    return legacy


# The proxy's processes, as `pid title` lines (no ps in the image).
LIST_PROCESSES = (
    r"""for p in /proc/[0-9]*; do printf '%s %s\n' "${p#/proc/}" "$(tr '\0' ' ' < "$p/cmdline")"; done"""
)


def _accepting_workers(container: docker.models.containers.Container) -> set[str]:
    """The proxy's workers that accept connections (not those finishing old ones)."""
    result = container.exec_run(["sh", "-c", LIST_PROCESSES])
    out = set()
    for line in result.output.decode(errors="replace").splitlines():
        pid, _, title = line.partition(" ")
        if title.strip() == "nginx: worker process":
            out.add(pid)
    return out


def reload_proxy(settings: Settings, client: docker.DockerClient, timeout: float = 30) -> None:
    """The proxy reads its CRL again, and every worker that still accepts connections is a new
    one (nginx's reload is asynchronous). No running registry: it reads the CRL when it starts."""
    try:
        container = client.containers.get(names.registry_container(settings.instance_id))
    except docker.errors.NotFound:
        return
    if container.status != "running":
        return
    before = _accepting_workers(container)
    result = container.exec_run(["sh", "-c", f"kill -HUP $(cat {PROXY_PID})"])
    if result.exit_code != 0:
        detail = result.output.decode(errors="replace").strip()[:200]
        raise PaasError(f"cannot make the registry's proxy read its CRL again: {detail}")
    deadline = time.monotonic() + timeout
    while True:
        now = _accepting_workers(container)
        if now and not now & before:
            return
        if time.monotonic() > deadline:
            raise PaasError("the registry's proxy did not take its new CRL: see the registry container's log")
        time.sleep(0.1)


def trust_on_this_host(settings: Settings, address: str) -> None:
    """The manager's own engine pushes (and pulls): the CA and its own certificate in its certs.d."""
    d = ensure_certificates(settings, address)
    target = names.registry_certs_dir(endpoint(settings, address))
    for name, source in (
        ("ca.crt", "ca.crt"),
        ("client.cert", "manager.cert"),
        ("client.key", "manager.key"),
    ):
        data = (d / source).read_bytes()
        if not (target / name).exists() or (target / name).read_bytes() != data:
            registry_pki.write_private(target / name, data)


def untrust_on_this_host(settings: Settings, address: str) -> None:
    shutil.rmtree(names.registry_certs_dir(endpoint(settings, address)), ignore_errors=True)


def exists(settings: Settings, client: docker.DockerClient) -> bool:
    """Whether this server's registry was started (join lines printed, or an image published)."""
    try:
        client.containers.get(names.registry_container(settings.instance_id))
    except docker.errors.NotFound:
        return False
    return True


def _labels(settings: Settings, ep: str) -> dict[str, str]:
    return {
        names.LABEL_INSTANCE: settings.instance_id,
        names.LABEL_ROLE: names.ROLE_REGISTRY,
        names.LABEL_REGISTRY_ENDPOINT: ep,
    }


def ensure_registry(
    settings: Settings,
    client: docker.DockerClient,
    address: str,
    progress: Callable[[str], None] = lambda _l: None,
) -> RegistryAccess:
    """The registry container running on `address:PAAS_REGISTRY_PORT`, and this host trusting it."""
    a = access(settings, address)
    trust_on_this_host(settings, address)
    name = names.registry_container(settings.instance_id)
    with _lock(settings):
        try:
            existing = client.containers.get(name)
        except docker.errors.NotFound:
            existing = None
        image = ensure_image(settings, client, RECIPE, progress)
        if existing is not None:
            same = (
                existing.labels.get(names.LABEL_REGISTRY_ENDPOINT) == a.endpoint
                and existing.attrs["Config"]["Image"] == image
            )
            if same and existing.status == "running":
                return a
            if same:
                existing.start()
                _wait_ready(settings, a)
                return a
            existing.remove(force=True)  # another port or address, or a new image: the data volume stays
        volume = names.registry_volume(settings.instance_id)
        proxy_dir = names.registry_proxy_dir(settings)  # never the CA's key nor the manager's
        try:
            client.volumes.get(volume)
        except docker.errors.NotFound:
            client.volumes.create(
                volume,
                labels={names.LABEL_INSTANCE: settings.instance_id, names.LABEL_ROLE: names.ROLE_REGISTRY},
            )
        try:
            client.containers.run(
                image,
                name=name,
                detach=True,
                labels=_labels(settings, a.endpoint),
                ports={
                    f"{names.REGISTRY_INTERNAL_PORT}/tcp": (address, swarm_settings(settings).registry_port)
                },
                mounts=[
                    Mount(STORAGE_IN_CONTAINER, volume, type="volume"),
                    Mount(CERTS_IN_CONTAINER, str(proxy_dir), type="bind", read_only=True),
                ],
                restart_policy={"Name": "always"},
                init=True,  # reaps, and passes docker stop's signal on to the entrypoint
                log_config=log_config(),
                cap_drop=["ALL"],
                cap_add=["SETGID"],  # nginx's master sets its workers' groups (they stay root)
                security_opt=["no-new-privileges"],
                read_only=True,
                tmpfs={"/tmp": "size=64m"},
                mem_limit="256m",
                pids_limit=256,
            )
        except docker.errors.APIError as exc:
            raise PaasError(f"cannot start the registry on {a.endpoint}: {exc.explanation or exc}") from None
        _wait_ready(settings, a)
    return a


def _session(settings: Settings) -> requests.Session:
    d = names.registry_dir(settings)
    s = requests.Session()
    s.trust_env = False  # straight to the registry: never through an HTTP(S)_PROXY of the environment
    s.cert = (str(d / "manager.cert"), str(d / "manager.key"))  # its cleanup deletes
    s.verify = str(d / "ca.crt")
    return s


def _wait_ready(settings: Settings, a: RegistryAccess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with _session(settings) as s:
        while True:
            try:
                if s.get(f"https://{a.endpoint}/v2/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise PaasError(f"the registry on {a.endpoint} does not answer")
            time.sleep(0.2)


@contextmanager
def _lock(settings: Settings) -> Iterator[None]:
    """Pushes, registry GC and (re)starting the registry never overlap."""
    settings.locks_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.locks_dir / "registry.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def remote_ref(ep: str, local: str) -> str:
    """`paas/app-x:b3-...` as every node names it: `addr:port/paas/app-x:b3-...`."""
    return f"{ep}/{local}"


def _push(client: docker.DockerClient, ref: str) -> str:
    """Push `ref`; return the digest the registry stored it under (`sha256:...`)."""
    repository, _, tag = ref.rpartition(":")
    digest = ""
    try:
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                raise PaasError(f"pushing {ref} failed: {detail}")
            digest = (chunk.get("aux") or {}).get("Digest") or digest
    except docker.errors.DockerException as exc:
        raise PaasError(f"pushing {ref} failed: {exc}") from None
    if not digest.startswith("sha256:"):
        raise PaasError(f"pushing {ref}: the registry did not say which digest it stored")
    return digest


def has_workers(client: docker.DockerClient) -> bool:
    try:
        return len(client.api.nodes()) > 1
    except docker.errors.DockerException:
        return False


def publish(
    settings: Settings, client: docker.DockerClient, address: str, local_tag: str, always: bool = False
) -> str:
    """The reference every node can pull `local_tag` by (pushed to the private registry), pinned
    to the digest this push stored: a tag in the registry can be pushed over (by anyone holding
    a node's certificate), a digest names the content. On a swarm with no other node the local
    tag is returned unchanged (nothing would pull it), unless `always`."""
    if not always and not has_workers(client):
        return local_tag
    a = ensure_registry(settings, client, address)
    ref = remote_ref(a.endpoint, local_tag)
    repository, _, tag = ref.rpartition(":")
    try:
        client.images.get(local_tag).tag(repository, tag)
    except docker.errors.ImageNotFound:
        raise PaasError(f"no image {local_tag} to publish") from None
    with _lock(settings):
        digest = _push(client, ref)
    return f"{ref}@{digest}"


def publish_stack(settings: Settings, client: docker.DockerClient, address: str) -> str:
    """The default stack in the registry: what the node GC job runs on (its layer is shared with
    every app image, so a node pulls almost nothing)."""
    return publish(settings, client, address, stack.DEFAULT_STACK.image, always=True)


def _registry_tags(settings: Settings, a: RegistryAccess) -> Iterator[tuple[str, str]]:
    with _session(settings) as s:
        repos = s.get(f"https://{a.endpoint}/v2/_catalog", timeout=10).json().get("repositories") or []
        for repo in repos:
            tags = s.get(f"https://{a.endpoint}/v2/{repo}/tags/list", timeout=10).json().get("tags") or []
            for tag in tags:
                yield repo, tag


def _delete_from_registry(settings: Settings, a: RegistryAccess, repo: str, tag: str) -> None:
    accept = ", ".join(
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
    )
    with _session(settings) as s:
        head = s.head(
            f"https://{a.endpoint}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}, timeout=10
        )
        digest = head.headers.get("Docker-Content-Digest")
        if head.status_code == 200 and digest:
            s.delete(f"https://{a.endpoint}/v2/{repo}/manifests/{digest}", timeout=10)


def wanted_refs(settings: Settings, client: docker.DockerClient, a: RegistryAccess) -> set[str]:
    """What nodes keep: the registry names of the app images the manager still has (its own GC
    decides which releases stay for rollback), the stack, and the node guard's image (the join
    lines pull it by its tag)."""
    keep = {remote_ref(a.endpoint, stack.DEFAULT_STACK.image)}
    keep.add(remote_ref(a.endpoint, image_for(settings, client, node_guard.RECIPE)))
    for image in client.images.list(filters={"reference": "paas/app-*"}):
        for tag in image.tags:
            if tag.startswith("paas/app-"):
                keep.add(remote_ref(a.endpoint, tag))
    return keep


def gc(settings: Settings, client: docker.DockerClient, address: str, wait: float = 0) -> list[str]:
    """Remove old app images everywhere: from the registry (then its blobs), and on every node
    (a global job, left to run unless `wait` seconds are given; finished jobs are swept the next
    time). Returns the registry references removed. Swarm skips drained and down nodes; they
    are cleaned the next time."""
    name = names.registry_container(settings.instance_id)
    try:
        client.containers.get(name)
    except docker.errors.NotFound:
        return []  # nothing was ever published
    a = ensure_registry(settings, client, address)
    keep = wanted_refs(settings, client, a)
    removed = []
    with _lock(settings):
        try:
            for repo, tag in list(_registry_tags(settings, a)):
                ref = f"{a.endpoint}/{repo}:{tag}"
                if ref not in keep:
                    _delete_from_registry(settings, a, repo, tag)
                    removed.append(ref)
        except (requests.RequestException, ValueError) as exc:  # ValueError: a body that is not JSON
            raise PaasError(f"the registry on {a.endpoint} did not answer its cleanup: {exc}") from None
        if removed:
            client.containers.get(name).exec_run(
                ["/usr/bin/docker-registry", "garbage-collect", "--delete-untagged", CONFIG_PATH]
            )
    _sweep_jobs(settings, client)
    service = _node_gc(settings, client, a, keep)
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline and not _finished(service):
        time.sleep(0.5)
    if wait:
        _remove_service(service)
    return removed


FINISHED = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned"})
STALE_JOB_SECONDS = 600.0  # a job whose node went down never finishes: swept after this


def _finished(service: docker.models.services.Service) -> bool:
    try:
        tasks = service.tasks()
    except docker.errors.DockerException:
        return True
    return bool(tasks) and all(t["Status"]["State"] in FINISHED for t in tasks)


def _remove_service(service: docker.models.services.Service) -> None:
    try:
        service.remove()
    except docker.errors.APIError:
        pass


def _jobs(settings: Settings, client: docker.DockerClient) -> list[docker.models.services.Service]:
    label = [f"{names.LABEL_INSTANCE}={settings.instance_id}", f"{names.LABEL_ROLE}={names.ROLE_NODE_GC}"]
    try:
        return client.services.list(filters={"label": label})
    except docker.errors.DockerException:
        return []


def _sweep_jobs(settings: Settings, client: docker.DockerClient) -> None:
    """Earlier GC jobs that are done (or hopeless) go."""
    now = time.time()
    for service in _jobs(settings, client):
        created = (service.attrs.get("CreatedAt") or "")[:19]
        try:
            age = now - datetime.datetime.fromisoformat(created).replace(tzinfo=datetime.UTC).timestamp()
        except ValueError:
            age = STALE_JOB_SECONDS
        if _finished(service) or age >= STALE_JOB_SECONDS:
            _remove_service(service)


def _node_gc(
    settings: Settings, client: docker.DockerClient, a: RegistryAccess, keep: set[str]
) -> docker.models.services.Service:
    """One global job: a task on every available node removes the registry tags not kept."""
    image = publish_stack(settings, client, address=a.endpoint.rsplit(":", 1)[0].strip("[]"))
    service_name = names.node_gc_service(settings.instance_id, uuid.uuid4().hex[:8])
    try:
        return client.services.create(
            image,
            command=["python3", "-c", NODE_GC_SCRIPT],
            name=service_name,
            env=[f"PAAS_PREFIX={a.endpoint}/paas/app-", f"PAAS_KEEP={json.dumps(sorted(keep))}"],
            mode=ServiceMode("global-job"),
            mounts=[Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind")],
            labels={names.LABEL_INSTANCE: settings.instance_id, names.LABEL_ROLE: names.ROLE_NODE_GC},
            restart_policy=RestartPolicy(condition="none"),
            log_driver="json-file",
            log_driver_options=dict(LOG_OPTIONS),
        )
    except docker.errors.APIError as exc:
        raise PaasError(f"cannot start the image cleanup on the nodes: {exc.explanation or exc}") from None


def remove_registry(settings: Settings, client: docker.DockerClient, address: str) -> None:
    """The registry container, its data, the GC jobs and this host's trust in it (tests, uninstall)."""
    for service in _jobs(settings, client):
        _remove_service(service)
    for c in client.containers.list(
        all=True,
        ignore_removed=True,
        filters={
            "label": [
                f"{names.LABEL_INSTANCE}={settings.instance_id}",
                f"{names.LABEL_ROLE}={names.ROLE_REGISTRY}",
            ]
        },
    ):
        c.remove(force=True)
    try:
        client.volumes.get(names.registry_volume(settings.instance_id)).remove(force=True)
    except docker.errors.NotFound:
        pass
    untrust_on_this_host(settings, address)
