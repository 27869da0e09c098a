"""The JSON API against its OpenAPI document, its error shapes, and parity with SSH commands."""

from __future__ import annotations

import collections
import io
import re

import schemathesis
from hypothesis import HealthCheck, given, settings

from paas import commands
from paas.services import users
from paas.web.openapi import document
from tests.web.conftest import Site, bearer, post_deploy, post_form

# The document says what is valid JSON; the services refuse more (reserved names, sizes, ...),
# with a documented 400, so "every schema-valid request succeeds" is not a property we promise.
EXCLUDED = [schemathesis.checks.positive_data_acceptance]
STREAMS = {"GET /apps/{app}/log-stream"}  # endless by design; tested end to end


def api_routes(site: Site) -> set[tuple[str, str]]:
    out = set()
    for rule in site.app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule).removeprefix("/api/v1")
            path = path.replace("{ptype}", "{type}")
            out |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return out


def test_openapi_document_lists_exactly_the_api_routes(site: Site) -> None:
    doc = site.client().get("/api/v1/openapi.json", headers=bearer(site.admin_token)).json
    assert doc == document()
    documented = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == api_routes(site)
    for path, item in doc["paths"].items():  # every {param} of a path is declared
        declared = {p["name"] for p in item.get("parameters", [])}
        assert set(re.findall(r"{(\w+)}", path)) == declared, path


