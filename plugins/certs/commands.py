"""certs:* and letsencrypt:* (Dokku's names): parse and render; the rules are in service.py and
letsencrypt.py. `paas` names the dashboard."""

from __future__ import annotations

import datetime as dt
import sys

import click

from paas.plugin_api import FORMAT_OPTION, CommandEnv, PaasError, define

from . import letsencrypt, pem, service
from . import settings as plugin_settings

ON_OFF = click.Choice(["on", "off"])


def _read_pair(env: CommandEnv, crt: str | None, key: str | None) -> tuple[bytes, bytes]:
    """Files on the host; over SSH only a tar of server.crt + server.key on stdin (a path would
    name a file of the server, not of the user)."""
    if crt is not None or key is not None:
        if not env.on_host:
            raise PaasError(
                "over SSH, send a tar of server.crt and server.key: ssh paas certs:add APP < cert-key.tar"
            )
        if crt is None or key is None:
            raise PaasError("give both the certificate and the key file")
        data = []
        for path in (crt, key):
            try:
                with open(path, "rb") as fh:
                    data.append(fh.read(pem.MAX_PEM + 1))
            except OSError as exc:
                raise PaasError(f"cannot read {path}: {exc.strerror}") from None
        return data[0], data[1]
    stream = env.stdin if env.stdin is not None else sys.stdin.buffer
    return pem.from_tar(stream.read(pem.MAX_TAR + 1))


def _when(t: dt.datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} UTC"


def _summary(env: CommandEnv, s: service.Subject, info: pem.CertInfo) -> None:
    env.echo(f"       {', '.join(info.sans)}, valid until {_when(info.not_after)}")
    missing = [h for h in s.hostnames if not info.covers(h)]
    if missing:
        env.echo(f"       not covered (stay on plain HTTP): {', '.join(missing)}")


def _install(
    env: CommandEnv, app: str, crt: str | None, key: str | None, *, replace: bool, done: str
) -> None:
    """certs:add and certs:update read the same input and differ only in whether one may be there."""
    cert_data, key_data = _read_pair(env, crt, key)
    s, info = service.add(env.ctx, app, cert_data, key_data, replace=replace)
    env.echo(f"-----> {done}")
    _summary(env, s, info)


@define(
    "certs:add",
    "Add a certificate and key (host: CRT KEY files; SSH: a tar of server.crt+server.key).",
    permission="manage",
    dashboard=True,
)
@click.argument("app")
@click.argument("crt", required=False)
@click.argument("key", required=False)
def certs_add(env: CommandEnv, app: str, crt: str | None, key: str | None) -> None:
    _install(env, app, crt, key, replace=False, done=f"Certificate added to {app}")


@define(
    "certs:update",
    "Replace the app's certificate and key (same input as certs:add).",
    permission="manage",
    dashboard=True,
)
@click.argument("app")
@click.argument("crt", required=False)
@click.argument("key", required=False)
def certs_update(env: CommandEnv, app: str, crt: str | None, key: str | None) -> None:
    _install(env, app, crt, key, replace=True, done=f"Certificate of {app} updated")


@define(
    "certs:remove", "Remove the app's certificate (plain HTTP again).", permission="manage", dashboard=True
)
@click.argument("app")
def certs_remove(env: CommandEnv, app: str) -> None:
    service.remove(env.ctx, app)
    env.echo(f"-----> Certificate of {app} removed")


@define(
    "certs:generate",
    "Give the app a self-signed certificate for its names (for trying HTTPS).",
    permission="manage",
    dashboard=True,
)
@click.argument("app")
def certs_generate(env: CommandEnv, app: str) -> None:
    s, info = service.generate(env.ctx, app)
    env.echo(f"-----> Self-signed certificate made for {app} (browsers will warn)")
    _summary(env, s, info)


@define(
    "certs:redirect",
    "Redirect plain HTTP to HTTPS (on, the default with a certificate) or not.",
    permission="manage",
    dashboard=True,
)
@click.argument("app")
@click.argument("state", type=ON_OFF)
def certs_redirect(env: CommandEnv, app: str, state: str) -> None:
    service.set_flag(env.ctx, app, service.S_REDIRECT, state == "on")
    env.echo(f"-----> HTTP to HTTPS redirect {state} for {app}")


@define(
    "certs:hsts",
    "Send Strict-Transport-Security over HTTPS (off by default).",
    permission="manage",
    dashboard=True,
)
@click.argument("app")
@click.argument("state", type=ON_OFF)
def certs_hsts(env: CommandEnv, app: str, state: str) -> None:
    service.set_flag(env.ctx, app, service.S_HSTS, state == "on")
    env.echo(f"-----> HSTS {state} for {app}")


