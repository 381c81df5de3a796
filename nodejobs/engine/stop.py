"""Stopping a job: end its run and everything it started, record the end; wait for a start under way
elsewhere to give its run up."""

from __future__ import annotations

import threading
import time
from typing import cast

from nodejobs.engine.context import QUEUED_STOP_REASON, START_TIMEOUT, SURVIVED_REASON, EngineContext, now
from nodejobs.engine.observe import refresh
from nodejobs.errors import BackendError
from nodejobs.model.records import JobRecord
from nodejobs.model.states import JobStatus
from nodejobs.store.files import remove_if_exists

S = JobStatus


def stop(ctx: EngineContext, job_id: str, grace: float) -> JobRecord | None:
    """End a job and everything it started (SIGTERM-like first, forcibly after ``grace`` s, as its
    backend escalates); return its final record. An ended job's leftovers are ended too."""
    record = refresh(ctx, ctx.job_db.get(job_id))
    if record is None:
        return None
    if not record.is_active:
        handle = ctx.handle(record)
        if handle is not None:
            ctx.backend_of(record).cancel([handle], grace)
        return record
    if record.status == S.c_queued:  # QUEUED -> STOPPED: it never runs
        if ctx.move(record, S.c_queued, S.c_stopped, {"reason": QUEUED_STOP_REASON, "ended_at": now()}):
            remove_if_exists(ctx.job_db.pending_path(record))
            return ctx.job_db.get(job_id)
        return stop(ctx, job_id, grace)  # the queue started it meanwhile
    if record.status == S.c_stopping:
        return _finish(ctx, record, grace)
    if not ctx.move(record, record.status, S.c_stopping):  # -> STOPPING
        return stop(ctx, job_id, grace)  # it moved on meanwhile
    return _finish(ctx, ctx.reread(job_id), grace)


def _finish(ctx: EngineContext, record: JobRecord, grace: float) -> JobRecord:
    """End the run of a ``stopping`` record: cancel it, wait for its end, fold it."""
    handle = ctx.handle(record)
    if handle is None:  # its start is under way in another thread or process: it will not run
        return _await_final(ctx, record.self_id)
    backend = ctx.backend_of(record)
    try:
        ended = backend.cancel([handle], grace)[0]
    except OSError as exc:
        raise BackendError(f"cannot stop job {record.self_id!r} now: {exc.strerror or exc}") from exc
    if ended:
        backend.wait(handle, max(grace, 1.0))
    final = refresh(ctx, ctx.job_db.get(record.self_id))
    if not ended and final is not None and final.status == S.c_stopping:  # STOPPING -> FAILED_STOP
        ctx.move(final, S.c_stopping, S.c_failed_stop, {"reason": SURVIVED_REASON})
        final = ctx.job_db.get(record.self_id)
    return cast(JobRecord, final)


def _await_final(ctx: EngineContext, job_id: str) -> JobRecord:
    """Wait (up to the start timeout) until a run whose start is under way elsewhere has ended."""
    deadline = time.monotonic() + START_TIMEOUT
    pause = 0.001
    done = threading.Event()
    while True:
        record = refresh(ctx, ctx.job_db.get(job_id))
        if record is None or record.status != S.c_stopping or ctx.handle(record) is not None:
            if record is not None and record.status == S.c_stopping:
                return _finish(ctx, record, 0.0)
            return cast(JobRecord, record)
        if time.monotonic() > deadline:
            return record
        done.wait(pause)  # the starter records its outcome within milliseconds
        pause = min(pause * 2, 0.05)
