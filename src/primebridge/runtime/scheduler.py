"""Periodic tasks (the scheduled order pulls now; inventory reconciliation later).

Any number of processes may run a scheduler: a conditional UPDATE on the task's row elects the
one that runs each due tick, so a pull never runs twice at once on several hosts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from primebridge.runtime.db import Database
from primebridge.runtime.tables import ScheduleRun

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    interval: float
    task: Callable[[], object]


class Scheduler:
    def __init__(self, db: Database, schedules: list[Schedule], *, runner: str, tick: float = 1.0) -> None:
        self.db = db
        self.schedules = schedules
        self.runner = runner
        self.tick = tick

    def _elect(self, schedule: Schedule, now: float) -> bool:
        try:
            with self.db.transaction() as session:
                won = session.execute(update(ScheduleRun).where(
                    ScheduleRun.name == schedule.name,
                    ScheduleRun.last_run_at <= now - schedule.interval,
                ).values(last_run_at=now, runner=self.runner)).rowcount
                if won:
                    return True
                if session.get(ScheduleRun, schedule.name) is None:
                    session.execute(insert(ScheduleRun).values(
                        name=schedule.name, last_run_at=now, runner=self.runner))
                    return True
        except IntegrityError:
            return False
        return False

    def run_due(self) -> list[str]:
        ran = []
        for schedule in self.schedules:
            if self._elect(schedule, time.time()):
                ran.append(schedule.name)
                try:
                    result = schedule.task()
                    log.info("schedule.ran", schedule=schedule.name, result=result)
                except Exception as exc:
                    log.warning("schedule.failed", schedule=schedule.name,
                                error=f"{type(exc).__name__}: {exc}")
        return ran

    def run(self, stop: threading.Event) -> None:
        log.info("scheduler.start", schedules=[s.name for s in self.schedules])
        while not stop.is_set():
            self.run_due()
            stop.wait(self.tick)
