"""Deploys without a git push: `git:from-archive` (a tar on stdin or from a URL) and
`git:from-image` (an image), as Dokku has them.

Either becomes a commit on the app's deploy branch (the archive's files; a `Dockerfile` saying
`FROM <image>`), built and deployed exactly as a push of that commit would be (push.deploy_push),
so the app's repository records what was deployed and `ps:rebuild` builds it again. The branch
moves only once the deploy succeeded. Archives are checked by paas.core.archive and never
extracted on the host; images by services/images.py.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from typing import IO
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from paas.core import archive, names
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.services import access, git, images, properties, push
from paas.services.locks import app_lock
from paas.services.release_phase import PostdeployFailed
from paas.store import App, Release

FETCH_TIMEOUT = 60.0
MAX_REDIRECTS = 3
FILE_MODE, EXEC_MODE, LINK_MODE, DIR_MODE = 0o100644, 0o100755, 0o120000, 0o040000


def limits(ctx: Context) -> archive.Limits:
    """The server's caps (git archive-max-size/-files), and a push's for one file and the total."""
    return archive.Limits(
        max_bytes=int(properties.value(ctx, None, "git", "archive-max-size")),
        max_files=int(properties.value(ctx, None, "git", "archive-max-files")),
        max_file_bytes=ctx.settings.max_object_bytes,
        max_total_bytes=ctx.settings.max_push_inflated_bytes,
    )


def _public_address(host: str, port: int) -> str:
    """The address `host` resolves to, if it is a public one: a URL must not make the server
    fetch from itself, its containers or its private networks."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise PaasError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not ip.is_global or ip.is_multicast:
            raise PaasError(f"{host} resolves to {ip}, which is not a public address: not fetched")
    return str(infos[0][4][0])


