"""ACME (RFC 8555) certificates with certbot's `acme` client and `josepy` (no hand-written JWS).

HTTP-01 is answered by our own nginx: the token files sit in a folder every ACME-enabled route
serves at `/.well-known/acme-challenge/` over plain HTTP. One certificate covers the app's
default name (when it is a public name) and its custom domains (wildcards need DNS-01: left
out). Renewal runs from the reconcile loop at 2/3 of the lifetime, in a thread of its own so the
loop stays quick; after a failure the next try waits longer (1 min doubling up to 6 h). A failed
order leaves the certificate that serves in place.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from paas.plugin_api import App, BuildLog, Context, PaasError, access

from . import pem, service
from . import settings as plugin_settings
from .service import S_ACME, S_ACME_ERROR, S_ACME_FAILS, S_ACME_NEXT, Subject

log = logging.getLogger("paas.plugins.certs")

USER_AGENT = "paas-certs"
TIMEOUT = 90  # seconds for one order, validation included
BACKOFF_FIRST, BACKOFF_MAX = 60.0, 6 * 3600.0
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
# Names no public CA can validate: never asked for.
_PRIVATE_SUFFIXES = ("localhost", "local", "internal", "invalid", "lan", "home.arpa", "localdomain")


def is_public(host: str) -> bool:
    if host.startswith("*.") or "." not in host:
        return False
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        pass
    return not any(host == s or host.endswith("." + s) for s in _PRIVATE_SUFFIXES)


def names_for(ctx: Context, s: Subject) -> list[str]:
    """The names one certificate covers: public, non-wildcard hostnames of the subject."""
    return [h for h in s.hostnames if is_public(h)]


def _challenge_dir(ctx: Context) -> Path:
    return service.acme_root(ctx) / ".well-known" / "acme-challenge"


def _account_key(ctx: Context) -> jose.JWKRSA:
    """One account key per installation (0600), made on first use."""
    path = service.certs_root(ctx) / "account.key"
    service._ensure_folder(path.parent)
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        service._write_private(
            path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    return jose.JWKRSA(key=serialization.load_pem_private_key(path.read_bytes(), password=None))


def _client(ctx: Context) -> client.ClientV2:
    """A client with an account (created, or found again by its key) at PAAS_ACME_DIRECTORY."""
    conf = plugin_settings.acme(ctx.settings)
    verify: bool | str = conf.ca_bundle or True
    net = client.ClientNetwork(_account_key(ctx), user_agent=USER_AGENT, verify_ssl=verify, timeout=30)
    directory = client.ClientV2.get_directory(conf.directory, net)
    acme = client.ClientV2(directory, net)
    email = conf.email
    reg = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
    try:
        net.account = acme.new_account(reg)
    except errors.ConflictError as exc:  # this key has an account already
        existing = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        net.account = acme.query_registration(existing)
    return acme


@contextmanager
def _order_lock(ctx: Context, s: Subject) -> Iterator[None]:
    """One order per subject at a time (the server's renewal thread and a CLI may race)."""
    ctx.settings.locks_dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.settings.locks_dir / f"certs-{s.folder.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _describe(exc: BaseException) -> str:
    """One line for the user; the ACME server's own words when it sent a problem document."""
    if isinstance(exc, messages.Error):
        return f"{exc.typ.rsplit(':', 1)[-1]}: {exc.detail}"
    if isinstance(exc, errors.ValidationError):
        probs = [a.body.challenges[0].error for a in exc.failed_authzrs if a.body.challenges]
        details = [p.detail for p in probs if p is not None]
        return "validation failed: " + ("; ".join(str(d) for d in details) or "see the ACME server")
    if isinstance(exc, errors.TimeoutError):
        return "the ACME server did not finish the order in time"
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    if "Connection refused" in text or "Max retries" in text or "NewConnectionError" in text:
        return f"cannot reach the ACME server at {_directory_host(text)}"
    return text[:300]


def _directory_host(text: str) -> str:
    match = re.search(r"host='([^']+)', port=(\d+)", text)
    return f"{match.group(1)}:{match.group(2)}" if match else "PAAS_ACME_DIRECTORY"


def obtain(ctx: Context, s: Subject) -> pem.Pair:
    """Order a certificate for the subject's names over HTTP-01 and return it (nothing installed)."""
    names = names_for(ctx, s)
    if not names:
        raise PaasError(
            f"{s.name} has no public name to certify ({', '.join(s.hostnames)}); add one with domains:add"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    folder = _challenge_dir(ctx)
    written: list[Path] = []
    try:
        acme = _client(ctx)
        order = acme.new_order(crypto_util.make_csr(key_pem, names))
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            chall = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if chall is None:
                name = authz.body.identifier.value
                raise PaasError(f"the ACME server offers no HTTP-01 challenge for {name}")
            response, validation = chall.response_and_validation(acme.net.key)
            token = chall.chall.encode("token")
            if not _TOKEN.fullmatch(token):
                raise PaasError("the ACME server sent a malformed challenge token")
            for d in (service.acme_root(ctx), folder.parent, folder):
                d.mkdir(parents=True, exist_ok=True)
                os.chmod(d, 0o755)
            path = folder / token
            path.write_text(validation)
            os.chmod(path, 0o644)
            written.append(path)
            acme.answer_challenge(chall, response)
        deadline = dt.datetime.now() + dt.timedelta(seconds=TIMEOUT)
        order = acme.poll_and_finalize(order, deadline=deadline)
    except PaasError:
        raise
    except Exception as exc:  # the library's and the network's errors, as one line
        raise PaasError(f"ACME order for {', '.join(names)} failed: {_describe(exc)}") from exc
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    return pem.check_pair(order.fullchain_pem.encode(), key_pem)


def issue(ctx: Context, s: Subject, reason: str, only_if_due: bool = False) -> pem.CertInfo | None:
    """Obtain and install; record the outcome (events, retry state). The old certificate keeps
    serving when this fails. `only_if_due`: None when another order made it not due meanwhile."""
    with _order_lock(ctx, s):
        if only_if_due and not due(ctx, s):
            return None
        renewing = service.has_cert(s) and service.get(ctx, s, service.S_SOURCE) == "letsencrypt"
        try:
            pair = obtain(ctx, s)
            service.install(ctx, s, pair, "letsencrypt")
        except Exception as exc:
            fails = int(service.get(ctx, s, S_ACME_FAILS) or 0) + 1
            service.put(ctx, s, S_ACME_FAILS, str(fails))
            wait = min(BACKOFF_FIRST * 2 ** (fails - 1), BACKOFF_MAX)
            service.put(ctx, s, S_ACME_NEXT, str(time.time() + wait))
            message = str(exc) if isinstance(exc, PaasError) else f"{exc.__class__.__name__}: {exc}"
            service.put(ctx, s, S_ACME_ERROR, message[:300])
            ctx.store.add_event(s.event_app, ctx.actor or "paas", "letsencrypt:failed", message[:300])
            raise
    for key in (S_ACME_FAILS, S_ACME_NEXT, S_ACME_ERROR):
        service.put(ctx, s, key, None)
    action = "letsencrypt:renewed" if renewing else "letsencrypt:issued"
    detail = f"{', '.join(pair.info.sans)} until {pair.info.not_after:%Y-%m-%d %H:%M:%S} ({reason})"
    ctx.store.add_event(s.event_app, ctx.actor or "paas", action, detail)
    return pair.info


def enable(ctx: Context, name: str) -> pem.CertInfo:
    """Turn ACME on and get the first certificate now; on failure it is off again and whatever
    served before still does."""
    s = service.subject(ctx, name, "letsencrypt:enable")
    if service.has_cert(s) and service.get(ctx, s, service.S_SOURCE) not in ("letsencrypt", "self-signed"):
        raise PaasError(f"{name} has a certificate added by hand; certs:remove it first")
    was = service.get(ctx, s, S_ACME)
    service.put(ctx, s, S_ACME, "on")
    try:
        service.sync(ctx, s)  # the challenge folder is served from now on
        info = issue(ctx, s, "letsencrypt:enable")
        assert info is not None
    except Exception:
        if was != "on":
            service.put(ctx, s, S_ACME, None)
            for key in (S_ACME_FAILS, S_ACME_NEXT, S_ACME_ERROR):
                service.put(ctx, s, key, None)
            try:
                service.sync(ctx, s)
            except PaasError:
                pass
        raise
    return info


def disable(ctx: Context, name: str) -> bool:
    """Stop renewing and take the ACME certificate down (plain HTTP again)."""
    s = service.subject(ctx, name, "letsencrypt:disable")
    if service.get(ctx, s, S_ACME) != "on":
        return False
    service.put(ctx, s, S_ACME, None)
    for key in (S_ACME_FAILS, S_ACME_NEXT, S_ACME_ERROR):
        service.put(ctx, s, key, None)
    if service.has_cert(s) and service.get(ctx, s, service.S_SOURCE) == "letsencrypt":
        service.remove_files(ctx, s)
    else:
        service.sync(ctx, s)
    ctx.store.add_event(s.event_app, ctx.actor, "letsencrypt:disable", "")
    return True


def due(ctx: Context, s: Subject, at: float | None = None) -> bool:
    """Whether the subject's certificate should be renewed now: past 2/3 of its lifetime (or
    none, or not for its current names) and not waiting out a backoff."""
    at = time.time() if at is None else at
    next_try = service.get(ctx, s, S_ACME_NEXT)
    if next_try and float(next_try) > at:
        return False
    info = service.current_info(s)
    if info is None:
        return True
    if any(not info.covers(h) for h in names_for(ctx, s)):
        return True
    renew_at = info.not_before + info.lifetime * 2 / 3
    return at >= renew_at.timestamp()


def enabled(ctx: Context) -> list[Subject]:
    """Every subject that gets its certificate from ACME (the server's renewal loop: all). The
    apps with it on are found in one read: every pass had read each app's flag and hostnames
    (7% of an idle server's CPU with 200 apps, py-spy)."""
    on = ctx.store.apps_with_setting(S_ACME, "on")
    return [  # an app among `on` has it on: only the dashboard's flag is left to read
        s
        for s in service.all_subjects(ctx, among=on)
        if s.app is not None or service.get(ctx, s, S_ACME) == "on"
    ]


def auto_renew(ctx: Context, name: str | None) -> list[tuple[str, str]]:
    """`letsencrypt:auto-renew [<app>]`: renew what is due now (one app's certificate with
    `manage` on it; every one, the dashboard's included, for admins); (name, outcome). A
    certificate that is not due, or waits out a failure's backoff, is left alone: a loop of this
    must not burn the ACME server's duplicate-certificate limit."""
    if name:
        subjects = [service.subject(ctx, name, "letsencrypt:auto-renew")]
    else:
        access.require_admin(ctx, "letsencrypt:auto-renew", "run letsencrypt:auto-renew without an app")
        subjects = enabled(ctx)
    out = []
    for s in subjects:
        if service.get(ctx, s, S_ACME) != "on":
            raise PaasError(f"{s.name} does not use letsencrypt (letsencrypt:enable {s.name})")
        if not due(ctx, s):
            out.append((s.name, _not_due(ctx, s)))
            continue
        try:
            info = issue(ctx, s, "letsencrypt:auto-renew", only_if_due=True)
            if info is None:
                out.append((s.name, _not_due(ctx, s)))
            else:
                out.append((s.name, f"renewed, valid until {info.not_after:%Y-%m-%d %H:%M:%S} UTC"))
        except PaasError as exc:
            out.append((s.name, f"failed: {exc}"))
    return out


def _not_due(ctx: Context, s: Subject) -> str:
    """Why a renewal was not tried: when the next try may be."""
    next_try = service.get(ctx, s, S_ACME_NEXT)
    if next_try and float(next_try) > time.time():
        when = dt.datetime.fromtimestamp(float(next_try), dt.UTC)
        return f"not due (after the last failure, the next try is at {when:%Y-%m-%d %H:%M:%S} UTC)"
    info = service.current_info(s)
    if info is None:
        return "not due"
    renew_at = info.not_before + info.lifetime * 2 / 3
    return f"not due (renews from {renew_at:%Y-%m-%d %H:%M:%S} UTC)"


_running: set[str] = set()
_running_lock = threading.Lock()


def reconcile(ctx: Context) -> None:
    """From `paas_reconcile`: start a renewal thread for each subject that is due (quick). The
    first certificate is `letsencrypt:enable`'s to get; this renews, or retries after a failure."""
    for s in enabled(ctx):
        if not service.has_cert(s) and service.get(ctx, s, S_ACME_NEXT) is None:
            continue
        if not due(ctx, s):
            continue
        with _running_lock:
            if s.folder.name in _running:
                continue
            _running.add(s.folder.name)
        threading.Thread(target=_renew, args=(ctx, s), daemon=True, name=f"acme-{s.name}").start()


def _renew(ctx: Context, s: Subject) -> None:
    try:
        if issue(ctx, s, "auto-renew", only_if_due=True) is not None:
            log.info("certificate of %s renewed", s.name)
    except Exception as exc:
        log.warning("certificate of %s not renewed: %s", s.name, exc)
    finally:
        with _running_lock:
            _running.discard(s.folder.name)


S_FOLLOWED = "letsencrypt.from-parent"  # a review app's HTTPS was decided from its parent's


def follow_parent(ctx: Context, app: App, log: BuildLog) -> None:
    """After a review app's deploys (`paas_post_deploy`), once: HTTPS as its parent has it. A
    parent's certificate that covers the review app's name serves it (service.parent_tls); a
    parent on ACME gets it its own certificate, ordered by the server's renewal loop (the push
    does not wait for the ACME server)."""
    if app.parent_id is None:
        return
    s = service.app_subject(ctx, app)
    if service.get(ctx, s, S_FOLLOWED) is not None or service.has_cert(s):
        return
    service.put(ctx, s, S_FOLLOWED, "1")
    parent = ctx.store.get_app_by_id(app.parent_id)
    if parent is None:
        return
    host = s.hostnames[0]
    if service.parent_tls(ctx, s) is not None:
        port = ctx.settings.https_port
        url = f"https://{host}" + ("" if port == 443 else f":{port}")
        log.step(f"HTTPS: {url} ({parent.name}'s certificate covers it)")
        return
    if service.get(ctx, service.app_subject(ctx, parent), S_ACME) != "on" or not is_public(host):
        return
    service.put(ctx, s, S_ACME, "on")
    service.put(ctx, s, S_ACME_NEXT, str(time.time()))  # due now: the renewal loop orders it
    service.sync(ctx, s)  # the route answers the ACME challenge from now on
    ctx.store.add_event(app, ctx.actor, "letsencrypt:enable", f"as its parent {parent.name}")
    log.step(f"HTTPS: a certificate for {host} is being ordered from ACME, as {parent.name} has one")
