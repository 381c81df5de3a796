"""Waiting for jobs to end and following their output as it is written, by their up-to-date records
(``require``: the record of an id, brought up to date; ``JobNotFoundError`` if there is none)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator

from nodejobs.engine.lifecycle import Lifecycle
from nodejobs.errors import InvalidInputError
from nodejobs.model.listings import JobRecordDict
from nodejobs.model.records import JobRecord
from nodejobs.store import files as logs

FOLLOW_INTERVAL = 0.2

Require = Callable[[str], JobRecord]


def wait_one(require: Require, lifecycle: Lifecycle, job_id: str, timeout: float | None) -> JobRecord:
    """Block until the job ends; its final record. ``TimeoutError`` after ``timeout`` s (None or
    ``math.inf``: no limit)."""
    if timeout is not None and not timeout >= 0:
        raise InvalidInputError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
    deadline = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout
    record = require(job_id)
    while record.is_active:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"job {job_id!r} still {record.status} after {timeout} s")
        lifecycle.wait(record, remaining)
        record = require(job_id)
    return record


def wait_all(
    require: Require, lifecycle: Lifecycle, ids: list[str], timeout: float | None, any: bool
) -> JobRecordDict:
    """Block until every job of ``ids`` has ended, or with ``any`` until one has; their records.
    ``TimeoutError`` after ``timeout`` s. Unknown ids fail first."""
    records = {job_id: require(job_id) for job_id in ids}
    deadline = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout
    while True:
        active = [i for i, r in records.items() if r.is_active]
        if not active or (any and len(active) < len(records)):
            return JobRecordDict(records)
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"job {active[0]!r} still {records[active[0]].status} after {timeout} s")
        step = 0.1 if remaining is None else min(remaining, 0.1)
        lifecycle.wait(records[active[0]], step if any or len(active) > 1 else remaining)
        for job_id in active:
            records[job_id] = require(job_id)


def follow(
    require: Require, lifecycle: Lifecycle, job_id: str, stream: str, from_start: bool
) -> Iterator[str]:
    """Yield the job's output as it is written, until the job has ended and all is read."""
    index = logs.stream_index(stream)  # a bad stream is refused before anything is read
    record = require(job_id)
    path = lifecycle.job_db.log_paths(record)[index]
    offset = 0 if from_start else os.path.getsize(path) if os.path.exists(path) else 0
    while True:
        # Once the job has ended nothing will complete a trailing partial character: flush it.
        text, offset = logs.read_from(path, offset, final=not record.is_active)
        if text:
            yield text
            continue
        if not record.is_active:
            return
        lifecycle.wait(record, FOLLOW_INTERVAL)  # returns at once when the job ends
        record = require(job_id)