def test_api_answers_match_the_openapi_document(site: Site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Property-based (schemathesis): status codes, content types and bodies as documented,
    never a 500, for generated requests: first on an existing app, then on any name."""
    # Its auth checks send bad tokens from one address: without this they lock the API (429).
    monkeypatch.setattr(users, "MAX_TOKEN_FAILURES", 10**6)
    headers = bearer(site.admin_token)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", site.app, headers=headers)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 20
    successes: collections.Counter[str] = collections.Counter()

    def run(op, examples: int, **fixed) -> None:  # type: ignore[no-untyped-def]
        @settings(
            max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=op.as_strategy(**fixed))
        def check(case) -> None:  # type: ignore[no-untyped-def]
            resp = case.call_and_validate(headers=headers, excluded_checks=EXCLUDED)
            if resp.status_code < 300:
                successes[op.label] += 1

        check()

    # Hand-picked bodies for what random ones rarely hit (valid keys, types the app has).
    by_label = {op.label: op for op in operations}
    for label, body in (
        ("PATCH /apps/{app}/config", {"GREETING": "hello", "EMPTY": ""}),
        ("POST /apps/{app}/domains", {"hostname": "www.demo.example"}),
    ):
        case = schema.make_case(
            operation=by_label[label],
            path_parameters={"app": "demo"},
            body=body,
            media_type="application/json",
        )
        assert case.call_and_validate(headers=headers, excluded_checks=EXCLUDED).status_code < 300
        successes[label] += 1
    on_demo = [op for op in operations if "{app}" in op.path and op.label not in STREAMS]
    destroy = [op for op in on_demo if op.label == "DELETE /apps/{app}"]
    for op in [op for op in on_demo if op not in destroy]:
        run(op, 25, path_parameters={"app": "demo"})
    for op in operations:
        if op.label not in STREAMS and op not in destroy:
            run(op, 15)
    for op in destroy:
        run(op, 5, path_parameters={"app": "demo"})
    # The generated requests reached the success paths, not only the error ones.
    for label in (
        "GET /apps",
        "GET /apps/{app}",
        "GET /apps/{app}/config",
        "PATCH /apps/{app}/config",
        "GET /apps/{app}/releases",
        "GET /apps/{app}/domains",
        "DELETE /apps/{app}",
    ):
        assert successes[label] > 0, label


def test_api_errors_are_json_with_fitting_status_codes(site: Site) -> None:
    client = site.client()
    h = bearer(site.admin_token)
    cases = [
        (client.get("/api/v1/apps/nope", headers=h), 404, "not_found", "app 'nope' does not exist"),
        (
            client.post("/api/v1/apps", headers=h, json={"name": "Bad Name"}),
            400,
            "invalid_params",
            "invalid app name",
        ),
        (client.post("/api/v1/apps", headers=h, json={"name": "demo"}), 409, "conflict", "already exists"),
        (client.post("/api/v1/apps", headers=h, data="{not json"), 400, "invalid_params", "JSON object"),
        (client.patch("/api/v1/apps/demo/config", headers=h, json={"K": 3}), 400, "invalid_params", "string"),
        (
            client.patch("/api/v1/apps/demo/config", headers=h, json={"1BAD": "x"}),
            400,
            "invalid_params",
            "invalid config key",
        ),
        (
            client.patch("/api/v1/apps/demo/config", headers=h, json={"GONE": None}),
            404,
            "not_found",
            "demo has no config var GONE",
        ),
        (
            client.patch("/api/v1/apps/demo/formation/web", headers=h, json={"quantity": "2"}),
            400,
            "invalid_params",
            "whole number",
        ),
        (
            client.post("/api/v1/apps/demo/releases", headers=h, json={}),
            400,
            "invalid_params",
            "no release to roll back from",
        ),
        (client.get("/api/v1/apps/demo/logs?lines=many", headers=h), 400, "invalid_params", "whole number"),
        (client.put("/api/v1/apps/demo", headers=h, json={}), 405, "method_not_allowed", ""),
        (client.get("/api/v1/nothing-here", headers=h), 404, "not_found", ""),
        (client.get("/api/v1/users", headers=bearer(site.user_token)), 403, "forbidden", "only an admin"),
    ]
    for resp, status, ident, message in cases:
        assert resp.status_code == status, (resp.request.path, resp.json)
        assert resp.is_json and resp.json["id"] == ident
        assert message in resp.json["message"]
        assert "Traceback" not in resp.text


def ssh(site: Site, actor: str, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=site.ctx.for_actor(actor, True), out=out, err=err)
    return commands.dispatch(list(argv), env), err.getvalue()


def last_event(site: Site) -> tuple:
    e = site.ctx.store.list_events(1)[-1]
    return e["user"], e["action"], e["detail"]


def test_the_api_and_the_dashboard_do_what_the_ssh_command_does(site: Site) -> None:
    """Same event (the web user as actor), same stored state, same validation message."""
    site.ctx.store.create_app("other")
    client, h = site.client(), bearer(site.admin_token)
    browser = site.login()

    assert ssh(site, "alice", "config:set", "other", "GREETING=hi there")[0] == 0
    via_ssh = last_event(site)
    assert (
        client.patch("/api/v1/apps/demo/config", headers=h, json={"GREETING": "hi there"}).status_code == 200
    )
    assert last_event(site) == via_ssh
    post_deploy(browser, "/apps/demo/config", {"key": "OTHER", "value": "x"}, page="/apps/demo")
    assert last_event(site) == ("alice", "config", "Set OTHER")

    assert ssh(site, "alice", "domains:add", "other", "www.other.example")[0] == 0
    assert last_event(site)[:2] == ("alice", "domains:add")
    assert (
        client.post("/api/v1/apps/demo/domains", headers=h, json={"hostname": "WWW.Demo.Example"}).status_code
        == 201
    )
    assert last_event(site) == ("alice", "domains:add", "www.demo.example")
    taken = client.post("/api/v1/apps/demo/domains", headers=h, json={"hostname": "www.other.example"})
    code, err = ssh(site, "alice", "domains:add", "demo", "www.other.example")
    assert (taken.status_code, code) == (409, 1)
    assert (
        err
        == f"error: {taken.json['message']}\n"
        == "error: www.other.example already belongs to app other\n"
    )

    code, err = ssh(site, "alice", "apps:create", "Bad_Name")
    resp = client.post("/api/v1/apps", headers=h, json={"name": "Bad_Name"})
    assert err == f"error: {resp.json['message']}\n"
    page = post_form(browser, "/apps", {"name": "Bad_Name"}, follow_redirects=True)
    assert resp.json["message"].replace("'", "&#39;") in page.text

    code, err = ssh(site, "alice", "apps:destroy", "other", "--confirm", "wrong")
    page = post_form(browser, "/apps/demo/destroy", {"confirm": "wrong"}, follow_redirects=True)
    assert err.replace("other", "demo").removeprefix("error: ").strip() in page.text
    assert site.ctx.store.get_app("demo") is not None
