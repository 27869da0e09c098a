"""Cron jobs from app.json: schedule checks, stable ids and tick arithmetic (no docker, no store).

Schedules are Dokku's: five cron fields or a croniter keyword (@hourly, @daily, @weekly, @monthly,
@yearly, @annually, @midnight), evaluated in UTC. croniter parses them; nothing here does by hand.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import CroniterBadDateError, croniter

from paas.core import validation
from paas.plugin_api import PaasError

ID_PATTERN = re.compile(r"^[0-9a-f]{10}$")
MAX_COMMAND = 2000
MAX_JOBS = 50
_KEYWORDS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


@dataclass(frozen=True)
class CronEntry:
    command: str
    schedule: str


def entries(data: object) -> list[CronEntry]:
    """The shape of app.json's `cron` (a list of {"command", "schedule"}); `parse_entries`
    checks the schedules. `data` is the whole app.json object (`Manifest.data`)."""
    raw = data.get("cron") if isinstance(data, dict) else None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PaasError('app.json: cron must be a list of {"command": ..., "schedule": ...}')
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise PaasError(f"app.json: cron[{i}] must be an object")
        command, schedule = entry.get("command"), entry.get("schedule")
        if not isinstance(command, str) or not command.strip() or "\n" in command:
            raise PaasError(f"app.json: cron[{i}].command must be a one-line command")
        if not isinstance(schedule, str) or not schedule.strip():
            raise PaasError(f"app.json: cron[{i}].schedule must be a cron expression like @daily")
        out.append(CronEntry(command.strip(), schedule.strip()))
    return out


@dataclass(frozen=True)
class Job:
    id: str
    schedule: str
    command: str

    def due(self, now: datetime) -> datetime:
        """The latest tick at or before `now` (croniter's get_prev excludes `now` itself)."""
        return croniter(self.schedule, now + timedelta(microseconds=1)).get_prev(datetime)

    def next_after(self, now: datetime) -> datetime:
        return croniter(self.schedule, now).get_next(datetime)


def job_id(schedule: str, command: str) -> str:
    """Stable and short, like Dokku's cron ids: the same entry keeps its id across pushes."""
    return hashlib.sha256(f"{schedule}\0{command}".encode()).hexdigest()[:10]


def check_id(text: str) -> str:
    if not ID_PATTERN.match(text):
        raise PaasError(f"invalid cron id {validation.printable(text)!r}: see cron:list for the ids")
    return text


def _valid_schedule(schedule: str) -> bool:
    if schedule.startswith("@"):
        return schedule in _KEYWORDS
    # Five fields only: croniter would also take a sixth (seconds) and a seventh (year).
    if len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        return False
    try:  # valid fields can still never match (Feb 31)
        croniter(schedule, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


def parse_entries(entries: list[CronEntry]) -> list[Job]:
    """The jobs of a manifest; a bad entry raises with its index in app.json's `cron` list."""
    if len(entries) > MAX_JOBS:
        raise PaasError(f"app.json cron: at most {MAX_JOBS} jobs")
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not _valid_schedule(entry.schedule):
            raise PaasError(f"app.json cron[{i}]: invalid schedule '{validation.printable(entry.schedule)}'")
        if len(entry.command) > MAX_COMMAND or not entry.command.isprintable():
            raise PaasError(
                f"app.json cron[{i}]: the command must be printable and at most {MAX_COMMAND} characters"
            )
        job = Job(job_id(entry.schedule, entry.command), entry.schedule, entry.command)
        if job.id in seen:
            raise PaasError(f"app.json cron[{i}]: same schedule and command as cron[{seen[job.id]}]")
        seen[job.id] = i
        jobs.append(job)
    return jobs
