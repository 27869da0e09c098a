"""The OpenAPI 3.0 document of /api/v1 (served at /api/v1/openapi.json).

Written by hand next to the routes; a test checks that both list the same operations, and a
property-based test (schemathesis) checks the API's answers against it.
"""

from __future__ import annotations

from typing import Any

from paas.core.validation import APP_NAME_RE, MAX_SCALE, PROCESS_TYPE_RE
from paas.services.jobs import JOB_ID_RE
from paas.services.logs import MAX_LINES
from paas.services.metrics import RETENTION

S = dict[str, Any]


def _ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: S) -> S:
    return {**schema, "nullable": True}


STRING: S = {"type": "string"}
# The rules' own patterns and limits (paas.core.validation, the services), never copies of them.
APP_NAME: S = {"type": "string", "pattern": APP_NAME_RE.pattern, "description": "not ending in '-'"}
PROCESS_TYPE: S = {"type": "string", "pattern": PROCESS_TYPE_RE.pattern}
QUANTITY: S = {"type": "integer", "minimum": 0, "maximum": MAX_SCALE}
JOB_ID: S = {"type": "string", "pattern": JOB_ID_RE.pattern}
INT: S = {"type": "integer"}
STAMP: S = {"type": "string", "description": "UTC, like 2026-11-28T03:00:51Z"}

SCHEMAS: dict[str, S] = {
    "Error": {
        "type": "object",
        "required": ["id", "message"],
        "properties": {
            "id": {**STRING, "description": "not_found, invalid_params, conflict, deploy_failed, ..."},
            "message": STRING,
            "output": {"type": "array", "items": STRING, "description": "the end of a failed deploy"},
        },
    },
    "User": {
        "type": "object",
        "required": ["name", "admin", "created_at"],
        "properties": {"name": STRING, "admin": {"type": "boolean"}, "created_at": STAMP},
    },
    "Quotas": {
        "type": "object",
        "required": ["user", "admin", "quotas", "disk"],
        "properties": {
            "user": STRING,
            "admin": {"type": "boolean", "description": "admins are not held by quotas"},
            "quotas": {
                "type": "object",
                "description": "apps, processes, memory, oneoffs, disk (memory and disk in bytes)",
                "additionalProperties": {
                    "type": "object",
                    "required": ["limit", "used", "default"],
                    "properties": {"limit": INT, "used": INT, "default": {"type": "boolean"}},
                },
            },
            "disk": {
                "type": "object",
                "description": "each app's last measured bytes by part (repo, cache, images, ...)",
                "additionalProperties": {"type": "object", "additionalProperties": INT},
            },
        },
    },
    "AppSummary": {
        "type": "object",
        "required": ["name", "status", "processes", "release", "deployed_at", "url", "created_at"],
        "properties": {
            "name": STRING,
            "status": {
                "type": "string",
                "enum": ["running", "crashed", "deploying", "stopped", "idle", "new"],
            },
            "processes": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["running", "wanted"],
                    "properties": {"running": INT, "wanted": INT},
                },
            },
            "release": _nullable(INT),
            "deployed_at": _nullable(STAMP),
            "url": STRING,
            "created_at": STAMP,
        },
    },
    "App": {
        "type": "object",
        "description": "what `apps:info --format json` shows, and the status",
        "required": ["name", "status", "url", "release", "formation", "processes", "domains", "stopped"],
        "properties": {
            "name": STRING,
            "status": STRING,
            "created_at": STAMP,
            "url": STRING,
            "git_remote": STRING,
            "domains": {"type": "array", "items": STRING},
            "release": _nullable(INT),
            "deployed_at": _nullable(STAMP),
            "commit": _nullable(STRING),
            "buildpack": _nullable(STRING),
            "formation": {"type": "object", "additionalProperties": INT},
            "processes": {"type": "object", "additionalProperties": STRING},
            "stopped": {"type": "boolean"},
        },
    },
    "Config": {"type": "object", "additionalProperties": STRING},
    "ConfigPatch": {
        "type": "object",
        "description": "KEY: value sets, KEY: null unsets; one release for the whole change",
        "additionalProperties": _nullable(STRING),
    },
    "Formation": {
        "type": "object",
        "required": ["type", "quantity"],
        "properties": {"type": PROCESS_TYPE, "quantity": QUANTITY},
    },
    "FormationBatch": {
        "type": "object",
        "required": ["updates"],
        "properties": {"updates": {"type": "array", "items": _ref("Formation")}},
    },
    "Quantity": {
        "type": "object",
        "required": ["quantity"],
        "properties": {"quantity": QUANTITY},
    },
    "Dyno": {
        "type": "object",
        "required": ["dyno", "type", "index", "state", "release", "restarts", "container"],
        "properties": {
            "dyno": STRING,
            "type": STRING,
            "index": INT,
            "state": STRING,
            "release": INT,
            "started_at": _nullable(STAMP),
            "uptime_seconds": _nullable(INT),
            "restarts": INT,
            "container": STRING,
        },
    },
    "Release": {
        "type": "object",
        "required": ["version", "description", "status", "created_at", "formation", "config_keys"],
        "properties": {
            "version": INT,
            "description": STRING,
            "user": _nullable(STRING),
            "created_at": STAMP,
            "status": {"type": "string", "enum": ["current", "succeeded", "failed", "pending"]},
            "commit": _nullable(STRING),
            "build_id": _nullable(INT),
            "formation": {"type": "object", "additionalProperties": INT},
            "config_keys": {"type": "array", "items": STRING},
        },
    },
    "Rollback": {
        "type": "object",
        "properties": {
            "release": {
                "description": "vN or N; null or absent: the previous good release",
                "nullable": True,
                "oneOf": [STRING, INT],
            }
        },
    },
    "BuildOutput": {
        "type": "object",
        "required": ["version", "output"],
        "properties": {"version": INT, "output": STRING},
    },
    "Domain": {
        "type": "object",
        "required": ["hostname", "kind"],
        "properties": {"hostname": STRING, "kind": {"type": "string", "enum": ["default", "custom"]}},
    },
    "NewDomain": {"type": "object", "required": ["hostname"], "properties": {"hostname": STRING}},
    "NewApp": {"type": "object", "required": ["name"], "properties": {"name": APP_NAME}},
    "Destroyed": {
        "type": "object",
        "required": ["name", "destroyed"],
        "properties": {"name": STRING, "destroyed": {"type": "boolean"}},
    },
    "Job": {
        "type": "object",
        "description": "a deploy running in the background (asked for with Prefer: respond-async)",
        "required": ["id", "app", "operation", "title", "state", "message", "created_at", "url"],
        "properties": {
            "id": STRING,
            "app": STRING,
            "operation": STRING,
            "title": STRING,
            "user": _nullable(STRING),
            "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "interrupted"]},
            "message": {**STRING, "description": "the outcome (or the error) once it ended"},
            "created_at": STAMP,
            "ended_at": _nullable(STAMP),
            "url": STRING,
            "output": {"type": "array", "items": STRING, "description": "its output so far (GET only)"},
        },
    },
    "Logs": {
        "type": "object",
        "required": ["lines"],
        "properties": {"lines": {"type": "array", "items": STRING}},
    },
    "Metrics": {
        "type": "object",
        "description": "samples of the last `seconds`, by dyno",
        "additionalProperties": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["at", "mem_bytes", "mem_limit"],
                "properties": {
                    "at": {"type": "number"},
                    "cpu_percent": _nullable({"type": "number"}),
                    "mem_bytes": INT,
                    "mem_limit": INT,
                },
            },
        },
    },
}

