"""Starting a run: prepare it (checked, nothing written), claim its id, submit it held, record the
handle, release it; or record why it could not start."""

from __future__ import annotations

import json
import logging
import os
import shlex
import uuid
from collections.abc import Sequence
from typing import Any, cast

from nodejobs.backends import host
from nodejobs.backends.base import RUN_MARK, Backend, Handle, JobSpec, SubmitError
from nodejobs.engine.context import NOT_STARTED_REASON, EngineContext, Launch, now
from nodejobs.engine.observe import on_end, refresh
from nodejobs.engine.preflight import check_arguments, startup_problem
from nodejobs.errors import BackendError, InvalidInputError
from nodejobs.model import resources
from nodejobs.model.records import JobRecord, validate_job_id
from nodejobs.model.states import JobStatus
from nodejobs.model.submission import Submission
from nodejobs.store.files import remove_if_exists

log = logging.getLogger(__name__)

S = JobStatus


def prepare(
    ctx: EngineContext, command: str | Sequence[str], job_id: str, submission: Submission
) -> tuple[JobRecord, Launch]:
    """The ``starting`` record and the launch of a new run of ``command`` as ``job_id`` with
    ``submission`` (checked, nothing written). The record shows the submission's ``label`` as its
    command, if given (a function job: ``train(...)``)."""
    validate_job_id(job_id)
    if isinstance(command, str):
        shell, argv = True, ["/bin/sh", "-c", command]
    else:
        shell, argv = False, [os.fspath(a) for a in command]
    if not argv or not argv[-1 if shell else 0]:
        raise InvalidInputError("empty command")
    cwd = submission.cwd or os.getcwd()
    envs = dict(submission.envs)
    check_arguments(argv, envs, cwd)
    env = {"PYTHONUNBUFFERED": "1", **os.environ, **envs, "NODEJOBS_JOB_ID": job_id}
    env.pop(RUN_MARK, None)  # the run's own mark is given to its program by the backend
    options = dict(submission.backend_options) if submission.backend_options is not None else None
    record = new_record(
        job_id, command=submission.label or (command if shell else shlex.join(argv)), shell=shell, cwd=cwd,
        logdir=submission.logdir or ctx.job_db.logdir, logfile=submission.logfile or job_id,
        **submission.record_fields(),
    )  # fmt: skip
    return record, Launch(argv, env, submission.keep_leftovers, options)


def new_record(job_id: str, **fields: Any) -> JobRecord:
    """A ``starting`` record of a new run of ``job_id``, made by this process."""
    started = now()
    return JobRecord(
        self_id=job_id, status=S.c_starting, run_id=uuid.uuid4().hex, dirname=job_id,
        started_at=started, submitted_at=started, **host.launcher_fields(), **fields,
    )  # fmt: skip


def start(ctx: EngineContext, record: JobRecord, launch: Launch, replace: bool = True) -> JobRecord:
    """Claim ``record`` (a ``starting`` record) and start its run; return the record as it is then.

    Raises ``JobExistsError`` if a live job holds the id (with ``replace=False``: any job).
    """
    claim(ctx, record, replace)
    return start_many(ctx, [(record, launch)], settle=True)[0]


def claim(ctx: EngineContext, record: JobRecord, replace: bool = True) -> None:
    """Write ``record`` as its id's new run (``JobDB.claim``), once an earlier run recorded as active
    has had its end folded in: a stale "running" record must not block the id."""
    refresh(ctx, ctx.job_db.get(record.self_id))
    ctx.job_db.claim(record, replace)


def start_all(ctx: EngineContext, prepared: Sequence[tuple[JobRecord, Launch]]) -> list[JobRecord]:
    """``start`` of many prepared runs at once (``start_many``): all are claimed before any starts.
    Raises ``JobExistsError`` if a live job holds one of the ids (none of them starts)."""
    claimed: list[tuple[JobRecord, Launch]] = []
    try:
        for record, launch in prepared:
            claim(ctx, record, True)
            claimed.append((record, launch))
    except BaseException:
        for record, _ in claimed:
            fail_start(ctx, record, "not started: another job of its sweep could not be submitted")
        raise
    return start_many(ctx, claimed)


