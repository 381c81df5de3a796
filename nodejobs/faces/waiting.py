"""Waiting for jobs on the faces (``nodejobs wait``, ``%job wait``), and the exit statuses jobs give."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nodejobs.faces.actions import require_all
from nodejobs.model.records import JobRecord, JobStatus

if TYPE_CHECKING:
    from nodejobs.jobs import Jobs

# Exit statuses (the CLI's; the magics raise UsageError where these are non-zero for usage).
OK, FAILED, USAGE, TIMED_OUT = 0, 1, 2, 124


def exit_status(record: JobRecord) -> int:
    """A job that ended: 0 if finished, else its own exit code (1..255) when it has one, else 1."""
    if record.status == JobStatus.c_finished:
        return OK
    if record.exit_code is not None and 1 <= record.exit_code <= 255:
        return record.exit_code
    return FAILED


@dataclass
class Waited:
    """What ``wait_many`` saw: every job's last record, and whether the timeout ran out first."""

    records: dict[str, JobRecord]
    timed_out: bool
    any_ended: bool = False

    def ended(self) -> list[JobRecord]:
        return [r for r in self.records.values() if not r.is_active]

    def first_active(self) -> JobRecord | None:
        return next((r for r in self.records.values() if r.is_active), None)

    def exit_status(self) -> int:
        """With --any: the first ended job's; else that of the first job (in order) that did not finish."""
        if self.any_ended:
            ended = self.ended()
            return exit_status(ended[0]) if ended else TIMED_OUT
        for record in self.records.values():
            if record.is_active:
                return TIMED_OUT
            if record.status != JobStatus.c_finished:
                return exit_status(record)
        return OK


def wait_many(
    jobs: Jobs,
    job_ids: Sequence[str],
    timeout: float | None = None,
    any_ended: bool = False,
    tick: float | None = None,
    on_tick: Callable[[Waited], None] | None = None,
) -> Waited:
    """Wait until every job (or, ``any_ended``, one of them) has ended, or ``timeout`` s have passed.

    All ids are checked before waiting. ``on_tick`` is called at least every ``tick`` seconds.
    """
    deadline = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout
    step: float | None = 0.0  # the first look only checks the ids and sees what has ended
    while True:
        try:
            return Waited(dict(jobs.wait_all(job_ids, timeout=step, any=any_ended)), False, any_ended)
        except TimeoutError:
            waited = Waited(require_all(jobs, job_ids), timed_out=False, any_ended=any_ended)
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            waited.timed_out = True
            return waited
        if on_tick is not None:
            on_tick(waited)
        steps = [s for s in (remaining, tick) if s is not None]
        step = min(steps) if steps else None