ERRORS = {
    "400": "invalid input (a name, key, count or body the service refuses)",
    "401": "no valid bearer token",
    "403": "the token's user may not do this",
    "404": "no such app, release, config var or domain",
    "409": "conflicts with the current state (name taken, domain owned by another app, ...)",
    "422": "the change did not deploy: the running release is untouched",
    "503": "the Docker engine did not answer",
    "429": "too many requests, or too many invalid tokens, from this address (see Retry-After)",
}


def _json(schema: S) -> S:
    return {"content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    ok: S | None,
    errors: str = "401 404 400",
    status: str = "200",
    body: S | None = None,
    params: list[S] | None = None,
    content_type: str = "application/json",
) -> S:
    responses: S = {status: {"description": "OK", "content": {content_type: {"schema": ok or {}}}}}
    for code in [*errors.split(), "503", "429"]:
        responses[code] = {"description": ERRORS[code], **_json(_ref("Error"))}
    op: S = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if params:
        op["parameters"] = params
    return op


def _path(name: str, description: str, schema: S = STRING) -> S:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query(name: str, schema: S, description: str) -> S:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


APP = _path("app", "the app's name", APP_NAME)
LINES = _query("lines", {"type": "integer", "minimum": 1, "maximum": MAX_LINES}, "how many lines first")
TYPE = _query("type", STRING, "only this process type")
DEPLOYS = "401 404 400 409 422"
PREFER = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "enum": ["respond-async"]},
    "description": "respond-async: answer 202 at once with the deploy's job (Location: its URL)",
}


def _deploy_op(
    summary: str, ok: S, status: str = "200", body: S | None = None, params: list[S] | None = None
) -> S:
    """A change that deploys: its result when done, or (Prefer: respond-async) 202 and a job."""
    op = _op(summary, ok, DEPLOYS, status, body, [*(params or []), PREFER])
    op["responses"]["202"] = {"description": "started in the background", **_json(_ref("Job"))}
    return op


