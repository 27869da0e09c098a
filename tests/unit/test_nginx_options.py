"""Dokku's nginx properties beyond plain directives (HSTS, X-Forwarded-*, bind addresses, logs,
keepalive) and checks' wait-to-retire: what a user may set, what reaches nginx, what never does."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from paas import commands
from paas.core.context import Context
from paas.core.routes import FORWARDED_VARIABLES, ProxyOptions, Route, RouteExtras, RouteTls, log_path
from paas.errors import PaasError, PermissionDenied
from paas.router.nginx import Router
from paas.services import properties, routing
from paas.settings import Settings

NEW_KEYS = tuple(routing.OPTION_PROPERTIES)
PLAIN = re.compile(r"^[A-Za-z0-9._:/-]*$")


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, on_host=True, disconnected=lambda: True)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setattr(routing, "sync_app_route", lambda ctx, name: None)  # no engine, no nginx here
    ctx = Context.open(Settings(data_dir=tmp_path / "data"), actor="host", is_admin=True, on_host=True)
    ctx.store.create_app("myapp")
    return ctx


def value_of(ctx: Context, *argv: str) -> str:
    code, out, err = run(ctx, *argv)
    assert code == 0, err
    return out.rstrip("\n")


@pytest.mark.parametrize(
    ("key", "app_value", "global_value"),
    [
        ("hsts", "false", "true"),
        ("hsts-include-subdomains", "false", "true"),
        ("hsts-max-age", "3600", "7200"),
        ("hsts-preload", "true", "false"),
        ("x-forwarded-for-value", "$remote_addr", "$proxy_add_x_forwarded_for"),
        ("x-forwarded-port-value", "8080", "8443"),
        ("x-forwarded-proto-value", "https", "http"),
        ("x-forwarded-ssl", "on", "off"),
        ("bind-address-ipv4", "127.0.0.1", "0.0.0.0"),
        ("access-log-format", "main", "combined"),
        ("access-log-path", "/var/log/nginx/app-access.log", "/dev/stdout"),
        ("error-log-path", "/var/log/nginx/app-error.log", "/dev/stderr"),
        ("proxy-keepalive", "8", "16"),
        ("disable-custom-config", "false", "true"),
        ("nginx-conf-sigil-path", "custom.sigil", "global.sigil"),
        ("nginx-service-command", "/usr/sbin/nginx-app", "/usr/sbin/nginx-global"),
    ],
)
def test_raw_global_and_computed(ctx: Context, key: str, app_value: str, global_value: str) -> None:
    flag = ("nginx:report", "myapp")
    assert run(ctx, "nginx:set", "--global", key, global_value)[0] == 0
    assert value_of(ctx, *flag, f"--nginx-global-{key}") == global_value
    assert value_of(ctx, *flag, f"--nginx-computed-{key}") == global_value
    assert run(ctx, "nginx:set", "myapp", key, app_value)[0] == 0
    assert value_of(ctx, *flag, f"--nginx-{key}") == app_value
    assert value_of(ctx, *flag, f"--nginx-computed-{key}") == app_value
    assert run(ctx, "nginx:set", "myapp", key)[0] == 0
    assert run(ctx, "nginx:set", "--global", key)[0] == 0
    assert value_of(ctx, *flag, f"--nginx-global-{key}") == ""


def test_the_options_the_router_gets(ctx: Context) -> None:
    app = ctx.store.get_app("myapp")
    assert routing.proxy_options(ctx, app) == ProxyOptions()
    for key, value in [
        ("hsts", "true"),
        ("hsts-max-age", "3600"),
        ("hsts-include-subdomains", "true"),
        ("x-forwarded-for-value", "$remote_addr"),
        ("x-forwarded-ssl", "on"),
        ("bind-address-ipv4", "127.0.0.1"),
        ("access-log-path", "off"),
        ("proxy-keepalive", "0"),
    ]:
        properties.set_value(ctx, "nginx", "myapp", key, value)
    properties.set_value(ctx, "nginx", None, "x-forwarded-proto-value", "https")
    options = routing.proxy_options(ctx, app)
    assert options.hsts is True and options.hsts_header == "max-age=3600; includeSubDomains"
    assert (options.forwarded_for, options.forwarded_proto) == ("$remote_addr", "https")
    assert options.forwarded_port == ProxyOptions.forwarded_port
    assert (options.forwarded_ssl, options.bind_ipv4, options.access_log, options.keepalive) == (
        "on",
        "127.0.0.1",
        "off",
        0,
    )


# What an attacker would try through each value: end the directive, open a block, add a line,
# quote, reach another variable, or point nginx's root master at a file of the host's or ours.
ATTACKS = [
    "1; return 200 pwned",
    "on;",
    "x { return 200; }",
    "}",
    "{",
    "on\nreturn 200",
    "on\r\nreturn 200",
    '"quoted"',
    "'quoted'",
    "a b",
    "$http_cookie",
    "$http_authorization",
    "${remote_addr}",
    "$remote_addr;",
    "/etc/passwd",
    "/var/log/nginx/../../../etc/shadow",
    "/var/log/nginx/./a.log",
    "/var/log/nginx//a.log",
    "/var/log/nginx/",
    "/var/log/nginx",
    "/var/log/nginxevil/a.log",
    "/var/lib/paas/paas.db",
    "relative/path.log",
    "../x",
    "/dev/sda",
    "10.254.254.254",
    "999.1.1.1",
    "::ffff:127.0.0.1",
    "-1",
    "99999999999",
    "true false",
]


@pytest.mark.parametrize("key", NEW_KEYS)
def test_no_attack_is_stored(ctx: Context, key: str) -> None:
    ns = "nginx"
    app = ctx.store.get_app("myapp")
    for attack in ATTACKS:
        for target in ("myapp", None):
            try:
                properties.set_value(ctx, ns, target, key, attack)
            except PaasError:
                continue
            stored = properties.raw(ctx, app, ns, key) if target else properties.global_raw(ctx, ns, key)
            # Taken: only a plain word (a number, an address, a path) or an allowed variable.
            assert PLAIN.fullmatch(stored) or stored in FORWARDED_VARIABLES, (key, attack, stored)
            assert ".." not in stored and "//" not in stored, (key, attack, stored)
            properties.set_value(ctx, ns, target, key, None)


def test_a_log_path_inside_the_platforms_folders_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PaasError, match="folder of the platform"):
        log_path("/var/log/nginx/paas/x.log", (Path("/var/log/nginx/paas"),))
    assert log_path("/var/log/nginx/app.log", (tmp_path,)) == "/var/log/nginx/app.log"


@pytest.mark.parametrize(
    "fields",
    [
        {"forwarded_for": "$remote_addr; return 200 x"},
        {"forwarded_proto": "http\nadd_header X 1"},
        {"forwarded_port": "$http_cookie"},
        {"forwarded_ssl": "on; x"},
        {"bind_ipv4": "127.0.0.1:80 default_server"},
        {"bind_ipv6": "::1]:80 ssl; x [::1"},
        {"access_log": "/etc/passwd"},
        {"access_log_format": "combined; x"},
        {"error_log": "/var/log/nginx/../../etc/passwd"},
        {"hsts_max_age": -1},
        {"keepalive": 100000},
    ],
)
def test_the_router_refuses_options_no_check_made(fields: dict) -> None:
    with pytest.raises(PaasError):
        ProxyOptions(**fields)


def test_app_owners_do_not_name_the_hosts_files_or_addresses(ctx: Context) -> None:
    uid = ctx.store.add_key_user("bob", False, "2026-01-01T00:00:00Z")
    ctx.store.create_app("bobs", owner_id=uid)
    bob = ctx.for_actor("bob", False, user_id=uid)
    for key, value in [
        ("access-log-path", "/var/log/nginx/bobs.log"),
        ("error-log-path", "/dev/stderr"),
        ("bind-address-ipv4", "127.0.0.1"),
        ("bind-address-ipv6", "::1"),
        ("nginx-service-command", "/usr/sbin/nginx"),
    ]:
        with pytest.raises(PermissionDenied, match="only an admin"):
            properties.set_value(bob, "nginx", "bobs", key, value)
    properties.set_value(bob, "nginx", "bobs", "hsts", "true")
    properties.set_value(bob, "nginx", "bobs", "x-forwarded-proto-value", "https")
    with pytest.raises(PermissionDenied):
        properties.set_value(bob, "nginx", None, "hsts", "true")


def nginx_t(router: Router) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [nginx, "-t", "-p", str(router.prefix), "-c", str(router.main_conf)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_rendered_config(tmp_path: Path) -> None:
    router = Router(Settings(data_dir=tmp_path, http_port=18080, http_bind="0.0.0.0", https_port=0))
    extras = RouteExtras()
    extras.proxy = ProxyOptions(
        forwarded_for="$remote_addr",
        forwarded_port="8443",
        forwarded_ssl="on",
        bind_ipv4="127.0.0.1",
        bind_ipv6="::1",
        access_log_format="combined",
        access_log="/dev/stdout",
        error_log="/dev/stderr",
        keepalive=4,
    )
    router.set_route(Route("hello", ["hello.localhost"], ["127.0.0.1:32768"], extras))
    text = (router.apps_dir / "hello.conf").read_text()
    assert "listen 127.0.0.1:18080;" in text and "listen [::1]:18080;" in text
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in text
    assert "proxy_set_header X-Forwarded-Port 8443;" in text
    assert "proxy_set_header X-Forwarded-Proto $paas_forwarded_proto;" in text
    assert "proxy_set_header X-Forwarded-Ssl on;" in text
    assert "access_log /dev/stdout combined;" in text and "error_log /dev/stderr;" in text
    assert "keepalive 4;" in text
    nginx_t(router)
    default = RouteExtras()
    router.set_route(Route("hello", ["hello.localhost"], ["127.0.0.1:32768"], default))
    text = (router.apps_dir / "hello.conf").read_text()
    assert "listen 0.0.0.0:18080;" in text and "[::1]" not in text and "X-Forwarded-Ssl" not in text
    assert "keepalive 16;" in text and "error_log" not in text


def test_hsts_follows_the_property_else_the_certificate(tmp_path: Path) -> None:
    from tests.unit.test_tls_router import make_pair

    router = Router(
        Settings(data_dir=tmp_path / "d", http_port=18080, https_port=18443, http_bind="127.0.0.1")
    )
    cert, key = make_pair(tmp_path, ["hello.localhost"])

    def header(tls_hsts: bool, proxy: ProxyOptions) -> str:
        extras = RouteExtras(proxy=proxy)
        extras.set_tls(RouteTls(str(cert), str(key), hostnames=("hello.localhost",), hsts=tls_hsts))
        text = router.render_app(Route("hello", ["hello.localhost"], ["127.0.0.1:1"], extras))
        lines = [line.strip() for line in text.splitlines() if "Strict-Transport-Security" in line]
        return lines[0] if lines else ""

    assert header(False, ProxyOptions()) == ""
    assert header(True, ProxyOptions()) == 'add_header Strict-Transport-Security "max-age=63072000" always;'
    assert header(True, ProxyOptions(hsts=False)) == ""
    on = ProxyOptions(hsts=True, hsts_max_age=3600, hsts_include_subdomains=True, hsts_preload=True)
    assert header(False, on) == (
        'add_header Strict-Transport-Security "max-age=3600; includeSubDomains; preload" always;'
    )
