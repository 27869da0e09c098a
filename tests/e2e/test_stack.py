"""The stack images as a fresh machine builds them: what the build user (uid 1000) can reach.

A stack built by a `paas` process under umask 077 had /etc/paas, /opt/paas and /env as 0700: the
build could not read the CA variables nor the runtime pins, and no dependency installed behind a
TLS-intercepting proxy. The image's tag did not change, so machines that had built it before
never saw it. `make test` removes every image of ours first (tests/fresh_engine.py), so the stack
checked here is the one this run built.
"""

from __future__ import annotations

import docker

from paas.buildpacks import stack
from paas.core.names import APP_UID

# What builds and app processes read (the build env and CA bundle's folder, pip's template, the
# runtimes and the system's certificates) and write (/app, /cache).
READ = ("/etc/paas", "/opt", "/env", "/usr/bin", "/usr/lib", "/usr/local", "/usr/include", "/etc/ssl/certs")
WRITE = ("/app", "/cache")

CHECK = f"""
bad=$(find {" ".join(READ + WRITE)} ! -type l \\( ! -readable -o -type d ! -executable \\) -print)
[ -z "$bad" ] || {{ echo "unreadable for uid $(id -u): $bad"; exit 1; }}
for d in {" ".join(WRITE)}; do [ -w "$d" ] || {{ echo "not writable: $d"; exit 1; }}; done
ls -ld / /etc/paas /opt/paas /env
"""


def assert_app_user_reaches_what_it_needs(image: str) -> None:
    """Run the check in `image` as the app user; fail with what it could not reach."""
    client = docker.from_env()
    try:
        out = client.containers.run(
            image, ["sh", "-c", CHECK], user=str(APP_UID), remove=True, network_disabled=True
        )
    except docker.errors.ContainerError as exc:
        raise AssertionError(f"{image}: {exc.stderr or b''!r} {exc}") from None
    modes = out.decode().split()
    assert modes.count("drwxr-xr-x") == 4, out.decode()  # /, /etc/paas, /opt/paas, /env: 0755


def test_default_stack_is_readable_by_the_build_user() -> None:
    client = docker.from_env()
    assert stack.stack_exists(client, stack.DEFAULT_STACK), "make test's bootstrap builds it"
    assert_app_user_reaches_what_it_needs(stack.DEFAULT_STACK.image)
    # `FROM paas/stack:latest` in a Dockerfile, and the service images, get the same image.
    assert client.images.get(stack.LATEST_ALIAS).id == client.images.get(stack.DEFAULT_STACK.image).id
