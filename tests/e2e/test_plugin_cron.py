"""The cron plugin end to end: a push with a bad schedule is refused with its index, a good one
runs its every-minute job on its own (once, within about a minute) with the app's config, its
output shows in `logs -p cron`, and `cron:run` runs a job now with the output streamed back."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import docker

from tests.e2e.conftest import PaasServer, unique_app, wait_for

FIXTURES = Path(__file__).resolve().parents[2] / "plugins" / "cron" / "fixtures"


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def away_from_a_tick() -> None:
    """Wait until the next whole minute is at least 20 s away."""
    second = time.time() % 60
    if second > 40:
        time.sleep(62 - second)


def test_cron_jobs_are_checked_at_push_run_on_schedule_and_on_demand(paas: PaasServer) -> None:
    name = unique_app("cron")
    src = paas.root / "src" / name
    shutil.copytree(FIXTURES / "cron-app", src)
    good = (src / "app.json").read_text()
    bad = json.loads(good)
    bad["cron"][1]["schedule"] = "61 * * * *"
    (src / "app.json").write_text(json.dumps(bad))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bad schedule"]):
        assert paas.git(src, *args).returncode == 0
    paas.git(src, "remote", "add", "paas", f"paas:{name}")
    ok(paas.ssh("apps:create", name))
    ok(paas.ssh("config:set", name, "GREETING=hello-from-config"))

    refused = paas.git(src, "push", "paas", "main")
    assert refused.returncode != 0
    assert "app.json cron[1]: invalid schedule '61 * * * *'" in refused.output
    assert "Traceback" not in refused.output

    (src / "app.json").write_text(good)
    assert paas.git(src, "commit", "-q", "-am", "good schedule").returncode == 0
    pushed = paas.git(src, "push", "paas", "main")
    assert pushed.returncode == 0, pushed.output
    assert "Cron: 2 job(s)" in pushed.output

    rows = json.loads(ok(paas.ssh("cron:list", name, "--format", "json")))
    minute = next(r for r in rows if r["schedule"] == "* * * * *")
    failing = next(r for r in rows if r["schedule"] == "@yearly")
    assert minute["last_run"] is None and minute["next_run"].endswith(":00+00:00")
    text = ok(paas.ssh("cron:list", name))
    assert minute["id"] in text and failing["id"] in text and "echo failing-on-purpose" in text

    # The scheduler runs the every-minute job by itself, in the current release, with its config.
    marker = f"app[cron.{minute['id']}]: cron-marker hello-from-config profile-ok from cron.{minute['id']}"
    started = time.monotonic()
    seen = wait_for(lambda: marker in ok(paas.ssh("logs", name, "-p", "cron")), timeout=80, interval=2)
    assert seen, f"no scheduled run within 80 s:\n{ok(paas.ssh('logs', name, '-p', 'cron'))}"
    assert time.monotonic() - started < 80
    logs = ok(paas.ssh("logs", name, "-p", "cron"))
    assert "app[worker.1]" not in logs
    # One run per tick: the server logs each run it starts, with its tick.
    ticks = re.findall(
        rf"{name} cron {minute['id']}: started for the tick of (\S+)", paas.log_path.read_text()
    )
    assert ticks and len(ticks) == len(set(ticks)), ticks
    done = wait_for(
        lambda: (
            next(
                r
                for r in json.loads(ok(paas.ssh("cron:list", name, "--format", "json")))
                if r["id"] == minute["id"]
            )["last_run"]["status"]
            == 0
        ),
        timeout=20,
    )
    assert done
    # Reconcile (every second here) leaves the kept run container alone.
    time.sleep(3)
    labels = [f"paas.app={name}", "paas.role=cron", f"paas.index={minute['id']}"]
    assert len(docker.from_env().containers.list(all=True, filters={"label": labels})) == 1

    # cron:run: now, output streamed back; a failing job exits non-zero and is recorded.
    away_from_a_tick()  # a scheduled run of the same job would make cron:run refuse (still running)
    now = paas.ssh("cron:run", name, minute["id"])
    assert ok(now).strip() == f"cron-marker hello-from-config profile-ok from cron.{minute['id']}"
    failed = paas.ssh("cron:run", name, failing["id"])
    assert failed.returncode == 1
    assert failed.stdout.strip() == "failing-on-purpose"
    assert failed.stderr.strip() == f"error: cron job {failing['id']} exited with status 3"
    events = ok(paas.ssh("events", "--app", name))
    assert "cron:failed" in events and f"{failing['id']} exited with status 3" in events
    assert "failing-on-purpose" in ok(paas.ssh("logs", name, "-p", "cron"))
    unknown = paas.ssh("cron:run", name, "0123456789")
    assert unknown.returncode == 1 and "has no cron job 0123456789" in unknown.stderr
