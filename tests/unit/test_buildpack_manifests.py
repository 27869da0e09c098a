"""app.json, Dockerfile parsing and the process table: the rules that need no container."""

from __future__ import annotations

import json

import pytest

from paas.buildpacks import dockerfile
from paas.buildpacks.builder import BuildFailed, process_table
from paas.core import manifest as app_json
from paas.core.output import BuildLog
from paas.services import first_deploy


def test_app_json_env_formation_and_postdeploy() -> None:
    manifest = app_json.parse(
        json.dumps(
            {
                "name": "x",
                "env": {
                    "PLAIN": "v",
                    "OBJ": {"value": "w", "description": "d"},
                    "FLAG": {"value": True},
                    "SECRET": {"generator": "secret"},
                    "OPTIONAL": {"required": False},
                },
                "formation": {"web": {"quantity": 2, "size": "basic"}, "worker": {"quantity": 0}},
                "scripts": {"postdeploy": "python manage.py seed"},
            }
        )
    )
    assert manifest.formation == {"web": 2, "worker": 0}
    assert manifest.postdeploy == "python manage.py seed"
    added = first_deploy.initial_config(manifest, {"PLAIN": "already set"})
    assert set(added) == {"OBJ", "FLAG", "SECRET"}
    assert added["OBJ"] == "w" and added["FLAG"] == "true"
    assert (
        len(added["SECRET"]) == 64 and added["SECRET"] != first_deploy.initial_config(manifest, {})["SECRET"]
    )


def test_app_json_required_value_missing() -> None:
    manifest = app_json.parse('{"env": {"DATABASE_URL": {"description": "required"}}}')
    with pytest.raises(app_json.AppJsonError, match="app.json requires DATABASE_URL"):
        first_deploy.initial_config(manifest, {})
    assert first_deploy.initial_config(manifest, {"DATABASE_URL": "x"}) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "app.json is not valid JSON"),
        ("[]", "must hold a JSON object"),
        ('{"env": {"BAD-KEY": "x"}}', "invalid config key"),
        ('{"env": {"K": {"generator": "uuid"}}}', 'only "secret" is supported'),
        ('{"env": {"K": 3}}', "must be a string or an object"),
        ('{"formation": {"Web!": {"quantity": 1}}}', "invalid process type"),
        ('{"formation": {"web": {"quantity": -1}}}', "quantity must be a number from 0 to 100"),
        ('{"formation": {"web": {"quantity": "2"}}}', "quantity must be a number"),
        ('{"scripts": {"postdeploy": ""}}', "postdeploy must be a command string"),
    ],
)
def test_app_json_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(app_json.AppJsonError) as err:
        app_json.parse(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_dockerfile_port_from_expose() -> None:
    log = BuildLog()
    assert dockerfile.exposed_port({"8080/tcp": {}}, log) == 8080
    assert dockerfile.exposed_port({"9000/tcp": {}, "53/udp": {}, "8000/tcp": {}}, log) == 8000
    assert "routing to 8000" in log.text()
    assert dockerfile.exposed_port(None, log) == 5000


def test_dockerfile_process_commands_keep_entrypoint_and_quoting() -> None:
    assert dockerfile.process_commands({}, [], ["python3", "app.py", "a b"]) == {
        "web": "exec python3 app.py 'a b'"
    }
    assert dockerfile.process_commands({"worker": "python3 w.py 'x  y'"}, ["/entry.sh"], ["serve"]) == {
        "worker": "exec /entry.sh python3 w.py 'x  y'",
        "web": "exec /entry.sh serve",
    }
    assert dockerfile.process_commands({"web": "gunicorn app"}, [], ["ignored"]) == {"web": "gunicorn app"}
    assert dockerfile.process_commands({}, [], []) == {}


def test_process_table_merges_buildpack_defaults_with_the_procfile() -> None:
    yaml_text = "---\ndefault_process_types:\n  web: npm start\n  worker: node w.js\n"
    assert process_table(yaml_text, {"web": "node server.js"}) == {
        "web": "node server.js",
        "worker": "node w.js",
    }
    assert process_table("--- {}", {}) == {}
    assert process_table(None, {"web": "x"}) == {"web": "x"}
    with pytest.raises(BuildFailed, match="invalid YAML"):
        process_table("default_process_types: [", {})
    with pytest.raises(BuildFailed, match="invalid process type"):
        process_table("default_process_types:\n  'Bad Type': x\n", {})