def fetch(ctx: Context, url: str, max_bytes: int, redirects: int = MAX_REDIRECTS) -> IO[bytes]:
    """The archive at an http(s) URL, spooled under the size cap. The connection goes to the
    address that was checked (no second lookup), and each redirect is checked again."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise PaasError("give an http:// or https:// URL of a tar archive (no user:password@)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PaasError("the URL has an invalid port") from None
    address = _public_address(parts.hostname, port)
    if parts.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address,
            port,
            server_hostname=parts.hostname,
            assert_hostname=parts.hostname,
            ca_certs=ctx.settings.build_ca_bundle or certifi.where(),
            timeout=FETCH_TIMEOUT,
            retries=False,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=FETCH_TIMEOUT, retries=False)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen(
            "GET", target, headers={"Host": parts.netloc}, redirect=False, preload_content=False
        )
    except urllib3.exceptions.HTTPError as exc:
        raise PaasError(f"cannot fetch {parts.hostname}: {exc.__class__.__name__}") from None
    try:
        if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
            if redirects == 0:
                raise PaasError(f"{url}: too many redirects")
            return fetch(ctx, urljoin(url, response.headers["Location"]), max_bytes, redirects - 1)
        if response.status != 200:
            raise PaasError(f"{parts.hostname} answered HTTP {response.status} for the archive")
        return archive.spool(response, max_bytes)  # type: ignore[arg-type]
    finally:
        response.release_conn()


def _tree(repo: Repo, files: Iterable[tuple[str, int, bytes]]) -> bytes:
    """Write the files as git objects; the id of the root tree."""
    root: dict = {}
    for path, mode, data in files:
        blob = Blob.from_string(data)
        repo.object_store.add_object(blob)
        *folders, name = path.split("/")
        node = root
        for folder in folders:
            child = node.setdefault(folder, {})
            if not isinstance(child, dict):
                raise archive.ArchiveRefused(f"Archive has a file and a folder at the same path: {folder}")
            node = child
        if isinstance(node.get(name), dict):
            raise archive.ArchiveRefused(f"Archive has a file and a folder at the same path: {path}")
        node[name] = (mode, blob.id)

    def write(node: dict) -> bytes:
        tree = Tree()
        for name, item in node.items():
            if isinstance(item, dict):
                tree.add(name.encode(), DIR_MODE, write(item))
            else:
                tree.add(name.encode(), item[0], item[1])
        repo.object_store.add_object(tree)
        return tree.id

    return write(root)


def _open_repo(ctx: Context, app: App) -> Repo:
    path = names.repo_path(ctx.settings, app.name)
    if not path.exists():
        return Repo.init_bare(str(path), mkdir=True)
    return Repo(str(path))


def _branch(ctx: Context, app: App, repo: Repo) -> bytes:
    """The deploy branch the commit goes on: one that exists, else the computed one."""
    for branch in git.deploy_branches(ctx, app.name):
        if f"refs/heads/{branch}".encode() in repo.refs:
            return f"refs/heads/{branch}".encode()
    return f"refs/heads/{properties.value(ctx, app, 'git', 'deploy-branch')}".encode()


def _commit_and_deploy(
    ctx: Context,
    app: App,
    files: Iterable[tuple[str, int, bytes]],
    message: str,
    log: BuildLog,
    event: tuple[str, str],
    source_image: str | None = None,
) -> Release:
    """Commit `files` on the deploy branch, deploy the commit, then move the branch; the
    `event` (action, detail before the version) once a release is live."""
    action, detail = event
    repo = _open_repo(ctx, app)
    try:
        with app_lock(ctx, app.name):
            ref = _branch(ctx, app, repo)
            parent = repo.refs[ref] if ref in repo.refs else None
            commit = Commit()
            commit.tree = _tree(repo, files)
            commit.parents = [parent] if parent else []
            who = f"{ctx.actor or 'paas'} <{ctx.actor or 'paas'}@paas>".encode()
            commit.author = commit.committer = who
            commit.author_time = commit.commit_time = int(time.time())
            commit.author_timezone = commit.commit_timezone = 0
            commit.message = message.encode() + b"\n"
            repo.object_store.add_object(commit)
            sha = commit.id.decode()
            log.step(f"Deploying commit {sha[:7]} ({message})")
            try:
                release = push.deploy_push(ctx, app.name, repo, sha, log, source_image)
            except PostdeployFailed as exc:  # live: the branch follows it, the command still fails
                _move_branch(repo, ref, commit.id)
                if exc.release is not None:
                    ctx.store.add_event(app.name, ctx.actor, action, f"{detail}v{exc.release.version}")
                raise
            _move_branch(repo, ref, commit.id)
            ctx.store.add_event(app.name, ctx.actor, action, f"{detail}v{release.version}")
            return release
    finally:
        repo.close()


def _move_branch(repo: Repo, ref: bytes, sha: bytes) -> None:
    repo.refs[ref] = sha
    if repo.refs.follow(b"HEAD")[1] is None:  # a new repository: HEAD names this branch
        repo.refs.set_symbolic_ref(b"HEAD", ref)


def from_archive(
    ctx: Context, app_name: str, stream: IO[bytes] | None, url: str | None, kind: str, log: BuildLog
) -> Release:
    """`git:from-archive <app> <url>` or `git:from-archive <app> --` (the tar on stdin)."""
    app = access.authorize(ctx, app_name, "git:from-archive")
    caps = limits(ctx)
    if url is not None:
        log.step(f"Fetching {url}")
        spooled = fetch(ctx, url, caps.max_bytes)
    elif stream is not None:
        spooled = archive.spool(stream, caps.max_bytes)
    else:
        raise PaasError("give a URL, or -- and the archive on stdin")
    with spooled, archive.open_tar(spooled, kind) as tar:
        try:
            entries = archive.strip_common_folder(archive.check(tar, caps))
            if not entries:
                raise archive.ArchiveRefused("the archive holds no files")
        except archive.ArchiveRefused as exc:
            ctx.store.add_event(app.name, ctx.actor, "git:from-archive:refused", str(exc)[:200])
            raise
        files = (
            (
                e.path,
                LINK_MODE if e.link_target is not None else (EXEC_MODE if e.executable else FILE_MODE),
                data,
            )
            for e, data in archive.contents(tar, entries)
        )
        message = f"Deploy of an archive ({len(entries)} files)"
        return _commit_and_deploy(ctx, app, files, message, log, ("git:from-archive", ""))


def from_image(ctx: Context, app_name: str, image: str, log: BuildLog) -> Release:
    """`git:from-image <app> <image>`: a Dockerfile `FROM <image>`, built by the Dockerfile
    builder (its USER, EXPOSE and CMD rules apply) and deployed."""
    app = access.authorize(ctx, app_name, "git:from-image")
    images.vet(ctx, image)
    images.ensure_local(ctx, image, log)
    dockerfile = f"FROM {image}\n".encode()
    files = [("Dockerfile", FILE_MODE, dockerfile)]
    event = ("git:from-image", f"{image} ")
    return _commit_and_deploy(ctx, app, files, f"Deploy of image {image}", log, event, source_image=image)
