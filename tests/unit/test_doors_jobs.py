"""Door 5: deploys started from the web run as background jobs, their output kept in files."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from paas.core import names
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError, Throttled
from paas.services import jobs, users
from paas.settings import Settings


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    ctx = Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)
    ctx.store.create_app("demo")
    return ctx


def _wait(ctx: Context, job: jobs.Job, timeout: float = 10) -> jobs.Job:
    deadline = time.monotonic() + timeout
    while not (job := jobs.get(ctx, job.app, job.id)).done:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return job


def test_a_job_runs_in_the_background_and_keeps_its_output(ctx: Context) -> None:
    gate = threading.Event()

    def work(log: BuildLog) -> str:
        log.step("Restarting")
        gate.wait(5)
        log.detail("done")
        return "Restarted demo"

    job = jobs.start(ctx, "demo", "ps:restart", "Restart demo", work)
    assert job.state == "queued" and job.user == "host"  # answered before the work ended
    assert jobs.get(ctx, "demo", job.id).state in ("queued", "running")
    gate.set()
    ended = _wait(ctx, job)
    assert (ended.state, ended.message) == ("succeeded", "Restarted demo") and ended.ended_at
    text, offset = jobs.output(ctx, "demo", job.id)
    assert text == "-----> Restarting\n       done\n"
    assert jobs.output(ctx, "demo", job.id, offset) == ("", offset)
    assert jobs.output(ctx, "demo", job.id, len("-----> Restarting\n"))[0] == "       done\n"


def test_a_failed_job_says_why_and_keeps_what_it_printed(ctx: Context) -> None:
    def work(log: BuildLog) -> str:
        log.line("web.1 did not pass its check")
        raise PaasError("the new processes did not pass their checks")

    ended = _wait(ctx, jobs.start(ctx, "demo", "ps:restart", "Restart demo", work))
    assert (ended.state, ended.message) == ("failed", "the new processes did not pass their checks")
    assert "did not pass its check" in jobs.output(ctx, "demo", ended.id)[0]


def test_a_bug_in_a_job_is_one_line_not_a_traceback(ctx: Context) -> None:
    def work(log: BuildLog) -> str:
        raise RuntimeError("boom")

    ended = _wait(ctx, jobs.start(ctx, "demo", "ps:restart", "Restart demo", work))
    assert ended.state == "failed" and "internal error" in ended.message and "boom" not in ended.message


def test_a_job_whose_process_died_reads_as_interrupted(ctx: Context) -> None:
    d = names.jobs_dir(ctx.settings, ctx.store.get_app("demo").id)
    d.mkdir(parents=True)
    job = jobs.Job("0123456789abcdef", "demo", "ps:restart", "Restart demo", "host", "running", "", "now")
    (d / f"{job.id}.json").write_text(json.dumps(job.as_json()))
    (d / f"{job.id}.log").write_text("-----> Restarting\n")  # nobody holds its lock
    assert jobs.get(ctx, "demo", job.id).state == "interrupted"
    followed = list(jobs.follow(ctx, "demo", job.id, 0, lambda: False))
    assert followed[0] == ("-----> Restarting", len("-----> Restarting\n"))
    assert isinstance(followed[-1], jobs.Job) and followed[-1].state == "interrupted"


def test_follow_streams_lines_as_they_come_then_the_outcome(ctx: Context) -> None:
    step = threading.Event()

    def work(log: BuildLog) -> str:
        log.line("one")
        step.wait(5)
        log.line("two")
        return "ok"

    job = jobs.start(ctx, "demo", "ps:restart", "Restart demo", work)
    seen = []
    for item in jobs.follow(ctx, "demo", job.id, 0, lambda: False):
        seen.append(item)
        if item == ("one", 4):
            step.set()
    assert seen[:2] == [("one", 4), ("two", 8)]
    assert isinstance(seen[-1], jobs.Job) and seen[-1].state == "succeeded"


def test_ids_that_are_not_job_ids_are_not_found(ctx: Context) -> None:
    for bad in ("../../paas.db", "0123456789ABCDEF", "", "x" * 16):
        with pytest.raises(PaasError, match="no job"):
            jobs.get(ctx, "demo", bad)


def test_only_those_who_may_run_it_start_or_watch_it(ctx: Context) -> None:
    users.add_user(ctx, "eve", "correct horse battery")
    eve = ctx.for_actor("eve", False)
    with pytest.raises(PaasError, match="does not exist"):  # eve cannot even see it
        jobs.start(eve, "demo", "ps:restart", "Restart demo", lambda log: "no")
    job = _wait(ctx, jobs.start(ctx, "demo", "ps:restart", "Restart demo", lambda log: "ok"))
    with pytest.raises(PaasError):
        jobs.get(eve, "demo", job.id)


def test_past_the_cap_new_jobs_are_refused(ctx: Context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(jobs, "MAX_PENDING", 2)
    gate = threading.Event()
    started = [
        jobs.start(ctx, "demo", "ps:restart", "Restart", lambda log: str(gate.wait(5))) for _ in range(2)
    ]
    with pytest.raises(Throttled):
        jobs.start(ctx, "demo", "ps:restart", "Restart", lambda log: "x")
    gate.set()
    for job in started:
        assert _wait(ctx, job).state == "succeeded"
    assert _wait(ctx, jobs.start(ctx, "demo", "ps:restart", "Restart", lambda log: "x")).state == "succeeded"
