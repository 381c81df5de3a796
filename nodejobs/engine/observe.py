"""Observing runs: bring active records up to date with their backends, fold observed ends into the
database, sample usage, wait for an end."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, cast

from nodejobs.backends import host
from nodejobs.backends.base import ENDED, HELD, PENDING, RUNNING, Backend, Handle, Observation, Usage
from nodejobs.engine.context import (
    LAUNCHER_LOST_REASON,
    NOT_STARTED_REASON,
    START_TIMEOUT,
    EngineContext,
    now,
)
from nodejobs.errors import BackendError, DatabaseError
from nodejobs.model.records import JobRecord
from nodejobs.model.states import CANNOT_START_CODES, JobStatus, ended_status

log = logging.getLogger(__name__)

S = JobStatus


def refresh(ctx: EngineContext, record: JobRecord | None) -> JobRecord | None:
    """Bring an active record up to date with its backend; ended records are returned as is."""
    if record is None or not record.is_active:
        return record
    return refresh_many(ctx, [record])[0]


def refresh_many(ctx: EngineContext, records: Iterable[JobRecord]) -> list[JobRecord]:
    """``refresh`` of many records, observing each backend's jobs in one call."""
    records = list(records)
    out: list[JobRecord] = list(records)
    by_backend: dict[str, list[tuple[int, Handle]]] = {}
    for i, record in enumerate(records):
        if not record.is_active:
            continue
        handle = ctx.handle(record)
        if handle is None:
            out[i] = _refresh_unlaunched(ctx, record)
        else:
            by_backend.setdefault(record.backend or "local", []).append((i, handle))
    for name, items in by_backend.items():
        backend = ctx.backend_for(name)
        try:
            seen = backend.observe([h for _, h in items])
        except OSError as exc:  # not an answer: never take it for "the job is gone"
            raise BackendError(f"cannot observe {name} jobs now: {exc.strerror or exc}") from exc
        for (i, handle), observation in zip(items, seen):
            out[i] = _fold(ctx, records[i], handle, observation, backend)
    return out


def on_end(ctx: EngineContext, job_id: str, run_id: str | None) -> None:
    """What a backend calls when it sees a run end: fold the end if the record is still that run's."""
    record = ctx.job_db.get(job_id)
    if record is not None and record.run_id == run_id:
        refresh(ctx, record)


def _fold(
    ctx: EngineContext, record: JobRecord, handle: Handle, seen: Observation, backend: Backend
) -> JobRecord:
    """Record what an observation of a run says: its end (the status it ends in), or what it adds."""
    if not seen.ended:
        return _fold_active(ctx, record, seen)
    status = record.status
    fields: dict[str, Any]
    if seen.state == ENDED and not seen.started:
        stopped = status == S.c_stopping
        new = S.c_stopped if stopped else S.c_failed_start
        fields = {"reason": NOT_STARTED_REASON if stopped else seen.reason or LAUNCHER_LOST_REASON}
        if seen.dependency_failed and not stopped:
            new, fields = S.c_dependency_failed, {"reason": _broken_dependency(ctx, record, seen)}
    elif seen.state == ENDED:
        new = ended_status(status, seen.exit_code, seen.timed_out)
        fields = {"exit_code": seen.exit_code}
        if seen.cpu_time is not None:
            fields["cpu_time"] = seen.cpu_time
        if seen.started_at is not None and status == S.c_pending:
            fields["started_at"] = seen.started_at
        if seen.reason or status == S.c_pending:  # a pending job's reason was why it waited
            fields["reason"] = seen.reason
        if seen.timed_out and record.timeout is not None and not seen.reason:
            fields["reason"] = f"timed out: ended by its time limit of {record.timeout:g} s"
        if new == S.c_failed_start and seen.exit_code in CANNOT_START_CODES:
            what = "command not found" if seen.exit_code == 127 else "cannot execute"
            hint = f"see `nodejobs logs {record.self_id} --err`"
            fields["reason"] = f"{what} (exit code {seen.exit_code}); {hint}"
    else:
        new = ended_status(status, None)
        fields = {"reason": seen.reason}
    ended_at = seen.ended_at or now()
    if record.started_at is not None:  # file times are coarse: never end before the start
        ended_at = max(ended_at, record.started_at)
    fields["ended_at"] = ended_at
    try:
        folded = ctx.move(record, status, new, fields)
    except DatabaseError as exc:
        return _unrecorded(record, new, fields, exc)
    if folded:
        backend.forget(handle)
        return ctx.reread(record.self_id)
    current = ctx.job_db.get(record.self_id)
    moved_on = current is not None and current.is_active and current.status != status
    if moved_on and current is not None and current.run_id == record.run_id:  # fold again
        return cast(JobRecord, refresh(ctx, current))
    return cast(JobRecord, current)