def _list(name: str) -> S:
    return {"type": "array", "items": _ref(name)}


def paths() -> S:
    return {
        "/account": {"get": _op("The token's user", _ref("User"), "401")},
        "/account/quotas": {"get": _op("The token's user's quotas and usage", _ref("Quotas"), "401")},
        "/users": {"get": _op("Every user (admins only)", _list("User"), "401 403")},
        "/apps": {
            "get": _op("Every app with its status and process counts", _list("AppSummary"), "401"),
            "post": _op("Create an app", _ref("App"), "401 400 409", "201", _ref("NewApp")),
        },
        "/apps/{app}": {
            "parameters": [APP],
            "get": _op("One app (as apps:info)", _ref("App")),
            "delete": _op(
                "Destroy an app: containers, images, repo, config", _ref("Destroyed"), "401 404 400 409"
            ),
        },
        "/apps/{app}/config": {
            "parameters": [APP],
            "get": _op("Config vars", _ref("Config")),
            "patch": _deploy_op(
                "Set and unset config vars (new release)", _ref("Config"), body=_ref("ConfigPatch")
            ),
        },
        "/apps/{app}/formation": {
            "parameters": [APP],
            "get": _op("The formation: count per process type", _list("Formation")),
            "patch": _deploy_op(
                "Scale several process types", _list("Formation"), body=_ref("FormationBatch")
            ),
        },
        "/apps/{app}/formation/{type}": {
            "parameters": [APP, _path("type", "a process type")],
            "patch": _deploy_op("Scale one process type", _list("Formation"), body=_ref("Quantity")),
        },
        "/apps/{app}/dynos": {
            "parameters": [APP],
            "get": _op("Running processes (as ps)", _list("Dyno")),
            "delete": _deploy_op("Restart without downtime (all, or ?type=)", _list("Dyno"), params=[TYPE]),
        },
        "/apps/{app}/releases": {
            "parameters": [APP],
            "get": _op("Releases, newest first", _list("Release")),
            "post": _deploy_op(
                "Roll back: a new release from an earlier one", _ref("Release"), "201", _ref("Rollback")
            ),
        },
        "/apps/{app}/releases/{version}": {
            "parameters": [APP, _path("version", "vN or N")],
            "get": _op("One release", _ref("Release")),
        },
        "/apps/{app}/releases/{version}/build-output": {
            "parameters": [APP, _path("version", "vN or N")],
            "get": _op("The build output behind a release", _ref("BuildOutput")),
        },
        "/apps/{app}/domains": {
            "parameters": [APP],
            "get": _op("The default and custom domains", _list("Domain")),
            "post": _op("Add a custom domain", _ref("Domain"), "401 404 400 409", "201", _ref("NewDomain")),
        },
        "/apps/{app}/domains/{hostname}": {
            "parameters": [APP, _path("hostname", "a custom domain")],
            "delete": _op("Remove a custom domain", _ref("Domain"), "401 404 400 409"),
        },
        "/apps/{app}/logs": {
            "parameters": [APP],
            "get": _op("Recent log lines, merged over processes", _ref("Logs"), params=[LINES, TYPE]),
        },
        "/apps/{app}/log-stream": {
            "parameters": [APP],
            "get": _op(
                "Live logs as Server-Sent Events (one line per event; id is its timestamp)",
                STRING,
                params=[LINES, TYPE],
                content_type="text/event-stream",
            ),
        },
        "/apps/{app}/jobs/{job_id}": {
            "parameters": [
                APP,
                _path("job_id", "as the 202 gave it", JOB_ID),
            ],
            "get": _op("A deploy started with Prefer: respond-async: its state and output", _ref("Job")),
        },
        "/apps/{app}/jobs/{job_id}/stream": {
            "parameters": [
                APP,
                _path("job_id", "as the 202 gave it", JOB_ID),
            ],
            "get": _op(
                "A job's output as Server-Sent Events (id: byte offset), then a `done` event with the job",
                STRING,
                content_type="text/event-stream",
            ),
        },
        "/apps/{app}/metrics": {
            "parameters": [APP],
            "get": _op(
                "CPU and memory per process (sampled now, kept 15 minutes)",
                _ref("Metrics"),
                params=[
                    _query("seconds", {"type": "integer", "minimum": 1, "maximum": RETENTION}, "how far back")
                ],
            ),
        },
        "/openapi.json": {"get": _op("This document", {"type": "object"}, "401")},
    }


def document() -> S:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "paas API",
            "version": "1",
            "description": "Shaped like Heroku's Platform API. Authenticate with `Authorization: Bearer "
            "<token>` (`paas tokens:create <user>` on the server). Errors are `{id, message}`.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": paths(),
    }