def _report_data(r: service.Report) -> dict:
    info = r.info
    return {
        "ssl_enabled": info is not None,
        "source": r.source,
        "subject": info.subject if info else None,
        "sans": list(info.sans) if info else [],
        "issuer": info.issuer if info else None,
        "not_before": info.not_before.isoformat() if info else None,
        "expires_at": info.not_after.isoformat() if info else None,
        "fingerprint_sha256": info.fingerprint if info else None,
        "key_type": info.key_type if info else None,
        "ocsp_stapling": bool(info and info.ocsp and not info.self_signed),
        "covered": r.covered,
        "not_covered": r.uncovered,
        "redirect": r.redirect,
        "hsts": r.hsts,
        "letsencrypt": r.acme,
        "letsencrypt_error": r.acme_error,
    }


@define(
    "certs:report",
    "Show the certificate: subject, names, issuer, expiry, which domains it covers.",
    permission="view",
    dashboard=True,
)
@click.argument("app")
@FORMAT_OPTION
def certs_report(env: CommandEnv, app: str, fmt: str) -> None:
    r = service.report(env.ctx, app)
    if fmt == "json":
        env.json(_report_data(r))
        return
    info = r.info
    env.echo(f"=====> {app} ssl information")
    env.echo(f"       Ssl enabled:                   {str(info is not None).lower()}")
    if info is not None:
        env.echo(f"       Source:                        {r.source or 'manual'}")
        env.echo(f"       Subject:                       {info.subject}")
        env.echo(f"       Subject alternative names:     {', '.join(info.sans)}")
        env.echo(f"       Issuer:                        {info.issuer}")
        env.echo(f"       Starts at:                     {_when(info.not_before)}")
        env.echo(f"       Expires at:                    {_when(info.not_after)}")
        env.echo(f"       Fingerprint (SHA-256):         {info.fingerprint}")
        env.echo(f"       Key type:                      {info.key_type}")
        env.echo(f"       Covers:                        {', '.join(r.covered) or '(none of its names)'}")
        env.echo(f"       Does not cover:                {', '.join(r.uncovered) or '-'}")
    env.echo(f"       Redirect HTTP to HTTPS:        {str(r.redirect).lower()}")
    env.echo(f"       HSTS:                          {str(r.hsts).lower()}")
    env.echo(f"       Letsencrypt:                   {str(r.acme).lower()}")
    if r.acme_error:
        env.echo(f"       Letsencrypt last error:        {r.acme_error}")


@define(
    "letsencrypt:enable",
    "Get a certificate from ACME (PAAS_ACME_DIRECTORY) now and renew it by itself.",
    permission="manage",
    dashboard=True,
)
@click.argument("app")
def le_enable(env: CommandEnv, app: str) -> None:
    env.echo(
        f"-----> Ordering a certificate for {app} from {plugin_settings.acme(env.ctx.settings).directory}"
    )
    info = letsencrypt.enable(env.ctx, app)
    env.echo(f"-----> Certificate installed for {app}")
    env.echo(f"       {', '.join(info.sans)}, valid until {_when(info.not_after)}")


@define(
    "letsencrypt:disable",
    "Stop renewing and remove the ACME certificate.",
    permission="manage",
    dashboard=True,
)
@click.argument("app")
def le_disable(env: CommandEnv, app: str) -> None:
    changed = letsencrypt.disable(env.ctx, app)
    env.echo(f"-----> Letsencrypt {'disabled' if changed else 'was not enabled'} for {app}")


@define(
    "letsencrypt:list", "List the apps that get certificates from ACME, with their expiry.", permission="user"
)
@FORMAT_OPTION
def le_list(env: CommandEnv, fmt: str) -> None:
    rows = [r for r in service.reports(env.ctx) if r.acme]
    if fmt == "json":
        env.json({r.name: _report_data(r) for r in rows})
        return
    if not rows:
        env.echo("no apps use letsencrypt")
        return
    env.echo(f"{'app':<30} {'expires':<24} {'names'}")
    for r in rows:
        expiry = _when(r.info.not_after) if r.info else "(none yet)"
        env.echo(f"{r.name:<30} {expiry:<24} {', '.join(r.info.sans) if r.info else ''}")
        if r.acme_error:
            env.echo(f"{'':<30} last error: {r.acme_error}")


@define(
    "letsencrypt:auto-renew",
    "Renew now: one app's ACME certificate, or every one.",
    permission="manage",
    dashboard=True,
)
@click.argument("app", required=False)
def le_auto_renew(env: CommandEnv, app: str | None) -> int:
    results = letsencrypt.auto_renew(env.ctx, app)
    if not results:
        env.echo("no apps use letsencrypt")
    failed = False
    for name, outcome in results:
        failed = failed or outcome.startswith("failed")
        env.echo(f"-----> {name}: {outcome}")
    if failed and app is not None:
        raise PaasError(results[0][1].removeprefix("failed: "))
    return 1 if failed else 0


COMMANDS = [
    certs_add,
    certs_update,
    certs_remove,
    certs_generate,
    certs_redirect,
    certs_hsts,
    certs_report,
    le_enable,
    le_disable,
    le_list,
    le_auto_renew,
]