def start_many(
    ctx: EngineContext, pairs: Sequence[tuple[JobRecord, Launch]], settle: bool = False
) -> list[JobRecord]:
    """Start the runs of claimed ``starting`` records of one backend together (``submit_many``: e.g.
    one Slurm array); their records as they are then, in order. ``settle``: wait up to the startup
    window for an immediate failure."""
    out: dict[str, JobRecord] = {}
    try:
        ready: list[tuple[JobRecord, JobSpec]] = []
        for record, launch in pairs:
            spec = _spec(ctx, record, launch)
            if isinstance(spec, JobSpec):
                ready.append((record, spec))
            else:
                out[record.self_id] = spec
        if ready:
            backend = ctx.backend_of(ready[0][0])
            try:
                handles = backend.submit_many([spec for _, spec in ready])
            except BackendError as exc:  # refused as a whole (e.g. a cluster's controller unreachable)
                for record, _ in ready:
                    out[record.self_id] = fail_start(ctx, record, str(exc))
                raise
            for (record, _), handle in zip(ready, handles):
                if isinstance(handle, SubmitError):
                    out[record.self_id] = fail_start(ctx, record, str(handle))
                else:
                    out[record.self_id] = _submitted(ctx, record, backend, handle, settle)
    except BaseException as exc:  # e.g. KeyboardInterrupt: never leave one "starting" if not launched
        for record, _ in pairs:
            if record.self_id not in out:
                _interrupted(ctx, record, exc)
        raise
    return [out[record.self_id] for record, _ in pairs]


def _interrupted(ctx: EngineContext, record: JobRecord, exc: BaseException) -> None:
    """A start that raised: ``failed_start`` if its run was never recorded (so never let go); one
    recorded and let go is left to what its backend observes. Either way no wait for it."""
    reason = f"the start was interrupted ({exc!r})"
    ctx._abandoned[record.run_id] = reason
    try:
        current = ctx.job_db.get(record.self_id)
        if current is None or current.run_id != record.run_id or ctx.handle(current) is None:
            ctx.move(record, S.c_starting, S.c_failed_start, {"reason": reason, "ended_at": now()})
            ctx._abandoned.pop(record.run_id, None)
    except Exception:
        log.exception("job %s: cannot record the interrupted start", record.self_id)


def _spec(ctx: EngineContext, record: JobRecord, launch: Launch) -> JobSpec | JobRecord:
    """What the backend is to run for ``record``, or its ``failed_start`` record if it cannot start."""
    try:
        os.makedirs(record.logdir, mode=0o700, exist_ok=True)
    except OSError as exc:
        return fail_start(ctx, record, f"cannot create log directory {record.logdir}: {exc.strerror}")
    problem = startup_problem(launch.argv, bool(record.shell), record.cwd, launch.env)
    if problem:
        return fail_start(ctx, record, problem)
    paths = ctx.job_db.paths(record)
    return JobSpec(
        job_id=record.self_id, run_id=record.run_id, argv=launch.argv, env=launch.env, cwd=record.cwd,
        out_path=paths.out, err_path=paths.err, exit_path=paths.exit,
        keep_leftovers=launch.keep_leftovers,
        options={**resources.loads(record.resources), **(launch.options or {})},
        timeout=record.timeout, on_end=ctx.on_end,
    )  # fmt: skip


def _submitted(
    ctx: EngineContext, record: JobRecord, backend: Backend, handle: Handle, settle: bool
) -> JobRecord:
    """Record the handle of a submitted (held) run, then let it go; the record as it is then."""
    fields = {"handle": json.dumps(handle), **backend.record_fields(handle)}
    queues = backend.capabilities.queues  # then it waits in the backend's queue once let go: pending
    recorded = False
    try:
        new = S.c_pending if queues else None
        recorded = ctx.job_db.update_run(record.self_id, record.run_id, S.c_starting, fields, new)
    finally:
        backend.release(handle, start=recorded)
    backend.watch(handle, lambda: on_end(ctx, record.self_id, record.run_id))
    if not recorded:  # a stop came first (or the start was given up as lost): it never ran
        ctx.move(record, S.c_stopping, S.c_stopped, {"reason": NOT_STARTED_REASON, "ended_at": now()})
        return ctx.reread(record.self_id)
    if queues:  # it cannot have run yet: nothing to look at
        return ctx.reread(record.self_id)
    ctx.move(record, S.c_starting, S.c_running)  # released: it runs (unless it ended already)
    if not settle:
        return ctx.reread(record.self_id)
    try:
        backend.settle(handle, ctx.startup_window)
        return cast(JobRecord, refresh(ctx, ctx.reread(record.self_id)))
    except (OSError, BackendError) as exc:  # it runs and is recorded: report it as recorded
        log.warning("job %s started; cannot look at it now: %s", record.self_id, exc)
        return ctx.reread(record.self_id)


def fail_start(ctx: EngineContext, record: JobRecord, reason: str) -> JobRecord:
    """Record that the job could not start; its logs are replaced by the reason (best effort)."""
    paths = ctx.job_db.paths(record)
    try:
        remove_if_exists(paths.out)
        remove_if_exists(paths.exit)
        with open(os.open(paths.err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f"nodejobs: {reason}\n")
    except OSError as exc:
        log.warning("job %s: cannot write its error log %s: %s", record.self_id, paths.err, exc)
    fields = {"reason": reason, "ended_at": now()}
    if not ctx.move(record, S.c_starting, S.c_failed_start, fields):
        ctx.move(record, S.c_stopping, S.c_stopped, {"reason": NOT_STARTED_REASON, "ended_at": now()})
    return ctx.reread(record.self_id)