def _fold_active(ctx: EngineContext, record: JobRecord, seen: Observation) -> JobRecord:
    """Record what an active job's observation adds: it left the backend's queue, why it pends, or
    that a launcher which then died did release it."""
    status, moved = record.status, False
    if status == S.c_starting and seen.state != HELD and not _launcher_alive(ctx, record):
        new = S.c_pending if seen.state == PENDING else S.c_running  # released by a launcher that died
        moved = ctx.move(record, S.c_starting, new)
        ctx._abandoned.pop(record.run_id, None)
    elif status == S.c_pending and seen.state == RUNNING:
        fields = {"started_at": seen.started_at or now(), "reason": None}
        moved = ctx.move(record, status, S.c_running, fields)
    elif status == S.c_pending and seen.state == PENDING and seen.reason and seen.reason != record.reason:
        moved = ctx.move(record, status, status, {"reason": seen.reason})
    return (ctx.job_db.get(record.self_id) or record) if moved else record


def _broken_dependency(ctx: EngineContext, record: JobRecord, seen: Observation) -> str:
    """Why a job its backend will never run after its dependencies is ``dependency_failed``."""
    for dep in record.after_ids:
        found = refresh(ctx, ctx.job_db.get(dep))
        if found is None or (not found.is_active and found.status != S.c_finished):
            return f"dependency {dep!r} " + (f"ended {found.status}" if found else "was removed")
    return f"a dependency did not finish ({record.backend}: {seen.reason})"


def _launcher_alive(ctx: EngineContext, record: JobRecord) -> bool:
    """Whether the process that started ``record`` may still complete its start."""
    if record.run_id in ctx._abandoned or not host.same_boot(record) or not host.launcher_alive(record):
        return False
    age = (now() - record.started_at).total_seconds() if record.started_at else float("inf")
    return age < START_TIMEOUT


def _refresh_unlaunched(ctx: EngineContext, record: JobRecord) -> JobRecord:
    """A record whose run has no handle yet: if its launcher is gone, it never will have one."""
    if record.status not in (S.c_starting, S.c_stopping) or _launcher_alive(ctx, record):
        return record
    if record.run_id in ctx._abandoned:
        reason = ctx._abandoned[record.run_id]
    elif not host.same_boot(record):
        reason = "the machine restarted while the job was active"
    elif host.launcher_alive(record):
        reason = f"the start did not complete within {START_TIMEOUT:.0f} s"
    else:
        reason = LAUNCHER_LOST_REASON
    new = S.c_stopped if record.status == S.c_stopping else S.c_failed_start
    fields = {"reason": reason, "ended_at": now()}
    try:
        ctx.move(record, record.status, new, fields)
    except DatabaseError as exc:
        return _unrecorded(record, new, fields, exc)
    ctx._abandoned.pop(record.run_id, None)
    return ctx.reread(record.self_id)


def _unrecorded(record: JobRecord, new: str, fields: dict, exc: DatabaseError) -> JobRecord:
    """An end that cannot be written now (e.g. disk full): reported as it is; the next refresh that
    can write records it."""
    log.warning("job %s ended (%s) but its record cannot be updated: %s", record.self_id, new, exc)
    return JobRecord.trusted({**record, **fields, "status": new})


def usage(ctx: EngineContext, records: Iterable[JobRecord]) -> dict[str, Usage]:
    """CPU and memory now of the running ones of ``records`` (one backend call per backend), by id.

    Each sample raises the record's ``max_rss`` where it is higher: the recorded peak is the
    largest seen by any sample while the job ran.
    """
    by_backend: dict[str, list[tuple[JobRecord, Handle]]] = {}
    for record in records:
        handle = ctx.handle(record) if record.is_active else None
        if handle is not None:
            by_backend.setdefault(record.backend or "local", []).append((record, handle))
    out: dict[str, Usage] = {}
    for name, items in by_backend.items():
        backend = ctx.backend_for(name)
        if not backend.capabilities.resource_usage:
            continue
        for (record, _), used in zip(items, backend.usage([h for _, h in items])):
            if used is not None:
                out[record.self_id] = used
    peaks = [(r.self_id, r.run_id, out[r.self_id].rss) for items in by_backend.values() for r, _ in items
             if r.self_id in out and (r.max_rss or 0) < out[r.self_id].rss]  # fmt: skip
    try:
        ctx.job_db.record_peaks(peaks)
    except DatabaseError as exc:  # e.g. disk full: the sample is still worth showing
        log.warning("cannot record the jobs' peak memory: %s", exc)
    return out


def wait(ctx: EngineContext, record: JobRecord, timeout: float | None) -> bool:
    """Block until the record's run ends or ``timeout`` s pass; True if it ended."""
    handle = ctx.handle(record)
    if handle is None:  # its start is under way in another thread or process: look again soon
        threading.Event().wait(min(timeout if timeout is not None else 0.05, 0.05))
        return False
    return ctx.backend_of(record).wait(handle, timeout)
